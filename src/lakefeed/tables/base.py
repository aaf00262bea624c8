"""The table contract: :class:`Table`, :class:`Scan`, :class:`ScanTask`, snapshot pinning.

A format module subclasses :class:`Table` and turns a pinned snapshot into *parts*: the
smallest units of reading (a Parquet row group, a Paimon split, an Iceberg data file with
its delete files). :meth:`Scan.tasks` packs parts into :class:`ScanTask`s of about
``target_bytes`` of decoded data each. Every part applies deletes/merges, the exact filter
and the projection, so each task reads exactly its share of the scan.
"""

from __future__ import annotations

import collections
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lakefeed._typing import DEFAULT_TARGET_BYTES, SnapshotRef, TableFormat
from lakefeed.errors import (
    ColumnNotFoundError,
    ConfigError,
    DataFileNotFoundError,
    SnapshotNotFoundError,
    UnsupportedOperationError,
)
from lakefeed.expr import Expr, columns_of, to_pyarrow, validate

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

__all__ = ["ReadPlan", "Scan", "ScanTask", "Snapshot", "Table", "TablePart", "TableStats", "translate_missing_file"]

BATCH_ROWS = 65_536

PREFETCH_BYTES = 512 << 20
"""Estimated decoded bytes :meth:`Scan.to_batches` reads ahead by default (at least one task)."""


@dataclass(frozen=True)
class Snapshot:
    """One committed version of a table."""

    snapshot_id: int
    timestamp: datetime
    operation: str | None = None
    parent_id: int | None = None
    summary: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TableStats:
    """Rows, files and bytes of a table's current snapshot."""

    num_rows: int
    num_files: int
    file_bytes: int
    estimated_bytes: int
    exact_rows: bool


@dataclass(frozen=True)
class ReadPlan:
    """What every part of one scan reads: the output schema and the exact filter."""

    table_name: str
    schema: pa.Schema
    """Output schema (the projection, in the requested order)."""
    table_schema: pa.Schema
    """The table's schema at the pinned snapshot."""
    filter: Expr | None
    arrow_filter: pc.Expression | None
    use_threads: bool = True
    """Whether a part may decode its columns in Arrow's thread pool. A reader that runs many
    tasks in threads of its own (the loader) turns it off: one thread per task costs less."""

    @property
    def columns(self) -> list[str]:
        """The output column names."""
        return list(self.schema.names)

    @property
    def read_columns(self) -> list[str]:
        """Projection plus the columns only the filter needs, in table order."""
        wanted = set(self.schema.names) | set(self.filter_columns)
        return [n for n in self.table_schema.names if n in wanted]

    @cached_property
    def filter_columns(self) -> list[str]:
        """The columns the filter reads (computed once: batches are filtered by it one by one)."""
        return columns_of(self.filter)

    @cached_property
    def dataset_filter(self) -> pc.Expression | None:
        """What ``pyarrow.dataset`` may prune row groups with, when that is not ``arrow_filter``.

        None where the exact filter is safe to hand over (the common case); otherwise a
        superset of it that NaN-blind row-group statistics cannot mis-prune, after which the
        reader applies ``arrow_filter`` itself (see :func:`~lakefeed.tables.pruning.dataset_filter`).
        """
        from lakefeed.tables.pruning import dataset_filter

        return dataset_filter(self.filter, self.table_schema) if self.arrow_filter is not None else None

    def finish(self, batch: pa.RecordBatch, *, filtered: bool) -> pa.RecordBatch:
        """Apply the exact filter (unless done already), project and cast to the output schema."""
        if self.arrow_filter is not None and not filtered:
            batch = _filter_batch(batch, self.arrow_filter, self.filter_columns)
        if batch.schema.names != self.schema.names:
            batch = batch.select(self.schema.names)
        if not batch.schema.equals(self.schema):
            batch = batch.cast(self.schema)
        return batch


def _filter_batch(batch: pa.RecordBatch, expression: pc.Expression, columns: Sequence[str]) -> pa.RecordBatch:
    """The rows of ``batch`` that satisfy ``expression`` (which reads only ``columns``).

    The expression is evaluated on those columns alone, next to a row number; a batch whose
    rows all pass comes back as it is (no copy), otherwise the kept rows are taken.
    """
    import numpy as np
    import pyarrow as pa

    n = batch.num_rows
    names = [c for c in dict.fromkeys(columns) if c in batch.schema.names]
    row = "__row"
    while row in names:
        row = "_" + row
    small = pa.table([*(batch.column(c) for c in names), pa.array(np.arange(n, dtype=np.int64))], [*names, row])
    # Through a Table: pyarrow < 20 fails on RecordBatch.filter(expression) when no row matches.
    kept = small.filter(expression).column(row)
    if len(kept) == n:
        return batch
    return batch.take(kept.combine_chunks())


