"""Reading a feature source for the point-in-time join: join columns first, features after.

A source is read in one fixed row order, in two phases:

1. :func:`read_history` reads the *join columns* (keys, event time, created time, write order)
   of every row. The join answers with positions in these rows.
2. :meth:`History.gather` reads the *feature columns* of the winning rows only, given their
   positions, and returns them in spine order.

For a lakefeed :class:`~lakefeed.Scan` both phases read the same :class:`~lakefeed.ScanTask`
parts (planned once, for all the columns the join uses), each phase with its own projection,
a few tasks at a time in threads. Phase 2 skips a task without a winning row unread, streams
the others and keeps of each batch just the rows asked for, so it holds the winning rows and at
most :data:`GATHER_BYTES` of tasks (by their estimated decoded size; one task when it is larger)
in decoding, never the whole table. A task must give phase 2 the rows it gave phase 1
(deletes, merges and the filter apply alike); one that gives a different number of rows raises
an internal error rather than attach another row's features.

In-memory Arrow is read once, whole; phase 2 then takes the rows chunk by chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import pyarrow as pa

from lakefeed._typing import DEFAULT_TARGET_BYTES
from lakefeed.store._pit_sql import default_threads
from lakefeed.tables.base import ReadPlan, Scan, ScanTask

__all__ = ["GATHER_BYTES", "TASK_BYTES", "History", "read_history"]

TASK_BYTES = DEFAULT_TARGET_BYTES
"""Target decoded size of the scan tasks both phases read (see :meth:`Scan.tasks`)."""

GATHER_BYTES = 2 * DEFAULT_TARGET_BYTES
"""Estimated decoded bytes of the tasks phase 2 reads at once (one task when it is larger)."""

_Data = pa.Table | pa.RecordBatch | pa.RecordBatchReader | Scan


@dataclasses.dataclass(frozen=True)
class _Unit:
    """A run of consecutive history rows whose features are read together."""

    start: int
    """Position of the unit's first row in the history."""
    rows: int
    """Rows of the unit, as phase 1 read them."""
    size: int
    """Estimated decoded bytes of the unit (what reading it holds in memory)."""
    read: Callable[[], Iterable[pa.RecordBatch]]
    """The unit's feature columns, batch by batch, in phase 1's row order."""
    what: str
    """The unit in messages."""


class History:
    """One source's rows in a fixed order: the join columns read, the features on demand."""

    def __init__(self, join: pa.Table, features: pa.Schema, units: Sequence[_Unit], *, workers: int) -> None:
        self.join = join
        """The join columns of every row, in the order positions refer to."""
        self.features = features
        """The schema of the feature columns :meth:`gather` returns."""
        self._units = units
        self._workers = workers

    def gather(self, rows: pa.Array[Any]) -> pa.Table:
        """The feature columns of the rows at ``rows`` (``int64`` positions, null for none), in that order."""
        if not self.features.names:
            return self.features.empty_table()
        n = len(rows)
        found = rows.drop_null().to_numpy()
        wanted = np.unique(found)  # sorted: each unit's share is one slice
        starts = np.fromiter((u.start for u in self._units), np.int64, len(self._units))
        ends = starts + np.fromiter((u.rows for u in self._units), np.int64, len(self._units))
        first = np.searchsorted(wanted, starts, side="left")
        last = np.searchsorted(wanted, ends, side="left")
        jobs = [(u, wanted[a:b] - u.start) for u, a, b in zip(self._units, first, last, strict=True) if b > a]
        parts = _run(jobs, self._workers)
        taken = pa.Table.from_batches([b for part in parts for b in part], schema=self.features)
        if taken.num_rows != len(wanted):
            msg = f"internal error: gathered {taken.num_rows} feature rows for {len(wanted)} positions"
            raise RuntimeError(msg)
        if n == 0:
            return taken
        # position -> row of `taken`; spine rows without a winner stay null
        filled = rows.fill_null(0).to_numpy()
        index: np.ndarray[Any, np.dtype[np.int64]] = np.searchsorted(wanted, filled).astype(np.int64)
        missing = rows.is_null().to_numpy(zero_copy_only=False) if rows.null_count else None
        return taken.take(pa.array(index, pa.int64(), mask=missing))


