"""Arrow to numpy for the loader: one C-order feature matrix, labels and pass-through columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError, UnsupportedOperationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Batch", "BatchSpec", "Columns", "Decoded", "Ragged", "batch_of", "concat", "concat_arrays", "take"]


class Ragged:
    """Rows of variable-length lists: flat ``values`` and Arrow-style ``offsets`` (``n + 1`` of them).

    Row ``i`` is ``values[offsets[i]:offsets[i + 1]]``. Slicing and gathering rows are numpy
    operations on the whole column (no per-row Python). A batch hands it out as the pair
    ``(values, offsets[:-1])``: what ``torch.nn.EmbeddingBag(input, offsets)`` takes.

    Example:
        >>> r = Ragged(np.array([1, 2, 3, 4, 5]), np.array([0, 2, 2, 5]))
        >>> g = r[np.array([2, 0])]
        >>> g.values.tolist(), g.offsets.tolist(), len(r[1:3])
        ([3, 4, 5, 1, 2], [0, 3, 5], 2)
    """

    __slots__ = ("offsets", "values")

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values = values
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def dtype(self) -> np.dtype[Any]:
        """The values' dtype."""
        return self.values.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by values and offsets."""
        return int(self.values.nbytes + self.offsets.nbytes)

    def __getitem__(self, index: slice | np.ndarray) -> Ragged:
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            if step == 1:
                hi = max(lo, hi)
                offsets = self.offsets[lo : hi + 1]
                return Ragged(self.values[offsets[0] : offsets[-1]], offsets - offsets[0])
            index = np.arange(lo, hi, step)
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # value j of the result is value (starts[row] + j - offsets[row]) of this column
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return Ragged(self.values[positions], offsets)

    def copy(self) -> Ragged:
        """An independent copy (values and offsets)."""
        return Ragged(self.values.copy(), self.offsets.copy())

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        """The rows of every part, one after the other."""
        sizes = np.array([0] + [int(p.offsets[-1]) for p in parts[:-1]], dtype=np.int64).cumsum()
        offsets = np.concatenate(
            [parts[0].offsets[:1], *[p.offsets[1:] + shift for p, shift in zip(parts, sizes, strict=True)]]
        )
        return Ragged(np.concatenate([p.values for p in parts]), offsets.astype(np.int64, copy=False))

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, starts)``: the flat values and where each row starts in them."""
        return self.values, self.offsets[:-1]

    def __repr__(self) -> str:
        return f"Ragged(rows={len(self)}, values={len(self.values)}, dtype={self.values.dtype})"


Columns = dict[str, "np.ndarray | Ragged"]
"""Named arrays of equal length (rows on axis 0); variable-length lists are :class:`Ragged`."""
Batch = dict[str, Any]
"""A batch as handed out: numpy arrays, and ``(values, offsets)`` pairs for variable-length lists."""

FEATURES = "features"
TILE_ROWS = 8192
LABEL = "label"


