"""Arrow to numpy for the loader: one C-order feature matrix, labels and pass-through columns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ColumnNotFoundError, SchemaError, UnsupportedOperationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BatchSpec", "Columns", "concat", "take"]

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
        others: dict[str, list[np.ndarray]] = {n: [] for n in [*([self.label] if self.label else []), *self.columns]}
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
            if parts:
                out[key] = np.concatenate(parts) if len(parts) > 1 else parts[0]
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
