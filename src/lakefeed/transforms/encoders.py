"""Categorical encoders: :class:`OneHotEncoder`, :class:`StringIndexer`, :class:`HashBucket`.

Each encoder records the Arrow type of every input column at fit time and casts inputs to it
(batch and row alike), so a row's ``5`` and a batch's ``int32`` 5 encode the same way.
Categories are matched exactly by Arrow (``pyarrow.compute.index_in``); nulls are a category of
their own where the fit saw them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError, UnknownCategoryError
from lakefeed.transforms.base import FeatureTransformer
from lakefeed.transforms.data import Chunk, Values, categories_of
from lakefeed.transforms.stats import Vocabulary

__all__ = ["HashBucket", "OneHotEncoder", "StringIndexer"]


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


def _typed(values: Values, name: str, dtype: pa.DataType, owner: str) -> pa.Array[Any]:
    arr = categories_of(values)
    if arr.type != dtype:
        try:
            arr = arr.cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            msg = f"column {name!r} is {arr.type}, but {owner} was fitted on {dtype}; pass the same type"
            raise SchemaError(msg) from exc
    return arr


def _is_category_type(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(dtype) or pa.types.is_integer(dtype) or pa.types.is_boolean(dtype) or pa.types.is_null(dtype)
    )


class _Categorical(FeatureTransformer):
    """Shared by the encoders: vocabularies and input types collected in fit."""

    numeric_input = False

    def _begin(self, names: list[str]) -> dict[str, Any]:
        return {"vocab": {n: Vocabulary() for n in names}, "types": {}}

    def _update(self, acc: dict[str, Any], chunk: Chunk) -> None:
        for name, values in chunk.items():
            arr = categories_of(values)
            if not _is_category_type(arr.type):
                # floats have no exact categories; other types (dates, decimals, bytes) do not
                # survive the JSON spec: cast them to strings first
                msg = (
                    f"column {name!r} is {arr.type}; {type(self).__name__} takes strings, integers or booleans"
                    " (cast it first, e.g. to string)"
                )
                raise SchemaError(msg)
            if not pa.types.is_null(arr.type):
                acc["types"].setdefault(name, arr.type)
            if self._counts_needed:
                acc["vocab"][name].update(arr)

    _counts_needed = True

    def _merge(self, left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
        types = dict(right["types"])
        types.update(left["types"])
        return {"vocab": {n: v.merge(right["vocab"][n]) for n, v in left["vocab"].items()}, "types": types}

    def _finish_types(self, acc: dict[str, Any]) -> None:
        self.dtypes_ = {n: acc["types"].get(n, pa.string()) for n in acc["vocab"]}

    def _types_state(self) -> dict[str, str]:
        return {n: str(t) for n, t in self.dtypes_.items()}

    def _load_types(self, state: dict[str, Any]) -> None:
        self.dtypes_ = {n: pa.type_for_alias(t) for n, t in state["dtypes"].items()}


class OneHotEncoder(_Categorical):
    """One column of 0/1 per category seen in fit (scikit-learn's dense ``OneHotEncoder``).

    Categories are sorted (nulls last); the output columns are named ``f"{column}_{category}"``
    and are float64. ``categories_`` lists each input column's categories.

    Args:
        handle_unknown: ``"error"`` raises :class:`~lakefeed.errors.UnknownCategoryError` on a
            category not seen in fit; ``"ignore"`` encodes it as all zeros.
        columns: The columns to encode (default: the whole input).

    Example:
        >>> enc = OneHotEncoder(handle_unknown="ignore").fit(["red", "blue", "red"])
        >>> enc.transform(["blue", "green"]).tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """

    kind = "one_hot_encoder"

    def __init__(
        self, handle_unknown: Literal["error", "ignore"] = "error", *, columns: Sequence[str] | None = None
    ) -> None:
        super().__init__(columns=columns)
        if handle_unknown not in ("error", "ignore"):
            msg = f"handle_unknown must be 'error' or 'ignore', got {handle_unknown!r}"
            raise ConfigError(msg)
        self.handle_unknown = handle_unknown

    def _finish(self, acc: dict[str, Any]) -> None:
        self._finish_types(acc)
        self.categories_ = [sorted(acc["vocab"][n].counts, key=_sort_key) for n in acc["vocab"]]
        self._sets()

    def _sets(self) -> None:
        self._value_sets = [
            pa.array(c, type=self.dtypes_[n]) for c, n in zip(self.categories_, self.dtypes_, strict=True)
        ]
        outputs = self._outputs(list(self.dtypes_))
        twice = sorted({o for o in outputs if outputs.count(o) > 1})
        if twice:
            msg = (
                f"OneHotEncoder would make the columns {twice} twice: column_category names clash (two columns"
                " such as 'a' + 'b_c' and 'a_b' + 'c', or a category 'None' beside nulls); rename or recode first"
            )
            raise SchemaError(msg)

    def _outputs(self, names: list[str]) -> list[str]:
        return [f"{n}_{c}" for n, cats in zip(names, self.categories_, strict=True) for c in cats]

    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (name, values) in enumerate(chunk.items()):
            arr = _typed(values, name, self.dtypes_[name], type(self).__name__)
            index = pc.index_in(arr, value_set=self._value_sets[i], skip_nulls=False)
            codes = np.asarray(index.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
            if self.handle_unknown == "error" and (codes < 0).any():
                bad = pc.unique(arr.filter(pa.array(codes < 0))).to_pylist()[:5]
                msg = f"column {name!r} has categories {bad} not seen in fit; refit, or use handle_unknown='ignore'"
                raise UnknownCategoryError(msg)
            for j, category in enumerate(self.categories_[i]):
                out[f"{name}_{category}"] = (codes == j).astype(np.float64)
        return out

    def _params(self) -> dict[str, Any]:
        return {"handle_unknown": self.handle_unknown}

    def _state(self) -> dict[str, Any]:
        return {"categories": self.categories_, "dtypes": self._types_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._load_types(state)
        self.categories_ = [list(c) for c in state["categories"]]
        self._sets()


class StringIndexer(_Categorical):
    """A vocabulary index per column: frequent categories get 1, 2, ... and the rest share index 0.

    The vocabulary holds the categories seen at least ``min_frequency`` times, most frequent
    first (ties by value), at most ``max_categories`` of them. With ``num_oov_indices=1``
    (default) index 0 is for values out of the vocabulary and nulls; with 0, the vocabulary
    starts at 0 and an unknown value raises :class:`~lakefeed.errors.UnknownCategoryError`.
    Output is int64, ready for an embedding lookup of ``vocabulary_size`` rows.

    Args:
        min_frequency: Fewest occurrences for a category to get its own index.
        max_categories: Keep at most this many (the most frequent).
        num_oov_indices: 1 (an index for everything else) or 0 (unknown values raise).
        columns: The columns to index (default: the whole input).

    Example:
        >>> indexer = StringIndexer(min_frequency=2).fit(["a", "b", "a", "c", "c", "c"])
        >>> indexer.transform(["c", "a", "b"]).ravel().tolist()
        [1, 2, 0]
    """

    kind = "string_indexer"

    def __init__(
        self,
        *,
        min_frequency: int = 1,
        max_categories: int | None = None,
        num_oov_indices: int = 1,
        columns: Sequence[str] | None = None,
    ) -> None:
        super().__init__(columns=columns)
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
            msg = f"min_frequency must be an int >= 1, got {min_frequency!r}"
            raise ConfigError(msg)
        if max_categories is not None and (not isinstance(max_categories, int) or max_categories < 1):
            msg = f"max_categories must be None or an int >= 1, got {max_categories!r}"
            raise ConfigError(msg)
        if num_oov_indices not in (0, 1):
            msg = f"num_oov_indices must be 0 (unknown values raise) or 1 (index 0), got {num_oov_indices!r}"
            raise ConfigError(msg)
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.num_oov_indices = num_oov_indices

    def _finish(self, acc: dict[str, Any]) -> None:
        self._finish_types(acc)
        self.vocabulary_: list[list[Any]] = []
        for name in acc["vocab"]:
            counts = acc["vocab"][name].counts
            kept = [v for v, c in counts.items() if c >= self.min_frequency and v is not None]
            kept.sort(key=lambda v: (-counts[v], v))
            self.vocabulary_.append(kept[: self.max_categories])
        self._sets()

    def _sets(self) -> None:
        self._value_sets = [
            pa.array(v, type=self.dtypes_[n]) for v, n in zip(self.vocabulary_, self.dtypes_, strict=True)
        ]

    def vocabulary_size(self, column: str | None = None) -> int:
        """Rows an embedding table needs for ``column`` (the first column by default): vocabulary + OOV."""
        names = self._check_fitted()
        if column is not None and column not in names:
            msg = f"StringIndexer has no column {column!r}; it indexes {names}"
            raise ColumnNotFoundError(msg)
        i = names.index(column) if column is not None else 0
        return len(self.vocabulary_[i]) + self.num_oov_indices

    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (name, values) in enumerate(chunk.items()):
            arr = _typed(values, name, self.dtypes_[name], type(self).__name__)
            index = pc.index_in(arr, value_set=self._value_sets[i])
            codes = np.asarray(index.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
            if self.num_oov_indices == 0 and (codes < 0).any():
                bad = pc.unique(arr.filter(pa.array(codes < 0))).to_pylist()[:5]
                msg = f"column {name!r} has values {bad} outside the vocabulary; refit, or use num_oov_indices=1"
                raise UnknownCategoryError(msg)
            out[name] = codes + self.num_oov_indices if self.num_oov_indices else codes
        return out

    def _params(self) -> dict[str, Any]:
        return {
            "min_frequency": self.min_frequency,
            "max_categories": self.max_categories,
            "num_oov_indices": self.num_oov_indices,
        }

    def _state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary_, "dtypes": self._types_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._load_types(state)
        self.vocabulary_ = [list(v) for v in state["vocabulary"]]
        self._sets()


def stable_hash(value: Any, seed: int) -> int:
    """xxh64 of a value's canonical bytes: UTF-8 for strings, 8 little-endian bytes for ints and floats.

    Example:
        >>> stable_hash("user-42", 0) == stable_hash("user-42", 0), stable_hash(1, 0) == stable_hash(True, 0)
        (True, True)
    """
    import xxhash

    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, int):  # bool too
        data = int(value).to_bytes(8, "little", signed=True) if -(2**63) <= value < 2**63 else str(value).encode()
    elif isinstance(value, float):
        data = struct.pack("<d", value)
    else:
        data = str(value).encode("utf-8")
    return int(xxhash.xxh64_intdigest(data, seed=seed))


class HashBucket(_Categorical):
    """Hash each value into one of ``num_buckets`` buckets (xxh64, stable across processes and machines).

    Nulls go to bucket ``num_buckets`` (an embedding table needs ``num_buckets + 1`` rows).
    Batches hash each distinct value once (Arrow dictionary encoding), so a column with few
    distinct values costs little however long it is. Output is int64.

    Args:
        num_buckets: Number of buckets (>= 1).
        seed: Hash seed (different seeds give independent hashings).
        columns: The columns to hash (default: the whole input).

    Example:
        >>> hb = HashBucket(100, columns=["user"]).fit({"user": ["a", "b"]})
        >>> hb.transform_row({"user": "a"}) == {"user": int(hb.transform({"user": ["a"]})["user"][0])}
        True
    """

    kind = "hash_bucket"
    _counts_needed = False

    def __init__(self, num_buckets: int, *, seed: int = 0, columns: Sequence[str] | None = None) -> None:
        super().__init__(columns=columns)
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
            msg = f"num_buckets must be an int >= 1, got {num_buckets!r}"
            raise ConfigError(msg)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            msg = f"seed must be an int in [0, 2**64), got {seed!r}"
            raise ConfigError(msg)
        self.num_buckets = num_buckets
        self.seed = seed

    def _finish(self, acc: dict[str, Any]) -> None:
        self._finish_types(acc)

    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, values in chunk.items():
            arr = _typed(values, name, self.dtypes_[name], type(self).__name__)
            encoded: Any = pc.dictionary_encode(arr)
            buckets = np.array(
                [stable_hash(v, self.seed) % self.num_buckets for v in encoded.dictionary.to_pylist()]
                + [self.num_buckets],
                dtype=np.int64,
            )
            codes = encoded.indices.fill_null(len(buckets) - 1).to_numpy(zero_copy_only=False)
            out[name] = buckets[np.asarray(codes, dtype=np.int64)]
        return out

    def _params(self) -> dict[str, Any]:
        return {"num_buckets": self.num_buckets, "seed": self.seed}

    def _state(self) -> dict[str, Any]:
        return {"dtypes": self._types_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._load_types(state)