class TablePart(ABC):
    """The smallest unit of reading; formats subclass it."""

    num_rows: int
    """Rows in the part before the filter; an upper bound where ``exact_rows`` is False."""
    estimated_bytes: int
    """Estimated decoded (Arrow) size of the projected columns."""
    exact_rows: bool = True
    path: str

    @property
    def files(self) -> tuple[str, ...]:
        """The data files the part reads."""
        return (self.path,)

    @abstractmethod
    def read(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Yield the part's rows, filtered and projected to ``plan.schema``."""

    def merge(self, other: TablePart) -> TablePart | None:
        """Join an adjacent part of the same file into one, or return None."""
        return None

    def direct_fragment(self, plan: ReadPlan) -> ds.FileFragment | None:
        """A ``pyarrow.dataset`` fragment that reads exactly this part for ``plan``, if there is one.

        Parts that apply deletes, merges, renames or constants return None (the default).
        """
        return None


def translate_missing_file(exc: OSError, part: TablePart, table: str) -> DataFileNotFoundError | None:
    """The error naming a missing data file, if ``exc`` says the file is not there."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "No such file" in text or "does not exist" in text or "not found" in text:
        msg = (
            f"data file {part.path!r} of table {table} is missing from storage ({text.splitlines()[0]}); "
            "the table's metadata refers to it, so it was deleted or moved outside the table format: "
            "restore it, or roll the table back to a snapshot that does not use it"
        )
        return DataFileNotFoundError(msg)
    return None


class ScanTask:
    """A piece of a scan sized by decoded bytes; read it anywhere (a thread, a process, a Ray task).

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> wh = lf.Warehouse(tempfile.mkdtemp())
        >>> t = wh.create_table("demo.t", pa.table({"x": list(range(10))}))
        >>> [task.num_rows for task in t.scan().tasks()]
        [10]
    """

    def __init__(self, parts: Sequence[TablePart], plan: ReadPlan) -> None:
        self.parts: tuple[TablePart, ...] = tuple(parts)
        self.plan = plan

    @property
    def num_rows(self) -> int:
        """Rows before the filter (an upper bound where ``exact_rows`` is False)."""
        return sum(p.num_rows for p in self.parts)

    @property
    def exact_rows(self) -> bool:
        """Whether ``num_rows`` is exact (no deletes or merges still to apply)."""
        return all(p.exact_rows for p in self.parts)

    @property
    def estimated_bytes(self) -> int:
        """Estimated decoded size of the task's projected columns."""
        return sum(p.estimated_bytes for p in self.parts)

    @property
    def files(self) -> list[str]:
        """The data files the task reads."""
        return list(dict.fromkeys(f for p in self.parts for f in p.files))

    @property
    def schema(self) -> pa.Schema:
        """The schema of the batches :meth:`read` yields."""
        return self.plan.schema

    def read(self) -> Iterator[pa.RecordBatch]:
        """Yield the task's rows as record batches (deletes, merges and filter applied)."""
        for part in self.parts:
            try:
                yield from part.read(self.plan)
            except OSError as exc:
                translated = translate_missing_file(exc, part, self.plan.table_name)
                if translated is None:
                    raise
                raise translated from exc

    def to_arrow(self) -> pa.Table:
        """Read the whole task into one table."""
        import pyarrow as pa

        return pa.Table.from_batches(list(self.read()), schema=self.plan.schema)

    def __repr__(self) -> str:
        return f"ScanTask(files={len(self.files)}, num_rows={self.num_rows}, estimated_bytes={self.estimated_bytes})"


class Scan:
    """A pinned, projected, filtered read of a table. Immutable; cheap to create.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> wh = lf.Warehouse(tempfile.mkdtemp())
        >>> t = wh.create_table("demo.s", pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}))
        >>> scan = t.scan(columns=["y"], filter=lf.col("x") >= 2)
        >>> scan.to_arrow().column("y").to_pylist(), scan.count()
        (['b', 'c'], 2)
    """

    def __init__(
        self,
        table: Table,
        *,
        snapshot_id: int | None,
        table_schema: pa.Schema,
        columns: Sequence[str] | None,
        filter: Expr | None,
        parts: Callable[[ReadPlan], list[TablePart]],
    ) -> None:
        import pyarrow as pa

        if filter is not None and not isinstance(filter, Expr):
            msg = f"filter must be a lakefeed expression such as lf.col('a') > 1, got {filter!r}"
            raise ConfigError(msg)
        if isinstance(columns, str):
            msg = f"columns must be a list of names, got the string {columns!r}; write columns=[{columns!r}]"
            raise ConfigError(msg)
        names = list(table_schema.names) if columns is None else list(columns)
        missing = [c for c in names if c not in table_schema.names]
        if missing:
            msg = f"table {table.name}: no column(s) {missing}; columns are {table_schema.names}"
            raise ColumnNotFoundError(msg)
        if len(set(names)) != len(names):
            msg = f"columns {names} name a column twice"
            raise ConfigError(msg)
        if filter is not None:
            validate(filter, table_schema, table=f"table {table.name}")
        self.table = table
        self._snapshot_id = snapshot_id
        schema = pa.schema([table_schema.field(c) for c in names])
        arrow_filter = to_pyarrow(filter, table_schema) if filter is not None else None
        self.plan = ReadPlan(table.name, schema, table_schema, filter, arrow_filter)
        self._plan_parts = parts
        self._parts: list[TablePart] | None = None

    @property
    def snapshot_id(self) -> int | None:
        """The snapshot this scan reads (None for plain Parquet, which has no snapshots)."""
        return self._snapshot_id

    @property
    def schema(self) -> pa.Schema:
        """The schema of the rows the scan returns."""
        return self.plan.schema

    @property
    def columns(self) -> list[str]:
        """The projected column names."""
        return self.plan.columns

    @property
    def filter(self) -> Expr | None:
        """The row filter, if any."""
        return self.plan.filter

    def parts(self) -> list[TablePart]:
        """The smallest read units (planned once, then reused)."""
        if self._parts is None:
            self._parts = self._plan_parts(self.plan)
        return self._parts

    def tasks(self, target_bytes: int = DEFAULT_TARGET_BYTES) -> list[ScanTask]:
        """Split the scan into tasks of about ``target_bytes`` of decoded data each.

        Parts of one file are kept together where they fit; a single row group larger than
        the target becomes a task of its own. Together the tasks read exactly the scan.

        Args:
            target_bytes: Target decoded (in-memory Arrow) size of one task.

        Returns:
            The tasks, in table order.

        Raises:
            ConfigError: If ``target_bytes`` is not positive.
        """
        from lakefeed.tables.planning import balanced_groups

        if not isinstance(target_bytes, int) or isinstance(target_bytes, bool) or target_bytes <= 0:
            msg = f"target_bytes must be a positive int, got {target_bytes!r}"
            raise ConfigError(msg)
        groups = balanced_groups(self.parts(), lambda p: p.estimated_bytes, target_bytes)
        return [ScanTask(_merge_adjacent(g), self.plan) for g in groups]

    def to_batches(self, *, prefetch: int | None = None, max_bytes: int | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the rows in table order, reading tasks ahead in threads.

        At most ``prefetch`` tasks are read ahead (default: one per core, at least 2), holding
        at most ``max_bytes`` of estimated decoded data (default :data:`PREFETCH_BYTES`; the
        next task is always read, however large), so memory does not grow with the core count.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.tb", pa.table({"x": [1, 2, 3]}))
            >>> sum(b.num_rows for b in t.scan().to_batches(prefetch=1))
            3
        """
        depth = prefetch if prefetch is not None else max(2, os.cpu_count() or 2)
        budget = max_bytes if max_bytes is not None else PREFETCH_BYTES
        for name, value in (("prefetch", depth), ("max_bytes", budget)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                msg = f"{name} must be a positive int, got {value!r}"
                raise ConfigError(msg)
        tasks = iter(self.tasks())
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="lakefeed-scan") as pool:
            pending: collections.deque[tuple[Future[list[pa.RecordBatch]], int]] = collections.deque()
            ahead = 0  # estimated bytes of the tasks in `pending`
            nxt = next(tasks, None)

            def fill() -> None:
                nonlocal ahead, nxt
                while (
                    nxt is not None and len(pending) < depth and (not pending or ahead + nxt.estimated_bytes <= budget)
                ):
                    pending.append((pool.submit(_read_all, nxt), nxt.estimated_bytes))
                    ahead += nxt.estimated_bytes
                    nxt = next(tasks, None)

            fill()
            while pending:
                future, size = pending.popleft()
                batches = future.result()
                ahead -= size
                fill()  # the next tasks read while these batches are consumed
                yield from batches

    def to_arrow(self) -> pa.Table:
        """Read the whole scan into one Arrow table.

        Where every part is a plain Parquet row-group range (no deletes, merges, renames or
        partition constants), the parts are read as one ``pyarrow.dataset`` in Arrow's own
        thread pool; otherwise tasks are read in threads as by :meth:`to_batches`.
        """
        import pyarrow as pa

        parts = self.parts()
        direct = [(p, p.direct_fragment(self.plan)) for p in parts]
        if parts and all(f is not None for _, f in direct):
            fragments = [f for _, f in direct if f is not None]
            if len({id(f.filesystem) for f in fragments}) == 1:
                return self._read_dataset(parts, fragments)
        return pa.Table.from_batches(list(self.to_batches()), schema=self.plan.schema)

    def _read_dataset(self, parts: list[TablePart], fragments: list[ds.FileFragment]) -> pa.Table:
        import pyarrow as pa
        import pyarrow.dataset as ds

        plan = self.plan
        schema = pa.schema([plan.table_schema.field(c) for c in plan.read_columns])
        dataset = ds.FileSystemDataset(
            list[ds.Fragment](fragments), schema, ds.ParquetFileFormat(), fragments[0].filesystem
        )
        try:
            if plan.dataset_filter is None or plan.arrow_filter is None:
                table = dataset.to_table(columns=plan.columns, filter=plan.arrow_filter)
            else:  # prune with the NaN-safe superset, then apply the exact filter
                table = dataset.to_table(columns=plan.read_columns, filter=plan.dataset_filter)
                table = table.filter(plan.arrow_filter).select(plan.columns)
        except OSError as exc:
            for part in parts:
                if part.path in str(exc):
                    translated = translate_missing_file(exc, part, plan.table_name)
                    if translated is not None:
                        raise translated from exc
            raise
        return table if table.schema.equals(plan.schema) else table.cast(plan.schema)

    def to_pandas(self) -> pd.DataFrame:
        """Read the whole scan into a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def count(self) -> int:
        """Rows the scan returns; from metadata alone when there is no filter and nothing to merge."""
        parts = self.parts()
        if self.plan.filter is None and all(p.exact_rows for p in parts):
            return sum(p.num_rows for p in parts)
        narrow = Scan(
            self.table,
            snapshot_id=self._snapshot_id,
            table_schema=self.plan.table_schema,
            columns=columns_of(self.plan.filter)[:1] or self.plan.table_schema.names[:1],
            filter=self.plan.filter,
            parts=self._plan_parts,
        )
        return sum(b.num_rows for b in narrow.to_batches())

    def __repr__(self) -> str:
        return (
            f"Scan(table={self.table.name!r}, snapshot_id={self._snapshot_id}, columns={self.columns}, "
            f"filter={self.plan.filter})"
        )


def _read_all(task: ScanTask) -> list[pa.RecordBatch]:
    return list(task.read())


def _merge_adjacent(parts: Sequence[TablePart]) -> list[TablePart]:
    merged: list[TablePart] = []
    for part in parts:
        if merged:
            joined = merged[-1].merge(part)
            if joined is not None:
                merged[-1] = joined
                continue
        merged.append(part)
    return merged


class Table(ABC):
    """A table in one of the four formats, read and (where the format allows) written alike.

    Open one with :meth:`Warehouse.table <lakefeed.Warehouse.table>` or :func:`lakefeed.open_table`.
    """

    format: TableFormat

    def __init__(self, name: str) -> None:
        self.name = name

    # -- metadata ---------------------------------------------------------------------------

    @property
    @abstractmethod
    def schema(self) -> pa.Schema:
        """The current schema as Arrow."""

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary-key columns (empty when the table has none)."""
        return ()

    @property
    def partition_by(self) -> tuple[str, ...]:
        """Partition fields, e.g. ``("country", "day(ts)")``."""
        return ()

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the table's files live."""

    @property
    def snapshot_id(self) -> int | None:
        """The current snapshot's id (None when empty or for formats without snapshots)."""
        return None

    def snapshots(self) -> list[Snapshot]:
        """All snapshots, oldest first."""
        return []

    def refresh(self) -> Table:
        """Reload metadata to see other writers' commits; returns ``self``."""
        return self

    # -- reading ----------------------------------------------------------------------------

    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: Expr | None = None,
        snapshot: SnapshotRef | None = None,
    ) -> Scan:
        """Read some columns and rows of one snapshot (the current one unless given).

        Args:
            columns: Columns to return, in that order; all when None.
            filter: A filter such as ``lf.col("a") > 3``; applied exactly.
            snapshot: A snapshot id or a datetime (the snapshot current then).

        Returns:
            A :class:`Scan` pinned to that snapshot.

        Raises:
            ColumnNotFoundError: A column in ``columns`` or the filter does not exist.
            FilterTypeError: The filter compares a column with a value of another type.
            SnapshotNotFoundError: ``snapshot`` names no snapshot of this table.
        """
        snapshot_id = self._resolve_snapshot(snapshot)
        # The current snapshot is read with the current schema (renames and added columns
        # apply, as in Iceberg); time travel uses the schema of that snapshot.
        schema = self._schema_at(None if snapshot is None else snapshot_id)
        return Scan(
            self,
            snapshot_id=snapshot_id,
            table_schema=schema,
            columns=columns,
            filter=filter,
            parts=self._parts_planner(snapshot_id, current_schema=snapshot is None),
        )

    def to_arrow(self) -> pa.Table:
        """The whole current table as Arrow."""
        return self.scan().to_arrow()

    def stats(self) -> TableStats:
        """Rows, files and bytes of the current snapshot, from metadata."""
        parts = self.scan().parts()
        files = {f for p in parts for f in p.files}
        return TableStats(
            num_rows=sum(p.num_rows for p in parts),
            num_files=len(files),
            file_bytes=self._file_bytes(files),
            estimated_bytes=sum(p.estimated_bytes for p in parts),
            exact_rows=all(p.exact_rows for p in parts),
        )

    def _file_bytes(self, files: set[str]) -> int:
        return 0

    def _resolve_snapshot(self, snapshot: SnapshotRef | None) -> int | None:
        if snapshot is None:
            return self.snapshot_id
        snaps = self.snapshots()
        if isinstance(snapshot, datetime):
            at = snapshot if snapshot.tzinfo is not None else snapshot.astimezone()
            eligible = [s for s in snaps if s.timestamp <= at]
            if not eligible:
                first = snaps[0].timestamp.isoformat() if snaps else "none (the table has no snapshots)"
                msg = f"table {self.name} has no snapshot at or before {at.isoformat()}; the oldest is {first}"
                raise SnapshotNotFoundError(msg)
            return max(eligible, key=lambda s: (s.timestamp, s.snapshot_id)).snapshot_id
        if isinstance(snapshot, bool) or not isinstance(snapshot, int):
            msg = f"snapshot must be a snapshot id (int) or a datetime, got {snapshot!r}"
            raise ConfigError(msg)
        if snapshot not in {s.snapshot_id for s in snaps}:
            listed = ", ".join(f"{s.snapshot_id} ({s.timestamp:%Y-%m-%d %H:%M:%S})" for s in snaps[-20:]) or "none"
            msg = f"table {self.name} has no snapshot {snapshot}; it has: {listed}"
            raise SnapshotNotFoundError(msg)
        return snapshot

    @abstractmethod
    def _schema_at(self, snapshot_id: int | None) -> pa.Schema:
        """The Arrow schema at a snapshot."""

    @abstractmethod
    def _parts_planner(
        self, snapshot_id: int | None, *, current_schema: bool = True
    ) -> Callable[[ReadPlan], list[TablePart]]:
        """A function planning the parts of that snapshot for a read plan.

        ``current_schema`` says whether the plan uses the table's current schema (a read of the
        current snapshot) or the snapshot's own (time travel).
        """

    # -- writing ----------------------------------------------------------------------------

    def _unsupported(self, operation: str, hint: str = "") -> UnsupportedOperationError:
        msg = f"{self.format} table {self.name} does not support {operation}" + (f"; {hint}" if hint else "")
        return UnsupportedOperationError(msg)

    def append(self, data: Any) -> None:
        """Add rows in one atomic commit."""
        raise self._unsupported("append")  # noqa: EM101 - builds the error with its message

    def overwrite(self, data: Any, filter: Expr | None = None) -> None:
        """Replace all rows (or those matching ``filter``) with ``data`` in one atomic commit."""
        raise self._unsupported("overwrite")  # noqa: EM101 - builds the error with its message

    def upsert(self, data: Any) -> None:
        """Insert rows, replacing rows with the same primary key, in one atomic commit."""
        raise self._unsupported("upsert")  # noqa: EM101 - builds the error with its message

    def delete(self, filter: Expr) -> None:
        """Delete the rows matching ``filter`` in one atomic commit."""
        raise self._unsupported("delete")  # noqa: EM101 - builds the error with its message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, format={self.format!r}, snapshot_id={self.snapshot_id})"
