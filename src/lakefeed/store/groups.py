"""Feature groups: Iceberg tables of feature rows, written offline and online in one call."""

from __future__ import annotations

import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakefeed.errors import (
    CommitConflictError,
    CommitError,
    LakefeedWarning,
    OnlineWriteUnknownError,
    SchemaError,
    UnsupportedOperationError,
)
from lakefeed.store.definitions import WRITE_COLUMN, FeatureGroupSpec, insert_rows
from lakefeed.tables.iceberg import IcebergTable
from lakefeed.tables.iceberg_files import IcebergFileAppend

if TYPE_CHECKING:
    from lakefeed.store.feature_store import FeatureStore
    from lakefeed.tables import Table

__all__ = ["FeatureGroup", "InsertResult", "as_table", "conform"]

MAX_ROWS_PER_INSERT = 1 << 32


@dataclass(frozen=True)
class InsertResult:
    """What an insert wrote: its rows, the group's new snapshot and the insert's write number."""

    rows: int
    snapshot_id: int | None
    write: int
    online_rows: int


def as_table(data: Any, what: str) -> pa.Table:
    """``data`` (Arrow, pandas, a dict of columns or a list of rows) as an Arrow table.

    Raises:
        SchemaError: Anything else, naming ``what`` it was given for.
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, dict | list):
        return pa.table(data) if isinstance(data, dict) else pa.Table.from_pylist(data)
    msg = f"{what} takes Arrow, pandas, a dict of columns or a list of rows, got {type(data).__name__}"
    raise SchemaError(msg)


def conform(data: Any, spec: FeatureGroupSpec) -> pa.Table:
    """``data`` checked and cast to the group's schema, before anything is written.

    Raises:
        SchemaError: A column is missing or unknown, a value does not fit its column's type,
            a key or event time is null, or a non-nullable column holds nulls.
    """
    table = as_table(data, f"insert into feature group {spec.name!r}")
    schema = spec.arrow_schema
    missing = [n for n in schema.names if n not in table.column_names]
    extra = [n for n in table.column_names if n not in schema.names]
    if missing or extra:
        msg = f"insert into feature group {spec.name!r}: "
        msg += f"missing column(s) {missing}" if missing else ""
        msg += ("; " if missing and extra else "") + (f"unknown column(s) {extra}" if extra else "")
        msg += f"; the group's columns are {schema.names}"
        raise SchemaError(msg)
    columns = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                msg = (
                    f"insert into feature group {spec.name!r}: column {field.name!r} is {column.type} "
                    f"and does not fit {field.type}: {exc}"
                )
                raise SchemaError(msg) from exc
        columns.append(column)
    out = pa.Table.from_arrays(columns, schema=schema)
    for name in [*spec.keys, spec.event_time]:
        nulls = out.column(name).null_count
        if nulls:
            msg = f"insert into feature group {spec.name!r}: {nulls} null(s) in {name!r}; keys and times are needed"
            raise SchemaError(msg)
    for field in schema:
        if not field.nullable and out.column(field.name).null_count:
            nulls = out.column(field.name).null_count
            msg = f"insert into feature group {spec.name!r}: {nulls} null(s) in {field.name!r}, which is not nullable"
            raise SchemaError(msg)
    if out.num_rows >= MAX_ROWS_PER_INSERT:
        msg = f"insert into feature group {spec.name!r}: {out.num_rows} rows; insert fewer than 2**32 rows at a time"
        raise SchemaError(msg)
    return out


class FeatureGroup:
    """A feature group of a :class:`~lakefeed.store.FeatureStore`: keys, an event time, features.

    Its rows live in an Iceberg table (the offline history: every row ever inserted, with a hidden
    write-order column); with ``online=True`` the latest row per key is also kept in the online
    store for serving.
    """

    def __init__(self, store: FeatureStore, spec: FeatureGroupSpec) -> None:
        self.store = store
        self.spec = spec

    @property
    def name(self) -> str:
        """The group's name."""
        return self.spec.name

    @property
    def features(self) -> list[str]:
        """The feature columns."""
        return self.spec.features

    @property
    def table(self) -> Table:
        """The lakefeed table holding the group's history (re-read: the current snapshot)."""
        return self.store._group_table(self.spec)

    def insert(self, data: Any) -> InsertResult:
        """Append rows to the history and, for an online group, update the online store.

        The data is checked and cast to the group's schema first; the offline append is one
        Iceberg commit (retried on a new snapshot when another writer committed first: appends
        commute); the online write is one atomic batch (latest event time wins). If the online
        write fails, the appended rows are deleted again (that delete is retried the same way, and
        only ever removes this insert's rows), so both stores stay as they were, and the online
        store's error is raised.

        While it runs the insert is recorded in the registry as in flight, so that a concurrent
        :meth:`FeatureStore.materialize` neither skips nor publishes it (see
        :mod:`lakefeed.store.materialize`).

        Args:
            data: An Arrow table or record batch, a pandas DataFrame, or a dict of columns.

        Returns:
            The rows written, the new snapshot id and the insert's write number.

        Raises:
            SchemaError: The data does not fit the group's schema (nothing is written).
            UnsupportedOperationError: The group is a registered read-only source.
            OnlineStoreUnavailableError: The online store is down (nothing is kept).
            CommitConflictError: Other writers kept committing first, through every retry
                (nothing is written).
            CommitError: The connection to the online store was lost after the write was sent
                and whether it was applied is unknown: the rows stay in the history and the next
                materialization writes them online. Or the online write failed and the insert
                could not be undone: its rows stay in the history. Either deleting them failed (the insert is never
                materialized; the message gives the call that removes them), or a
                materialization had already taken the insert over as stale (the message gives
                the call that rewrites its rows online). The online store's error is the cause.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from datetime import datetime
            >>> fs = lf.FeatureStore(tempfile.mkdtemp())
            >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
            >>> users = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=schema)
            >>> d1, d2 = datetime(2026, 1, 1), datetime(2026, 1, 2)
            >>> users.insert({"user_id": [1, 1], "ts": [d2, d1], "clicks": [5, 3]}).rows
            2
            >>> users.read().num_rows, users.latest().column("clicks").to_pylist()  # history; latest per key
            (2, [5])
        """
        spec = self.spec
        if spec.read_only:
            msg = f"feature group {spec.name!r} is a registered {spec.source_format} source and read-only here"
            raise UnsupportedOperationError(msg)
        rows = conform(data, spec)
        if spec.online:
            self.store._check_online(spec)  # before the append: nothing is written if it cannot go online
        registry = self.store.registry
        write = registry.next_write(spec.name)
        keep_record = False  # an insert that could not be undone stays "aborted": never materialized
        finished = False
        try:
            order = pa.array(np.left_shift(np.int64(write), 32) + np.arange(rows.num_rows, dtype=np.int64))
            stamped = rows.append_column(WRITE_COLUMN, order)
            table = self.table
            if not isinstance(table, IcebergTable):  # pragma: no cover - a group that is not read-only is Iceberg
                msg = f"feature group {spec.name!r}: its table {table.name} is not an Iceberg table"
                raise UnsupportedOperationError(msg)
            # the files are written once; only the commit is retried while other writers commit first
            append = IcebergFileAppend(
                table, what=f"insert {write} into feature group {spec.name!r}", attempts=COMMIT_ATTEMPTS
            )
            append.commit(append.write([stamped]))
            table = table.refresh()
            online_rows = 0
            if spec.online and rows.num_rows:
                try:
                    # one batch: the online side of an insert is atomic, like its offline side
                    online_rows = self.store._write_online(spec, [stamped])
                except OnlineWriteUnknownError as exc:
                    # it may have landed: undoing the append could leave online values the history
                    # lacks. Kept, it is a finished insert above the watermark (which cannot pass it
                    # until a materialization wrote it): the next one writes it, harmlessly if again.
                    finished = True
                    msg = (
                        f"insert {write} into feature group {spec.name!r}: whether its online write was applied is "
                        f"unknown ({exc}); its {rows.num_rows} rows stay in the history (not undone: do not insert "
                        f"them again), and the next fs.materialize({spec.name!r}) writes them online"
                    )
                    raise CommitError(msg) from exc
                except BaseException as exc:
                    try:
                        claimed = registry.abort_write(spec.name, write)
                    except Exception as failure:  # the registry is out of reach: undo the append all the same
                        exc.add_note(f"marking insert {write} aborted in the registry failed too: {failure}")
                        claimed = True
                    if not claimed:
                        raise _taken_over(spec, write, rows, exc) from exc
                    keep_record = True
                    _retry_commit(
                        table, lambda t: t.delete(insert_rows(write)), what=_undo_call(spec, write), cause=exc
                    )
                    keep_record = False  # rolled back: nothing of the insert is left
                    raise
                if registry.materialized(spec.name) == write - 1:
                    registry.set_materialized(spec.name, write)
            snapshot = table.refresh().snapshot_id
            finished = True
        finally:
            if not keep_record:
                _forget_insert(registry, spec.name, write, finished=finished)
        return InsertResult(rows.num_rows, snapshot, write, online_rows)

    def read(self, *, snapshot: int | None = None, with_write_order: bool = False) -> pa.Table:
        """The group's history (every inserted row), at ``snapshot`` or now."""
        scan = self.table.scan(snapshot=snapshot)
        out = scan.to_arrow()
        if not with_write_order and WRITE_COLUMN in out.column_names:
            out = out.drop([WRITE_COLUMN])
        return out

    def latest(self) -> pa.Table:
        """The latest row per key (greatest event time, then created time, then the later write)."""
        data = self.read(with_write_order=True)
        order: list[tuple[str, Literal["ascending", "descending"]]] = [(self.spec.event_time, "descending")]
        if self.spec.created_time:
            order.append((self.spec.created_time, "descending"))
        if WRITE_COLUMN in data.column_names:
            order.append((WRITE_COLUMN, "descending"))
        ranked = data.take(pc.sort_indices(data, sort_keys=order))
        keys = ranked.select(self.spec.keys)
        first = _first_of_each(keys)
        return ranked.take(first).drop([c for c in [WRITE_COLUMN] if c in ranked.column_names])

    def __repr__(self) -> str:
        return f"FeatureGroup({self.name!r}, keys={self.spec.keys}, event_time={self.spec.event_time!r})"


