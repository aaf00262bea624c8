"""Pairwise feature interactions, for one row (a dict) and for a batch (columns), bit-identical.

Kinds (``(a, b, kind)`` gives a feature named ``f"{a}_{kind}_{b}"``, with ``hash_cross`` for
``hash_cross:N``):

* ``product`` ``a * b``, ``sum`` ``a + b``, ``difference`` ``a - b``;
* ``ratio`` ``a / b``, safe: a NaN input gives NaN, otherwise ``b == 0`` (either sign, any
  ``a`` including 0) gives ``zero_division`` (0.0 by default), and a quotient of finite
  numbers too large for float64 saturates at +-``sys.float_info.max``: finite inputs always
  give a finite ratio (never inf or NaN);
* ``hash_cross:N`` a stable bucket in ``[0, N)`` of the pair of categories: xxh64 (seed 0) of
  ``f"{len(A)}:"`` + A + B, with A and B the UTF-8 bytes of the categories' text, modulo N. The
  text of a str is itself, of an int its decimal digits, of a bool ``true``/``false``, of an
  integral float that of the int (``3.0`` is ``3``), of another float its ``repr``.

The arithmetic kinds work in float64 (ints and bools converted). A missing value (None, an Arrow
null) gives None/null. Otherwise infinite inputs, and products, sums and differences beyond the
float64 range, follow IEEE rules.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import xxhash

from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError
from lakefeed.transforms.online.base import FeatureDict, OnlineFeatureComputer, check_finite_float, is_numeric_type

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ARITHMETIC_KINDS", "InteractionFeatureBuilder", "category_text", "hash_cross"]

ARITHMETIC_KINDS = ("product", "sum", "difference", "ratio")
_OWNER = "InteractionFeatureBuilder"
_LARGEST = sys.float_info.max


def category_text(value: object) -> str:
    """The text a category is hashed by (see the module docstring).

    Example:
        >>> category_text("red"), category_text(7), category_text(7.0), category_text(True)
        ('red', '7', '7', 'true')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    msg = f"{_OWNER}: hash_cross needs str, int, bool or float categories, got {value!r}"
    raise SchemaError(msg)


def hash_cross(a: object, b: object, buckets: int) -> int:
    """The bucket of the category pair ``(a, b)`` among ``buckets``.

    Example:
        >>> hash_cross("red", 7, 1000) == hash_cross("red", 7.0, 1000)
        True
    """
    first = category_text(a).encode("utf-8", "surrogatepass")
    second = category_text(b).encode("utf-8", "surrogatepass")
    return xxhash.xxh64_intdigest(f"{len(first)}:".encode() + first + second) % buckets


def _ratio(a: float, b: float, zero_division: float) -> float:
    if a != a or b != b:
        return math.nan
    if b == 0:
        return zero_division
    quotient = a / b
    if math.isinf(quotient) and math.isfinite(a) and math.isfinite(b):
        return math.copysign(_LARGEST, quotient)
    return quotient


_SCALAR: dict[str, Callable[[float, float], float]] = {
    "product": lambda a, b: a * b,
    "sum": lambda a, b: a + b,
    "difference": lambda a, b: a - b,
}