def _run(jobs: list[tuple[_Unit, np.ndarray[Any, np.dtype[np.int64]]]], workers: int) -> list[list[pa.RecordBatch]]:
    """:func:`_take_unit` of every job, in order: up to ``workers`` at once, within :data:`GATHER_BYTES`."""
    if workers <= 1 or len(jobs) <= 1:
        return [_take_unit(job) for job in jobs]
    results: list[list[pa.RecordBatch]] = [[] for _ in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="lakefeed-pit") as pool:
        running: dict[Future[list[pa.RecordBatch]], tuple[int, int]] = {}
        in_flight = 0

        def settle(futures: Iterable[Future[list[pa.RecordBatch]]]) -> None:
            nonlocal in_flight
            for future in futures:
                index, size = running.pop(future)
                in_flight -= size
                results[index] = future.result()

        for index, job in enumerate(jobs):
            size = job[0].size
            while running and (len(running) >= workers or in_flight + size > GATHER_BYTES):
                settle(wait(running, return_when=FIRST_COMPLETED).done)
            running[pool.submit(_take_unit, job)] = (index, size)
            in_flight += size
        settle(list(running))
    return results


def _take_unit(job: tuple[_Unit, np.ndarray[Any, np.dtype[np.int64]]]) -> list[pa.RecordBatch]:
    """The rows at sorted ``positions`` (relative to the unit) of one unit; checks its row count."""
    unit, positions = job
    out: list[pa.RecordBatch] = []
    seen = 0
    j = 0
    for batch in unit.read():
        end = seen + batch.num_rows
        k = int(np.searchsorted(positions, end, side="left"))
        if k > j:
            out.append(batch.take(positions[j:k] - seen))
        j, seen = k, end
    if seen != unit.rows:
        msg = (
            f"internal error: {unit.what} gave {unit.rows} rows when its join columns were read and {seen} when "
            "its features were; the two reads must see the same rows"
        )
        raise RuntimeError(msg)
    return out


def _project(plan: ReadPlan, columns: Sequence[str]) -> ReadPlan:
    return dataclasses.replace(plan, schema=pa.schema([plan.table_schema.field(c) for c in columns]))


def _read_scan(scan: Scan, join: list[str], features: list[str], workers: int) -> History:
    columns = list(dict.fromkeys([*join, *features]))
    if scan.columns != columns:
        # The same snapshot, filter and planner, projected to the columns the join needs, so
        # the parts are planned (and sized) once, for both phases.
        scan = Scan(
            scan.table,
            snapshot_id=scan.snapshot_id,
            table_schema=scan.plan.table_schema,
            columns=columns,
            filter=scan.filter,
            parts=scan._plan_parts,
        )
    tasks = scan.tasks(TASK_BYTES)
    first, second = _project(scan.plan, join), _project(scan.plan, features)

    def read_join(task: ScanTask) -> list[pa.RecordBatch]:
        return list(ScanTask(task.parts, first).read())

    if workers > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="lakefeed-pit") as ex:
            batches = list(ex.map(read_join, tasks))
    else:
        batches = [read_join(task) for task in tasks]
    units: list[_Unit] = []
    start = 0
    for i, (task, read) in enumerate(zip(tasks, batches, strict=True)):
        rows = sum(b.num_rows for b in read)
        units.append(
            _Unit(
                start,
                rows,
                task.estimated_bytes,
                ScanTask(task.parts, second).read,
                f"task {i} ({task!r}) of the scan of {scan.table.name}",
            )
        )
        start += rows
    table = pa.Table.from_batches([b for read in batches for b in read], schema=first.schema)
    return History(table, second.schema, units, workers=workers)


def _batches_unit(start: int, batch: pa.RecordBatch, what: str) -> _Unit:
    return _Unit(start, batch.num_rows, batch.nbytes, lambda: (batch,), what)


def read_history(data: _Data, *, join: Sequence[str], features: Sequence[str], threads: int | None = None) -> History:
    """Read the join columns of a feature source; its features come later, from :meth:`History.gather`.

    Args:
        data: The source's history (Arrow, a reader, or a lakefeed scan).
        join: The columns the join reads for every row.
        features: The columns gathered for the winning rows.
        threads: Threads reading a scan's tasks; one per CPU this process may use when None.
    """
    join, features = list(dict.fromkeys(join)), list(features)
    workers = threads or default_threads()
    if isinstance(data, Scan):
        return _read_scan(data, join, features, workers)
    columns = list(dict.fromkeys([*join, *features]))
    if isinstance(data, pa.RecordBatchReader):
        schema = pa.schema([data.schema.field(c) for c in columns])
        table = pa.Table.from_batches([batch.select(columns) for batch in data], schema=schema)
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data.select(columns)])
    else:
        table = data.select(columns)
    feature_table = table.select(features)
    units: list[_Unit] = []
    start = 0
    for i, batch in enumerate(feature_table.to_batches()):
        units.append(_batches_unit(start, batch, f"chunk {i} of the history"))
        start += batch.num_rows
    return History(table.select(join), feature_table.schema, units, workers=1)