COMMIT_ATTEMPTS = 20
"""How often an insert tries its offline append, or its rollback, when other writers commit first."""


def _retry_commit(
    table: Table,
    commit: Callable[[Table], None],
    *,
    what: str | None = None,
    cause: BaseException | None = None,
) -> Table:
    """Run ``commit`` on ``table``, again on the new snapshot while other writers commit first.

    Each time the commit raises CommitConflictError, the table is refreshed after a short
    jittered wait and the commit redone, up to COMMIT_ATTEMPTS tries in all. ``commit`` must be
    safe to redo on a newer snapshot: an append (appends commute) or a delete by a filter. With
    ``what`` (a rollback) the table is refreshed before the first try too.

    Returns:
        The table as it was committed on.

    Raises:
        CommitConflictError: Every try conflicted (``what`` None).
        CommitError: ``what`` given: the commit could not be made, whatever the reason; the
            message is ``what`` (which names the call that does it), chained to ``cause``.
    """
    failure: Exception | None = None
    tries = 0
    while tries < COMMIT_ATTEMPTS:
        tries += 1
        try:
            if tries > 1:
                time.sleep(random.uniform(0.0, min(0.2, 0.005 * 2**tries)))
            if tries > 1 or what is not None:
                table = table.refresh()
            commit(table)
            return table
        except CommitConflictError as exc:  # another writer committed first: redo on the new snapshot
            if what is None and tries == COMMIT_ATTEMPTS:
                raise
            failure = exc
        except Exception as exc:
            if what is None:
                raise
            failure = exc
            break
    msg = f"{what} (it failed {tries} time(s); last: {type(failure).__name__}: {failure})"
    raise CommitError(msg) from cause