class InteractionFeatureBuilder(OnlineFeatureComputer):
    """Features from pairs of features: products, sums, differences, safe ratios and hashed crosses.

    Args:
        interactions: Default interactions for :meth:`compute`; :meth:`build` takes its own.
        zero_division: The ratio when the denominator is zero (finite; default 0.0).

    Raises:
        ConfigError: For a non-finite ``zero_division`` or bad default interactions.

    Example:
        >>> builder = InteractionFeatureBuilder()
        >>> builder.build({"clicks": 3, "views": 0, "city": "Oslo", "device": "ios"},
        ...               [("clicks", "views", "ratio"), ("city", "device", "hash_cross:100")])
        {'clicks_ratio_views': 0.0, 'city_hash_cross_device': 96}
    """

    def __init__(
        self, interactions: Sequence[tuple[str, str, str]] | None = None, *, zero_division: float = 0.0
    ) -> None:
        self.zero_division = check_finite_float(zero_division, argument="zero_division", owner=_OWNER)
        if interactions is not None:
            self._plan(interactions)
        self.interactions = list(interactions) if interactions is not None else None

    @staticmethod
    def _plan(interactions: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str, str, int]]:
        """Validate; return ``(output name, a, b, kind, buckets)`` per interaction."""
        if isinstance(interactions, str | bytes) or not isinstance(interactions, Sequence):
            msg = f"{_OWNER}: interactions must be a list of (feature_a, feature_b, kind), got {interactions!r}"
            raise ConfigError(msg)
        plan = []
        for item in interactions:
            if not (isinstance(item, tuple | list) and len(item) == 3 and all(isinstance(p, str) for p in item)):
                msg = f"{_OWNER}: each interaction is (feature_a, feature_b, kind) of str, got {item!r}"
                raise ConfigError(msg)
            a, b, kind = item
            buckets = 0
            if kind.startswith("hash_cross:"):
                count = kind.partition(":")[2]
                buckets = int(count) if count.isdigit() else 0
                if buckets <= 0:
                    msg = f"{_OWNER}: {kind!r} needs a positive bucket count, e.g. 'hash_cross:1000'"
                    raise ConfigError(msg)
                kind = "hash_cross"
            elif kind not in ARITHMETIC_KINDS:
                msg = (
                    f"{_OWNER}: unknown interaction kind {kind!r} in {tuple(item)!r}; use one of "
                    f"{list(ARITHMETIC_KINDS)} or 'hash_cross:<buckets>'"
                )
                raise ConfigError(msg)
            plan.append((f"{a}_{kind}_{b}", a, b, kind, buckets))
        names = [p[0] for p in plan]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            msg = f"{_OWNER}: interactions give the feature name(s) {duplicates} more than once; drop the repeats"
            raise ConfigError(msg)
        return plan

    def build(self, features: Mapping[str, Any], interactions: Sequence[tuple[str, str, str]]) -> FeatureDict:
        """The interaction features of one row.

        Args:
            features: Feature values by name.
            interactions: ``(feature_a, feature_b, kind)`` triples.

        Returns:
            The new features only, by output name, in ``interactions`` order.

        Raises:
            ConfigError: An interaction is malformed or its kind unknown.
            ColumnNotFoundError: A named feature is not in ``features``.
            SchemaError: An arithmetic kind meets a value that is not a number, or a hash a
                value that is not a category.
        """
        out: FeatureDict = {}
        for name, a, b, kind, buckets in self._plan(interactions):
            left, right = _lookup(features, a), _lookup(features, b)
            if left is None or right is None:
                out[name] = None
            elif kind == "hash_cross":
                out[name] = hash_cross(left, right, buckets)
            else:
                x, y = _number(left, a), _number(right, b)
                out[name] = _ratio(x, y, self.zero_division) if kind == "ratio" else _SCALAR[kind](x, y)
        return out

    def build_batch(
        self, batch: pa.Table | pa.RecordBatch | Mapping[str, Any], interactions: Sequence[tuple[str, str, str]]
    ) -> pa.Table:
        """The interaction features of every row of a batch, equal bit for bit to :meth:`build` per row.

        Arithmetic runs in numpy on whole columns; ``hash_cross`` hashes each distinct pair once.

        Args:
            batch: An Arrow table or record batch, or a dict of columns (lists or numpy arrays).
            interactions: As for :meth:`build`.

        Returns:
            An Arrow table of the new features (float64 for arithmetic, int64 for hashes).

        Raises:
            ConfigError: An interaction is malformed or its kind unknown.
            ColumnNotFoundError: A named column is missing.
            SchemaError: A column has the wrong type for its kind.

        Example:
            >>> import pyarrow as pa
            >>> t = pa.table({"a": [1.0, 2.0, None], "b": [0.0, 4.0, 1.0]})
            >>> InteractionFeatureBuilder().build_batch(t, [("a", "b", "ratio")]).to_pydict()
            {'a_ratio_b': [0.0, 0.5, None]}
        """
        import pyarrow as pa

        plan = self._plan(interactions)
        if isinstance(batch, pa.RecordBatch):
            table = pa.Table.from_batches([batch])
        elif isinstance(batch, pa.Table):
            table = batch
        else:
            table = pa.table({str(k): v for k, v in batch.items()})
        out: dict[str, pa.Array[Any]] = {}
        for name, a, b, kind, buckets in plan:
            left, right = _column(table, a), _column(table, b)
            missing = np.asarray(left.is_null().to_numpy(zero_copy_only=False), dtype=bool) | np.asarray(
                right.is_null().to_numpy(zero_copy_only=False), dtype=bool
            )
            if kind == "hash_cross":
                out[name] = pa.array(_hash_columns(left, right, buckets), type=pa.int64(), mask=missing)
                continue
            x, y = _float_column(left, a), _float_column(right, b)
            with np.errstate(all="ignore"):
                if kind == "ratio":
                    safe = np.where(y == 0, 1.0, y)
                    result = np.where(y == 0, self.zero_division, x / safe)
                    overflow = np.isinf(result) & np.isfinite(x) & np.isfinite(y)
                    result[overflow] = np.copysign(_LARGEST, result[overflow])
                    result[np.isnan(x) | np.isnan(y)] = np.nan
                else:
                    result = {"product": np.multiply, "sum": np.add, "difference": np.subtract}[kind](x, y)
            out[name] = pa.array(result, type=pa.float64(), mask=missing)
        return pa.table(out)

    def compute(self, data: Any) -> FeatureDict:
        """:meth:`build` with the interactions given to the constructor.

        Args:
            data: Feature values by name.

        Returns:
            As :meth:`build`.
        """
        if self.interactions is None:
            msg = f"{_OWNER}: compute() needs interactions; pass them to the constructor or call build()"
            raise ConfigError(msg)
        return self.build(data, self.interactions)