@dataclass(frozen=True)
class BatchSpec:
    """What a batch holds: stacked features, a label and columns passed through as they are."""

    features: tuple[str, ...]
    label: str | None
    columns: tuple[str, ...]
    dtype: str = "float32"
    fill_null: float | None = None
    casts: tuple[tuple[str, str], ...] = ()
    """(output key, numpy dtype) for the label and pass-through columns."""
    arrow_transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = field(default=None, compare=False)
    """Applied to each record batch before its columns are taken (a transform pipeline)."""

    @property
    def read_columns(self) -> list[str]:
        """Every column a batch needs, each once."""
        names = [*self.features, *([self.label] if self.label else []), *self.columns]
        return list(dict.fromkeys(names))

    def check_outputs(self) -> None:
        """Refuse two outputs under one key (the later would silently replace the earlier)."""
        seen: dict[str, str] = {}
        for key, what in [
            *([(FEATURES, "the feature matrix")] if self.features else []),
            *([(LABEL, f"the label ({self.label!r})")] if self.label else []),
            *((name, f"column {name!r}") for name in self.columns),
        ]:
            if key in seen:
                msg = f"the loader's {seen[key]} and {what} would both be yielded as {key!r}; drop or rename one"
                raise ConfigError(msg)
            seen[key] = what

    def validate(self, schema: pa.Schema, table: str) -> None:
        """Check names and types against the scan's schema before anything is read."""
        import pyarrow as pa

        keys = dict(self.other_keys)
        for key, dtype in self.casts:
            if key not in keys:
                msg = f"dtypes names {key!r}, which the loader does not yield; it yields {list(keys)} and 'features'"
                raise ConfigError(msg)
            try:
                np.dtype(dtype)
            except TypeError as exc:
                msg = f"dtypes[{key!r}] = {dtype!r} is not a numpy dtype (e.g. 'float32', 'int64')"
                raise ConfigError(msg) from exc

        for name in self.read_columns:
            if name not in schema.names:
                msg = f"loader over {table}: no column {name!r}; columns are {schema.names}"
                raise ColumnNotFoundError(msg)
        for name in self.features:
            t = schema.field(name).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                msg = (
                    f"loader over {table}: feature {name!r} is {t}, not a number; encode it first "
                    "(a transform, or pass it in columns=[...] to receive it as it is)"
                )
                raise SchemaError(msg)
        for name in [*([self.label] if self.label else []), *self.columns]:
            t = schema.field(name).type
            if pa.types.is_list(t) or pa.types.is_large_list(t):
                t = t.value_type
                if pa.types.is_nested(t):
                    msg = f"loader over {table}: column {name!r} is a list of {t}; nested lists are not supported"
                    raise UnsupportedOperationError(msg)
            if pa.types.is_map(t) or pa.types.is_struct(t) or pa.types.is_union(t):
                msg = (
                    f"loader over {table}: column {name!r} is {t}; structs and maps are not supported, "
                    "select their fields as columns"
                )
                raise UnsupportedOperationError(msg)

    @property
    def other_keys(self) -> list[tuple[str, str]]:
        """(output key, source column) of the label and the pass-through columns."""
        keys = [(name, name) for name in self.columns]
        if self.label:
            keys.insert(0, (LABEL, self.label))
        return keys

    def decode(
        self, batches: Iterable[pa.RecordBatch], where: str, *, rows: int | None = None, into: Decoded | None = None
    ) -> Decoded:
        """Convert record batches as they arrive: features stay numpy views of Arrow's columns.

        The rows are appended to ``into`` (or a new :class:`Decoded`) batch by batch, so a
        reader can use the first rows while the rest decode. The transposition into a
        row-major matrix happens later, straight into the block that needs the rows
        (:meth:`Decoded.fill`): one copy from Arrow to the block.
        """
        out = into if into is not None else Decoded(self)
        try:
            seen = 0
            for batch in batches:
                m = batch.num_rows
                if self.arrow_transform is not None and m:
                    batch = self.arrow_transform(batch)
                if rows is not None and seen + m > rows:
                    msg = f"{where}: more rows than the {rows} planned; the table changed while it was read"
                    raise SchemaError(msg)
                if not m:
                    continue
                features = [self._numbers(batch.column(name), name, where) for name in self.features]
                others = {key: self._values(batch.column(name), name, where) for key, name in self.other_keys}
                for key, dtype in self.casts:
                    value = others[key]
                    if isinstance(value, Ragged):
                        others[key] = Ragged(value.values.astype(dtype, copy=False), value.offsets)
                    else:
                        others[key] = value.astype(dtype, copy=False)
                out.append(m, features, others)
                seen += m
            if rows is not None and seen != rows:
                msg = f"{where}: {seen} rows where {rows} were planned; the table changed while it was read"
                raise SchemaError(msg)
        except BaseException as exc:
            out.finish(exc)
            raise
        out.finish()
        return out

    def from_batches(self, batches: Iterable[pa.RecordBatch], where: str) -> Columns:
        """The rows of ``batches`` as a batch: the feature matrix, the label and the columns.

        Example:
            >>> import pyarrow as pa
            >>> spec = BatchSpec(("a", "b"), "y", ())
            >>> out = spec.from_batches([pa.record_batch({"a": [1, 2], "b": [0.5, 1.5], "y": [0, 1]})], "example")
            >>> out["features"].tolist(), out["label"].tolist()
            ([[1.0, 0.5], [2.0, 1.5]], [0, 1])
        """
        decoded = self.decode(batches, where)
        return decoded.take(0, decoded.rows)

    def _numbers(self, column: Any, name: str, where: str) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        if column.null_count:
            if self.fill_null is None:
                msg = (
                    f"feature {name!r} has {column.null_count} null(s) in {where}; pass fill_null=... "
                    "or a transform that fills them"
                )
                raise SchemaError(msg)
            column = pc.fill_null(column, pa.scalar(self.fill_null).cast(column.type, safe=False))
        if pa.types.is_boolean(column.type):
            column = column.cast(pa.uint8())
        return np.asarray(column.to_numpy(zero_copy_only=False))

    def _values(self, column: Any, name: str, where: str) -> np.ndarray | Ragged:
        import pyarrow as pa

        t = column.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return self._ragged(column, name, where)
        if pa.types.is_fixed_size_list(t):
            flat: Any = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            if flat.null_count:
                msg = f"column {name!r} has null lists in {where}"
                raise SchemaError(msg)
            return np.asarray(flat.flatten().to_numpy(zero_copy_only=False)).reshape(len(flat), t.list_size)
        if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)) and column.null_count:
            if self.fill_null is None:
                msg = f"column {name!r} has {column.null_count} null(s) in {where}; pass fill_null=..."
                raise SchemaError(msg)
            import pyarrow.compute as pc

            column = pc.fill_null(column, pa.scalar(self.fill_null).cast(t, safe=False))
        return np.asarray(column.to_numpy(zero_copy_only=False))

    def _ragged(self, column: Any, name: str, where: str) -> Ragged:
        """A list column as flat values and offsets (a null list is an empty one)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        values = column.flatten()  # the listed values of the valid rows, honouring a slice
        if values.null_count:
            if self.fill_null is None:
                msg = (
                    f"column {name!r} has {values.null_count} null value(s) in its lists in {where}; pass fill_null=..."
                )
                raise SchemaError(msg)
            values = pc.fill_null(values, pa.scalar(self.fill_null).cast(values.type, safe=False))
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(len(column) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Ragged(np.asarray(values.to_numpy(zero_copy_only=False)), offsets)


class Decoded:
    """A read task's rows as they decode: features as numpy views of Arrow columns, chunk by chunk.

    Holding a task this way costs what Arrow decoded, nothing more. The decoding thread
    adds chunks (:meth:`append`); readers of a row range (:meth:`fill`, :meth:`column`) wait only
    until that range has been decoded, so a block can be assembled from the first rows of a
    task while the rest still decode.
    """

    def __init__(self, spec: BatchSpec) -> None:
        import threading

        self.n_features = len(spec.features)
        self.dtype = np.dtype(spec.dtype)
        self.keys = [key for key, _ in spec.other_keys]
        self.starts = [0]
        self.features: list[list[np.ndarray]] = []
        self.others: dict[str, list[np.ndarray | Ragged]] = {key: [] for key in self.keys}
        self._ready = threading.Condition()
        self._done = False
        self._error: BaseException | None = None

    @property
    def rows(self) -> int:
        """Rows decoded so far (all of them once decoding finished)."""
        return self.starts[-1]

    def append(self, rows: int, features: list[np.ndarray], others: Columns) -> None:
        """Add the next ``rows`` rows (called by the decoding thread)."""
        with self._ready:
            if self._done:
                return
            self.features.append(features)
            for key in self.keys:
                self.others[key].append(others[key])
            self.starts.append(self.starts[-1] + rows)
            self._ready.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the task decoded, or failed with ``error`` (readers then raise it)."""
        with self._ready:
            if not self._done:
                self._done, self._error = True, error
            self._ready.notify_all()

    def wait(self, stop: int) -> None:
        """Block until rows ``[0, stop)`` are decoded; raise the decoding error if there was one."""
        with self._ready:
            while self.starts[-1] < stop and not self._done:
                self._ready.wait()
            if self._error is not None:
                raise self._error
            if self.starts[-1] < stop:
                msg = f"rows up to {stop} were asked of a task with {self.starts[-1]}"
                raise SchemaError(msg)

    def _chunks(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """(chunk, first, end) row ranges within the chunks that hold rows ``[start, stop)``."""
        import bisect

        self.wait(stop)
        chunk = bisect.bisect_right(self.starts, start) - 1
        while start < stop:
            base, end = self.starts[chunk], self.starts[chunk + 1]
            hi = min(stop, end)
            yield chunk, start - base, hi - base
            start = hi
            chunk += 1

    def fill(self, out: np.ndarray, start: int, stop: int) -> None:
        """Write rows ``[start, stop)`` into ``out`` (``stop - start`` rows, row-major).

        Runs in tiles of ``TILE_ROWS`` rows, so the columns being read and the rows being
        written stay in cache.
        """
        pos = 0
        for chunk, lo, hi in self._chunks(start, stop):
            columns = self.features[chunk]
            for t in range(lo, hi, TILE_ROWS):
                e = min(hi, t + TILE_ROWS)
                np.stack([c[t:e] for c in columns], axis=1, out=out[pos : pos + e - t], casting="unsafe")
                pos += e - t

    def column(self, key: str, start: int, stop: int) -> np.ndarray | Ragged:
        """Rows ``[start, stop)`` of the label or a pass-through column."""
        parts = [self.others[key][chunk][lo:hi] for chunk, lo, hi in self._chunks(start, stop)]
        return concat_arrays(parts) if parts else np.empty((0,))

    def take(self, start: int, stop: int) -> Columns:
        """Rows ``[start, stop)``: the feature matrix (a new array) and the other arrays."""
        out: Columns = {}
        if self.n_features:
            matrix = np.empty((stop - start, self.n_features), dtype=self.dtype)
            self.fill(matrix, start, stop)
            out[FEATURES] = matrix
        for key in self.keys:
            out[key] = self.column(key, start, stop)
        return out


def take(columns: Columns, index: np.ndarray | slice) -> Columns:
    """The same rows of every array."""
    return {k: v[index] for k, v in columns.items()}


def concat(parts: Sequence[Columns]) -> Columns:
    """Stack parts row-wise (one part is returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    return {k: concat_arrays([p[k] for p in parts]) for k in parts[0]}


def concat_arrays(parts: Sequence[np.ndarray | Ragged]) -> np.ndarray | Ragged:
    """Rows of arrays (or of :class:`Ragged` columns) one after the other."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], Ragged):
        return Ragged.concat(parts)  # type: ignore[arg-type]
    return np.concatenate(parts)  # type: ignore[arg-type]


def batch_of(columns: Columns) -> Batch:
    """What the loader hands out: arrays as they are, :class:`Ragged` columns as ``(values, offsets)``."""
    return {k: v.pair() if isinstance(v, Ragged) else v for k, v in columns.items()}