def _forget_insert(registry: Any, group: str, write: int, *, finished: bool) -> None:
    """Remove an insert's in-flight record; a registry that fails here never changes the insert's outcome.

    The record left behind is taken over by a materialization once stale (whatever rows the insert
    left are then published); so a finished insert warns, and a failed one keeps its own error.
    """
    pending = sys.exc_info()[1]  # the insert's own error (called from a finally): the note goes on it
    try:
        registry.finish_write(group, write)
    except Exception as failure:
        if finished:
            warnings.warn(
                f"insert {write} into feature group {group!r} is written, but its in-flight record could not be "
                f"removed from the registry ({failure}); a materialization takes it over once stale",
                LakefeedWarning,
                stacklevel=3,
            )
        elif pending is not None:
            pending.add_note(f"removing insert {write}'s in-flight record from the registry failed too: {failure}")


def _undo_call(spec: FeatureGroupSpec, write: int) -> str:
    return (
        f"insert {write} into feature group {spec.name!r}: the online write failed and deleting the insert's "
        "rows from the history again failed, so they stay there (never materialized: the insert is marked "
        "aborted in the registry); remove them with "
        f"fs.feature_group({spec.name!r}).table.delete((lf.col({WRITE_COLUMN!r}) >= {write << 32}) & "
        f"(lf.col({WRITE_COLUMN!r}) < {(write + 1) << 32}))"
    )


def _taken_over(spec: FeatureGroupSpec, write: int, rows: pa.Table, exc: BaseException) -> CommitError:
    """The error of an insert whose online write failed after a materialization took it over as stale."""
    times = rows.column(spec.event_time)
    low, high = pc.min(times).as_py(), pc.max(times).as_py()
    msg = (
        f"insert {write} into feature group {spec.name!r}: the online write failed ({type(exc).__name__}: {exc}) "
        "after a materialization took the insert over as stale (its writer presumed dead), and may have "
        "published its rows online; so they are kept in the history and not rolled back. Once the online store "
        f"works, rewrite them online with fs.materialize({spec.name!r}, start={low!r}, end=<just after {high!r}>)"
    )
    return CommitError(msg)


def _first_of_each(keys: pa.Table) -> pa.Array[Any]:
    """Positions of the first row of each distinct key (rows already ranked)."""
    indexed = keys.append_column("__pos", pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    grouped = indexed.group_by(keys.column_names, use_threads=False).aggregate([("__pos", "min")])
    first: pa.Array[Any] = pa.array(np.sort(grouped.column("__pos_min").to_numpy()))
    return first
