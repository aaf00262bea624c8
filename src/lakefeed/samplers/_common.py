"""Checks and data helpers the samplers share (private)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lakefeed.errors import ConfigError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.tables.base import Scan, Table

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def check_int(name: str, value: object, *, minimum: int, owner: str) -> int:
    """``value`` as an int of at least ``minimum``, or a ConfigError naming ``name``."""
    if isinstance(value, bool | np.bool_):
        msg = f"{owner}: {name} must be an int >= {minimum}, got the bool {value!r}"
        raise ConfigError(msg)
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        msg = f"{owner}: {name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})"
        raise ConfigError(msg) from None
    if number < minimum:
        msg = f"{owner}: {name} must be an int >= {minimum}, got {number}"
        raise ConfigError(msg)
    return number


def encode_labels(labels: object, *, owner: str, name: str = "labels") -> tuple[np.ndarray, IntArray, IntArray]:
    """Classes (sorted), each row's class code, and rows per class, for a 1-D sequence of labels."""
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        msg = f"{owner}: {name} must be a 1-D sequence of class labels (ints or strings): {exc}"
        raise ConfigError(msg) from exc
    if array.ndim != 1:
        msg = f"{owner}: {name} must be 1-D (one label per row), got shape {array.shape}"
        raise ConfigError(msg)
    if array.size == 0:
        msg = f"{owner}: {name} is empty; pass one label per row of the dataset"
        raise ConfigError(msg)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        msg = f"{owner}: {name}[{bad}] is {array[bad]}; labels must be finite (drop or fill those rows)"
        raise ConfigError(msg)
    if array.dtype.kind == "O":
        missing = next((i for i, value in enumerate(array.tolist()) if value is None), None)
        if missing is not None:
            msg = f"{owner}: {name}[{missing}] is None; every row needs a label (drop or fill those rows)"
            raise ConfigError(msg)
    try:
        classes, codes, counts = np.unique(array, return_inverse=True, return_counts=True)
    except TypeError as exc:
        msg = f"{owner}: {name} mixes types that cannot be compared ({exc}); use labels of one type"
        raise ConfigError(msg) from exc
    return classes, codes.astype(np.int64).reshape(-1), counts.astype(np.int64)


def cycled_draw(codes: IntArray, counts: IntArray, take: IntArray, rng: np.random.Generator) -> IntArray:
    """``take[c]`` rows of every class ``c``, grouped by class (classes in code order).

    Within a class, the rows come as a sequence of independently shuffled copies of the
    class (a cycle per copy), cut after ``take[c]`` rows: with ``take[c] <= counts[c]`` a
    draw without replacement, otherwise every row ``take[c] // counts[c]`` or one more
    times.
    """
    by_class = np.argsort(codes, kind="stable")
    starts = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    cycles = -(-take // counts)  # ceil
    sizes = cycles * counts
    klass = np.repeat(np.arange(len(counts)), sizes)
    block = np.zeros(len(counts), np.int64)
    np.cumsum(sizes[:-1], out=block[1:])
    local = np.arange(int(sizes.sum()), dtype=np.int64) - block[klass]
    member = local % counts[klass]
    group = np.repeat(np.arange(int(cycles.sum())), np.repeat(counts, cycles))  # one group per (class, cycle)
    # shuffle within each group, groups stay in place (keys below group + 0.5 never round up to group + 1)
    order = np.argsort(group + 0.5 * rng.random(len(group)))
    rows = by_class[starts[klass] + member][order]
    return rows[local < take[klass]]


def read_column(source: Table | Scan, column: str, *, owner: str) -> pa.Array[Any]:
    """Read one column of a table or scan (and nothing else) as a pyarrow array, rows in scan order.

    A :class:`~lakefeed.Table` is scanned at its current snapshot with ``columns=[column]``.
    A :class:`~lakefeed.Scan` keeps its snapshot, filter and row order but is narrowed to
    ``column`` (which may be any column of the scanned table).

    Raises:
        ConfigError: ``source`` is neither a Table nor a Scan, or ``column`` is not a string.
        ColumnNotFoundError: The table has no such column.
        SchemaError: The column holds nulls.
    """
    from lakefeed.tables.base import Scan, Table

    if not isinstance(column, str):
        msg = f"{owner}.from_table: column must be a column name (str), got {column!r}"
        raise ConfigError(msg)
    if isinstance(source, Table):
        scan = source.scan(columns=[column])
    elif isinstance(source, Scan):
        scan = source if source.columns == [column] else narrow(source, column)
    else:
        msg = f"{owner}.from_table: expected a lakefeed Table or Scan, got {type(source).__name__}"
        raise ConfigError(msg)
    values: pa.Array[Any] = scan.to_arrow().column(column).combine_chunks()
    if values.null_count:
        msg = (
            f"{owner}.from_table: column {column!r} of table {scan.table.name} has {values.null_count} null "
            f"value(s); filter them out first, e.g. t.scan(filter=lf.col({column!r}).is_not_null())"
        )
        raise SchemaError(msg)
    return values


def narrow(scan: Scan, column: str) -> Scan:
    """The same scan (snapshot, filter, files, row order) projected to ``column`` only."""
    from lakefeed.tables.base import Scan

    return Scan(
        scan.table,
        snapshot_id=scan.snapshot_id,
        table_schema=scan.plan.table_schema,
        columns=[column],
        filter=scan.filter,
        parts=lambda _plan: scan.parts(),
    )


def numeric_column(array: pa.Array[Any], column: str, *, owner: str) -> FloatArray:
    """A pyarrow array of numbers as float64 numpy, or a SchemaError naming the column."""
    import pyarrow as pa

    if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type)):
        msg = f"{owner}.from_table: column {column!r} is {array.type}, expected a number column"
        raise SchemaError(msg)
    return np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def label_column(array: pa.Array[Any], column: str, *, owner: str) -> np.ndarray:
    """A pyarrow array of labels (ints, strings, bools, dictionary) as numpy, or a SchemaError."""
    import pyarrow as pa

    if isinstance(array.type, pa.DictionaryType):
        array = array.cast(array.type.value_type)
    kind = array.type
    if not (
        pa.types.is_integer(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_floating(kind)
    ):
        msg = f"{owner}.from_table: column {column!r} is {kind}, expected class labels (integers or strings)"
        raise SchemaError(msg)
    return np.asarray(array.to_numpy(zero_copy_only=False))


def as_float_array(values: Sequence[float] | np.ndarray, *, name: str, owner: str) -> FloatArray:
    """``values`` as a 1-D float64 array of finite numbers, or a ConfigError naming ``name``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        msg = f"{owner}: {name} must be a 1-D sequence of numbers: {exc}"
        raise ConfigError(msg) from exc
    if array.ndim != 1:
        msg = f"{owner}: {name} must be 1-D (one value per row), got shape {array.shape}"
        raise ConfigError(msg)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        msg = f"{owner}: {name}[{int(bad[0])}] is {array[bad[0]]}; every value must be finite ({bad.size} are not)"
        raise ConfigError(msg)
    return array
