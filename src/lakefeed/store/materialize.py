"""Materialization: a feature group's history into the online store, incrementally and resumably.

Every insert into a feature group has a number, and every row carries it in its write-order
column (``insert << 32 | row``). The registry keeps the watermark: the last insert such that it
and every insert before it are finished and, unless aborted, all in the online store.
Materializing reads the inserts after it, one at a time, streaming each in batches (bounded
memory); each batch is one atomic online write, and the watermark moves past an insert only once
all its rows are written. A crash in the middle redoes at most that one insert, and redoing is
harmless: the online store keeps the latest row per key (a rewrite of the same row ties and
changes nothing), so there are neither duplicates nor gaps.

Inserts in flight. An insert takes its number and records itself as ``running`` in the
registry in one transaction, appends its rows offline, writes them online, and removes its
record when it has finished (see :meth:`FeatureGroup.insert`); an insert whose online write
failed marks itself ``aborted`` before it deletes its rows again, and stays ``aborted`` if the
delete cannot be done. A materialization reads the last insert number taken, then the inserts
in flight (in that order, so an insert that started in between cannot be missed), and:

* never reads the rows of an insert in flight: a ``running`` one may not have committed yet (or
  may still be rolled back), an ``aborted`` one is never published;
* reads the finished inserts after the watermark, including those after an insert in flight,
  but moves the watermark only up to just below the first ``running`` one (past ``aborted``
  ones, which are final), so the next run comes back for it;
* takes over a ``running`` insert that started ``stale_after`` or longer ago (its writer
  presumed dead): it removes the record, atomically and only if it is still ``running`` and
  stale, then reads and publishes whatever rows of it the history holds.

A writer that was only slow and finds its record gone must not roll back (its rows may already
be online): if its online write then fails, it keeps its rows and raises a ``CommitError``
telling how to rewrite them online (``materialize(group, start=..., end=...)``).

With ``start``/``end`` the rows in that event-time range are rewritten, of every finished insert
that is not ``aborted``, and the watermark is left alone.

A registered read-only source has no write order: it is read whole each time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lakefeed.errors import ConfigError
from lakefeed.store.definitions import WRITE_COLUMN, insert_rows

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.store.feature_store import FeatureStore
    from lakefeed.store.groups import FeatureGroup

__all__ = ["MaterializeResult", "materialize"]


@dataclass(frozen=True)
class MaterializeResult:
    """What a materialization wrote."""

    group: str
    rows: int
    """Rows read from the history and written."""
    updated: int
    """Keys whose online record changed (a key whose stored record is newer is left alone)."""
    inserts: int
    seconds: float
    watermark: int

    @property
    def rows_per_second(self) -> float:
        """Rows written per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


STALE_AFTER = timedelta(hours=1)
"""How long an insert may stay in flight before a materialization presumes its writer dead."""


def materialize(
    store: FeatureStore,
    group: FeatureGroup,
    *,
    start: Any = None,
    end: Any = None,
    progress: bool | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> MaterializeResult:
    """Write ``group``'s rows not yet in the online store (or those with ``start <= event time < end``).

    With ``start``/``end`` the rows in that event-time range are (re)written and the watermark
    is left alone; without them only the inserts after the watermark are read. Inserts in flight
    are not read, and hold the watermark below them (see the module docstring).

    Args:
        store: The feature store.
        group: An online feature group.
        start: Rewrite the rows with an event time at or after this.
        end: Rewrite the rows with an event time before this.
        progress: Show a progress bar (default: when stderr is a terminal).
        stale_after: An insert in flight for this long is presumed dead and taken over: its rows
            in the history are published. Keep it well above the longest insert.

    Raises:
        ConfigError: The group is not online, or the store has no online store.
        OnlineStoreUnavailableError: The online store is down (the watermark stays where it was).
    """
    from lakefeed.expr import col

    spec = group.spec
    if not spec.online:
        msg = f"feature group {spec.name!r} is offline only (online=False); nothing to materialize"
        raise ConfigError(msg)
    if store.online_store is None:
        msg = "this FeatureStore has no online store; pass online=... to FeatureStore"
        raise ConfigError(msg)
    if not isinstance(stale_after, timedelta) or stale_after < timedelta(0):
        msg = f"materialize {spec.name!r}: stale_after must be a timedelta of zero or more, got {stale_after!r}"
        raise ConfigError(msg)
    began = time.perf_counter()
    table = group.table
    window = None
    if start is not None:
        window = col(spec.event_time) >= start
    if end is not None:
        upper = col(spec.event_time) < end
        window = upper if window is None else window & upper
    has_write = WRITE_COLUMN in table.schema.names
    registry = store.registry
    first = registry.materialized(spec.name) + 1 if (window is None and has_write) else 1
    last = registry.writes(spec.name) if has_write else 1
    # after `last`: an insert that took its number before it is seen here unless it has finished
    in_flight = registry.in_flight(spec.name) if has_write else {}
    skip = set()
    for write, insert in sorted(in_flight.items()):
        if write > last:
            continue  # started after `last` was read: not this run's to read or take over
        if insert.state == "running" and registry.take_over(spec.name, write, stale_after=stale_after):
            continue  # its writer is presumed dead: publish what it committed
        skip.add(write)
    # the watermark stops below the first insert still running (an aborted one is final)
    limit = min([w for w in skip if in_flight[w].state == "running"], default=last + 1) - 1
    inserts = [w for w in range(first, last + 1) if w not in skip]
    if has_write:
        table = table.refresh()  # now: it holds the commits of every insert found finished above
    rows = updated = 0
    online = store.online_store
    with _progress(progress, spec.name, len(inserts)) as bar, online.bulk():
        for write in inserts:
            row_filter = window
            if has_write:
                in_insert = insert_rows(write)
                row_filter = in_insert if row_filter is None else row_filter & in_insert
            # one task read ahead: encoding and writing the records keep the other core busy
            read = _Counted(table.scan(filter=row_filter).to_batches(prefetch=1), rows, bar.rows)
            updated += store._write_online(spec, read)
            rows = read.rows
            if window is None and has_write and write <= limit:
                registry.set_materialized(spec.name, write)
            bar.insert_done()
    if window is None and has_write and limit >= first:
        registry.set_materialized(spec.name, limit)  # past aborted inserts up to the limit
    watermark = registry.materialized(spec.name) if has_write else 0
    return MaterializeResult(spec.name, rows, updated, len(inserts), time.perf_counter() - began, watermark)


class _Counted:
    """Batches passed through, counting their rows (from ``rows``)."""

    def __init__(
        self, batches: Iterable[pa.RecordBatch], rows: int = 0, on_rows: Callable[[int], None] | None = None
    ) -> None:
        self._batches = batches
        self.rows = rows
        self._on_rows = on_rows

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._batches:
            yield batch
            self.rows += batch.num_rows  # handed on: the next batch is asked for
            if self._on_rows is not None:
                self._on_rows(self.rows)


class _progress:
    """A progress bar over the inserts read, with the rows written so far."""

    def __init__(self, show: bool | None, group: str, total: int) -> None:
        self._bar: Any = None
        if show if show is not None else sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn(f"[bold]materializing {group}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("inserts, {task.fields[rows]:,} rows"),
                TimeElapsedColumn(),
            )
            self._task = self._bar.add_task("inserts", total=total, rows=0)

    def __enter__(self) -> _progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def rows(self, rows: int) -> None:
        """``rows`` rows written so far."""
        if self._bar is not None:
            self._bar.update(self._task, rows=rows)

    def insert_done(self) -> None:
        """One more insert read whole."""
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
