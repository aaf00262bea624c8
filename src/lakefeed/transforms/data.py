"""What transformers read and write: numpy, pandas, Arrow, lakefeed tables and scans, single rows.

Every input is seen as named columns. A 2-D array's columns are named ``x0, x1, ...`` (as
scikit-learn names them); a 1-D array or a list is one column ``x0``. Fitting reads an input
chunk by chunk (:func:`iter_chunks`): a lakefeed ``Table`` or ``Scan`` is streamed task by task
in threads, so a table larger than memory fits in bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError

if TYPE_CHECKING:
    import pandas as pd

    from lakefeed.tables import Scan

__all__ = [
    "Chunk",
    "Values",
    "as_arrow",
    "categories_of",
    "column_names",
    "fit_chunks",
    "is_table_like",
    "numbers",
    "numeric",
    "numeric_column",
    "to_chunk",
]

Values: TypeAlias = "np.ndarray | pa.Array[Any] | pa.ChunkedArray[Any]"
"""One column of a chunk: a numpy array or an Arrow array."""

Chunk: TypeAlias = "dict[str, Values]"
"""Named columns of a chunk of rows (all the same length)."""

InputKind = Literal["numpy", "pandas", "arrow_table", "arrow_batch", "scan"]

FIT_TASK_BYTES = 16 << 20
"""Decoded size of one fitting task: small enough that every thread holds one at a time cheaply."""


def _is_scan_like(data: object) -> bool:
    from lakefeed.tables import Scan, Table

    return isinstance(data, Table | Scan)


def input_kind(data: object) -> InputKind:
    """Which kind of input ``data`` is (pandas is recognised without importing it)."""
    if isinstance(data, pa.Table):
        return "arrow_table"
    if isinstance(data, pa.RecordBatch):
        return "arrow_batch"
    if type(data).__module__.startswith("pandas"):
        return "pandas"
    if _is_scan_like(data):
        return "scan"
    return "numpy"


def is_table_like(data: object) -> bool:
    """True for inputs with column names: pandas, Arrow, lakefeed tables and scans."""
    return input_kind(data) != "numpy" or isinstance(data, Mapping)


def _as_2d(data: object) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim == 1:
        return arr.reshape(-1, 1)
    if arr.ndim != 2:
        msg = f"expected a 1-D or 2-D array, got shape {arr.shape}; pass rows x features"
        raise ConfigError(msg)
    return arr


def column_names(data: Any) -> list[str]:
    """The column names of ``data`` (``x0, x1, ...`` for arrays)."""
    kind = input_kind(data)
    if kind in ("arrow_table", "arrow_batch"):
        return list(data.schema.names)
    if kind == "pandas":
        if hasattr(data, "columns"):
            return [str(c) for c in data.columns]
        return [str(getattr(data, "name", None) or "x0")]
    if kind == "scan":
        return list(_scan_of(data, None).columns)
    if isinstance(data, Mapping):
        return [str(k) for k in data]
    return [f"x{i}" for i in range(_as_2d(data).shape[1])]


def to_chunk(data: Any, columns: Sequence[str] | None = None) -> Chunk:
    """The named columns of an in-memory input (all columns when ``columns`` is None).

    Raises:
        ColumnNotFoundError: A named column is not in ``data``.
    """
    kind = input_kind(data)
    names = column_names(data)
    wanted = list(columns) if columns is not None else names
    missing = [c for c in wanted if c not in names]
    if missing:
        msg = f"column(s) {missing} not in the input; it has {names}"
        raise ColumnNotFoundError(msg)
    if kind in ("arrow_table", "arrow_batch"):
        return {c: data.column(c) for c in wanted}
    if kind == "pandas":
        frame = data if hasattr(data, "columns") else data.to_frame(names[0])
        return {c: _pandas_column(frame, c) for c in wanted}
    if kind == "scan":
        msg = "a lakefeed Table or Scan is read with fit(); transform() takes in-memory data (Arrow, pandas, numpy)"
        raise ConfigError(msg)
    if isinstance(data, Mapping):
        return {c: np.asarray(data[c]) for c in wanted}
    arr = _as_2d(data)
    return {c: arr[:, names.index(c)] for c in wanted}


def _pandas_column(frame: pd.DataFrame, name: str) -> Values:
    for c in frame.columns:
        if str(c) == name:
            series = frame[c]
            if series.dtype.kind in "biuf" and (isinstance(series.dtype, np.dtype) or not series.hasnans):
                numbers: np.ndarray = np.asarray(series.to_numpy())
                return numbers
            if series.dtype.kind in "biuf":  # a nullable extension dtype with missing values: int64 with nulls
                nullable: pa.Array[Any] = pa.array(series, from_pandas=True)
                return nullable
            objects: pa.Array[Any] = pa.array(series.to_numpy(dtype=object), from_pandas=True)
            return objects
    raise ColumnNotFoundError(name)  # pragma: no cover - checked by the caller


def as_arrow(values: Values) -> pa.Array[Any]:
    """``values`` as one Arrow array."""
    if isinstance(values, pa.ChunkedArray):
        chunks: list[Any] = list(values.chunks)
        joined: pa.Array[Any] = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
        return joined
    if isinstance(values, pa.Array):
        return values
    if values.dtype == object:
        # Python values; NaN and None are both missing (as pandas has them), not a float "nan"
        objects: pa.Array[Any] = pa.array(values.tolist(), from_pandas=True)
        return objects
    out: pa.Array[Any] = pa.array(values)
    return out


def numeric(values: Values, name: str, owner: str) -> np.ndarray:
    """A column as float64 numpy, nulls as NaN.

    Raises:
        SchemaError: The column is not numeric (or boolean).
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    arr = as_arrow(values)
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)):
        if pa.types.is_null(arr.type):
            return np.full(len(arr), np.nan)
        msg = f"column {name!r} is {arr.type}, expected a number for {owner}; encode it first (e.g. OneHotEncoder)"
        raise SchemaError(msg)
    # unsafe: an int64 beyond 2**53 rounds to the nearest float64, as a row's Python int does
    as_float = pc.cast(arr, pa.float64(), safe=False)
    return np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)