def _lookup(features: Mapping[str, Any], name: str) -> Any:
    if name not in features:
        msg = f"{_OWNER}: no feature {name!r}; features are {list(features)}"
        raise ColumnNotFoundError(msg)
    value = features[name]
    return None if value is None else value


def _number(value: object, name: str) -> float:
    if isinstance(value, str | bytes) or not isinstance(value, int | float | np.integer | np.floating | np.bool_):
        msg = f"{_OWNER}: feature {name!r} is {value!r}; arithmetic interactions need numbers"
        raise SchemaError(msg)
    return float(value)


def _column(table: pa.Table, name: str) -> pa.ChunkedArray[Any]:
    if name not in table.column_names:
        msg = f"{_OWNER}: no column {name!r}; columns are {table.column_names}"
        raise ColumnNotFoundError(msg)
    return table.column(name)


def _float_column(column: pa.ChunkedArray[Any], name: str) -> np.ndarray:
    import pyarrow as pa

    if not (is_numeric_type(column.type) or pa.types.is_boolean(column.type)):
        msg = f"{_OWNER}: column {name!r} is {column.type}; arithmetic interactions need a numeric column"
        raise SchemaError(msg)
    return np.asarray(column.cast(pa.float64(), safe=False).to_numpy(), dtype=np.float64)


def _hash_columns(left: pa.ChunkedArray[Any], right: pa.ChunkedArray[Any], buckets: int) -> np.ndarray:
    """Hash every row's pair, computing each distinct pair once."""
    codes_a, texts_a = _categories(left)
    codes_b, texts_b = _categories(right)
    pairs, inverse = np.unique(codes_a * (len(texts_b) + 1) + codes_b, return_inverse=True)
    hashed = np.empty(len(pairs), dtype=np.int64)
    for i, pair in enumerate(pairs.tolist()):
        ia, ib = divmod(pair, len(texts_b) + 1)
        hashed[i] = -1 if ia >= len(texts_a) or ib >= len(texts_b) else hash_cross(texts_a[ia], texts_b[ib], buckets)
    result: np.ndarray = hashed[inverse.reshape(-1)]
    return result


def _categories(column: pa.ChunkedArray[Any]) -> tuple[np.ndarray, list[str]]:
    """Codes per row (nulls get ``len(texts)``) and the category text of each code."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    encoded = cast("pa.DictionaryArray[Any, Any]", pc.dictionary_encode(column.combine_chunks()))
    texts = [category_text(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices
    valid = np.asarray(indices.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    raw = np.nan_to_num(np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.float64))
    return np.where(valid, raw, len(texts)).astype(np.int64), texts
