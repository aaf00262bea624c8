"""Arrow to numpy for the loader: one C-order feature matrix, labels and pass-through columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ColumnNotFoundError, SchemaError, UnsupportedOperationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BatchSpec", "Columns", "concat", "nbytes", "take"]

Columns = dict[str, np.ndarray]
"""Named numpy arrays of equal length (rows on axis 0)."""

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
            if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t) or pa.types.is_struct(t):
                msg = f"loader over {table}: column {name!r} is {t}; variable-length columns are not supported yet"
                raise UnsupportedOperationError(msg)

    def to_numpy(self, table: pa.Table, where: str) -> Columns:
        """Convert one decoded task (all rows) to the batch layout."""
        n = table.num_rows
        out: Columns = {}
        if self.features:
            matrix = np.empty((n, len(self.features)), dtype=self.dtype)
            row = 0
            for batch in table.to_batches():
                # per record batch each column converts without a copy; the transposition into
                # the row-major matrix runs in chunks that stay in cache
                columns = [self._numbers(batch.column(name), name, where) for name in self.features]
                m = batch.num_rows
                for lo in range(0, m, TILE_ROWS):
                    hi = min(m, lo + TILE_ROWS)
                    np.stack([c[lo:hi] for c in columns], axis=1, out=matrix[row + lo : row + hi], casting="unsafe")
                row += m
            out[FEATURES] = matrix
        if self.label:
            out[LABEL] = self._values(table.column(self.label), self.label, where)
        for name in self.columns:
            if name not in out:
                out[name] = self._values(table.column(name), name, where)
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

    def _values(self, column: Any, name: str, where: str) -> np.ndarray:
        import pyarrow as pa

        t = column.type
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


def take(columns: Columns, index: np.ndarray | slice) -> Columns:
    """The same rows of every array."""
    return {k: v[index] for k, v in columns.items()}


def concat(parts: Sequence[Columns]) -> Columns:
    """Stack parts row-wise (one part is returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def nbytes(columns: Columns) -> int:
    """Bytes held by the arrays (object arrays count their pointers only)."""
    return int(sum(v.nbytes for v in columns.values()))