def _check_numeric(arr: pa.Array[Any] | pa.ChunkedArray[Any], name: str, owner: str) -> None:
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
        msg = f"column {name!r} is {t}, expected a number for {owner}; encode it first (e.g. OneHotEncoder)"
        raise SchemaError(msg)


def numeric_column(values: Values, name: str, owner: str) -> Values:
    """A numeric column as it is (numpy or Arrow, any number type; no copy), for statistics.

    Raises:
        SchemaError: The column is not numeric (or boolean).
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "biuf":
            return values
        return numeric(values, name, owner)
    arr = values
    _check_numeric(arr, name, owner)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan)
    return arr


def numbers(values: Values, name: str, owner: str) -> np.ndarray:
    """A numeric column as numpy in its own number type (float32 stays float32; nulls as NaN; bools as uint8).

    Transforms compute on it with ``dtype=np.float64`` ufuncs, which convert each element exactly
    as a row's Python number converts to float64: batch and row outputs stay bit-identical.

    Raises:
        SchemaError: The column is not numeric (or boolean).
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return values.view(np.uint8)
    if isinstance(values, np.ndarray):
        return numeric(values, name, owner)
    arr = as_arrow(values)
    _check_numeric(arr, name, owner)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan)
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.uint8())
    if arr.null_count and not pa.types.is_floating(arr.type):
        return numeric(arr, name, owner)
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


def categories_of(values: Values) -> pa.Array[Any]:
    """A categorical column as Arrow (numpy object arrays of Python values go through ``pa.array``)."""
    arr = as_arrow(values)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _scan_of(data: object, columns: Sequence[str] | None) -> Scan:
    from lakefeed.tables import Scan, Table

    if isinstance(data, Table):
        return data.scan(columns=list(columns) if columns is not None else None)
    if isinstance(data, Scan):
        if columns is None:
            return data
        missing = [c for c in columns if c not in data.columns]
        if missing:
            msg = f"column(s) {missing} not in the scan of {data.table.name}; it has {data.columns}"
            raise ColumnNotFoundError(msg)
        # the current snapshot is read with the current schema (names may have changed since the
        # snapshot was written: a rename makes no snapshot), an older one with its own
        current = data.snapshot_id == data.table.snapshot_id
        return data.table.scan(
            columns=list(columns), filter=data.filter, snapshot=None if current else data.snapshot_id
        )
    msg = f"expected a lakefeed Table or Scan, got {type(data).__name__}"  # pragma: no cover
    raise ConfigError(msg)  # pragma: no cover


def fit_chunks(
    data: object,
    columns: Sequence[str] | None,
    accumulate: Callable[[Iterator[Chunk]], Any],
    *,
    num_threads: int | None = None,
    on_task_done: Callable[[int], None] | None = None,
) -> list[Any]:
    """Run ``accumulate`` over ``data`` chunk by chunk; a table or scan in parallel, one call per task.

    ``accumulate`` gets an iterator of chunks and returns a partial result (mergeable
    statistics); the partial results come back in task order, so merging them in that order
    is deterministic however the threads were scheduled.

    Args:
        data: numpy, pandas, Arrow, or a lakefeed ``Table``/``Scan`` (streamed).
        columns: The columns to read (all when None).
        accumulate: Turns a stream of chunks into a partial result.
        num_threads: Threads reading a table's tasks (default: CPU count).
        on_task_done: Called with the rows of each finished task (progress display).

    Returns:
        The partial results, one per task (one for in-memory inputs).
    """
    if input_kind(data) != "scan":
        chunk = to_chunk(data, columns)
        result = [accumulate(iter([chunk]))]
        if on_task_done is not None:
            on_task_done(_rows(chunk))
        return result
    scan = _scan_of(data, columns)
    tasks = scan.tasks(FIT_TASK_BYTES)
    names = list(columns) if columns is not None else scan.columns

    def run(task: Any) -> Any:
        rows = 0

        def chunks() -> Iterator[Chunk]:
            nonlocal rows
            for batch in task.read():
                rows += batch.num_rows
                yield {c: batch.column(c) for c in names}

        out = accumulate(chunks())
        if on_task_done is not None:
            on_task_done(rows)
        return out

    if not tasks:
        return [accumulate(iter([]))]
    threads = max(1, min(len(tasks), num_threads or os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lakefeed-fit") as pool:
        return list(pool.map(run, tasks))


def total_rows(data: object) -> int | None:
    """Rows of ``data`` if cheaply known (for a progress bar)."""
    kind = input_kind(data)
    if kind == "scan":
        try:
            return int(_scan_of(data, None).count())
        except Exception:
            return None
    try:
        return _rows(to_chunk(data))
    except Exception:
        return None


def _rows(chunk: Chunk) -> int:
    for values in chunk.values():
        return len(values)
    return 0
