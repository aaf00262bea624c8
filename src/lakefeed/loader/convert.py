"""Arrow to numpy for the loader: one C-order feature matrix, labels and pass-through columns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ColumnNotFoundError, SchemaError, UnsupportedOperationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Batch", "BatchSpec", "Columns", "Ragged", "batch_of", "concat", "take"]


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

    @property
    def read_columns(self) -> list[str]:
        """Every column a batch needs, each once."""
        names = [*self.features, *([self.label] if self.label else []), *self.columns]
        return list(dict.fromkeys(names))

    def validate(self, schema: pa.Schema, table: str) -> None:
        """Check names and types against the scan's schema before anything is read."""
        import pyarrow as pa

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

    def from_batches(self, batches: Iterable[pa.RecordBatch], where: str, *, rows: int | None = None) -> Columns:
        """Convert record batches as they arrive (no whole Arrow table is held).

        With ``rows`` known the feature matrix is filled in place; otherwise each batch is
        converted on its own and the pieces are stacked at the end.
        """
        if rows is None:
            pieces = [self.from_batches([b], where, rows=b.num_rows) for b in batches]
            if not pieces:
                return self.from_batches([], where, rows=0)
            return concat(pieces) if len(pieces) > 1 else pieces[0]
        matrix = np.empty((rows, len(self.features)), dtype=self.dtype) if self.features else None
        others: dict[str, list[np.ndarray | Ragged]] = {
            n: [] for n in [*([self.label] if self.label else []), *self.columns]
        }
        row = 0
        for batch in batches:
            m = batch.num_rows
            if row + m > rows:
                msg = f"{where}: more rows than the {rows} planned; the table changed while it was read"
                raise SchemaError(msg)
            if matrix is not None:
                # each column converts without a copy; the transposition into the row-major
                # matrix runs in chunks that stay in cache
                columns = [self._numbers(batch.column(name), name, where) for name in self.features]
                for lo in range(0, m, TILE_ROWS):
                    hi = min(m, lo + TILE_ROWS)
                    np.stack([c[lo:hi] for c in columns], axis=1, out=matrix[row + lo : row + hi], casting="unsafe")
            for name, parts in others.items():
                parts.append(self._values(batch.column(name), name, where))
            row += m
        out: Columns = {}
        if matrix is not None:
            out[FEATURES] = matrix[:row]
        for name, parts in others.items():
            key = LABEL if name == self.label and name not in self.columns else name
            if len(parts) == 1:
                out[key] = parts[0]
            elif parts:
                out[key] = Ragged.concat(parts) if isinstance(parts[0], Ragged) else np.concatenate(parts)  # type: ignore[arg-type]
            else:
                out[key] = np.empty((0,))
        if self.label and self.label in self.columns:
            out[LABEL] = out[self.label]
        return out

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
            flat = column.combine_chunks()
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


def take(columns: Columns, index: np.ndarray | slice) -> Columns:
    """The same rows of every array."""
    return {k: v[index] for k, v in columns.items()}


def concat(parts: Sequence[Columns]) -> Columns:
    """Stack parts row-wise (one part is returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    out: Columns = {}
    for k, first in parts[0].items():
        if isinstance(first, Ragged):
            out[k] = Ragged.concat([p[k] for p in parts])  # type: ignore[misc]
        else:
            out[k] = np.concatenate([p[k] for p in parts])
    return out


def batch_of(columns: Columns) -> Batch:
    """What the loader hands out: arrays as they are, :class:`Ragged` columns as ``(values, offsets)``."""
    return {k: v.pair() if isinstance(v, Ragged) else v for k, v in columns.items()}
