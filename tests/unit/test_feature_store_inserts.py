"""Inserts against concurrent writers and materializations: commit retries, rollbacks, inserts in flight.

Races are driven explicitly: an insert number taken by calling the registry, or an insert held in
its online write by an event while the test runs a materialization.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

import lakefeed as lf
from lakefeed.errors import CommitConflictError, CommitError, ConfigError, OnlineStoreUnavailableError
from lakefeed.store import groups as groups_module
from lakefeed.store.definitions import WRITE_COLUMN, FeatureGroupSpec
from lakefeed.store.registry import InFlight, Registry
from lakefeed.tables.iceberg import IcebergTable
from lakefeed.tables.iceberg_files import IcebergFileAppend

T0 = datetime(2026, 1, 1)
USERS = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
NO_RETRIES = {"commit.retry.num-retries": "0"}  # pyiceberg's own retries off: every race is a conflict


def _row(user: int, clicks: int) -> dict[str, list[Any]]:
    return {"user_id": [user], "ts": [T0], "clicks": [clicks]}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    with lf.FeatureStore(path) as fs:
        fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS, properties=NO_RETRIES)
    return path


@pytest.fixture
def fs(home: Path) -> Iterator[lf.FeatureStore]:
    with lf.FeatureStore(home) as store:
        yield store


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)  # the jittered waits between retries


def _online(fs: lf.FeatureStore, user: int) -> dict[str, Any] | None:
    if not fs.online_store.has_group("g"):
        return None
    result: dict[str, Any] | None = fs.online_store.read("g", [user])[0]
    return result


def _failing_online(fs: lf.FeatureStore, error: BaseException) -> None:
    def fail(spec: FeatureGroupSpec, batches: Iterable[pa.Table | pa.RecordBatch]) -> int:
        raise error

    fs._write_online = fail  # type: ignore[method-assign]


def _users(fs: lf.FeatureStore) -> list[int]:
    return sorted(int(u) for u in fs.feature_group("g").read().column("user_id").to_pylist() if u is not None)


def _append_raw(fs: lf.FeatureStore, write: int, data: dict[str, list[Any]]) -> None:
    """What an insert holding number ``write`` commits offline."""
    rows = pa.table(data, schema=USERS)
    order = pa.array(np.left_shift(np.int64(write), 32) + np.arange(rows.num_rows, dtype=np.int64))
    fs.feature_group("g").table.append(rows.append_column(WRITE_COLUMN, order))


# -- Bug A: commit conflicts ----------------------------------------------------------------------


def test_a_rollback_that_races_other_writers_is_retried_and_raises_the_online_error(
    fs: lf.FeatureStore, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = lf.FeatureStore(home)
    real_delete = IcebergTable.delete
    calls = []

    def racing_delete(self: IcebergTable, filter: lf.Expr) -> None:
        calls.append(filter)
        if len(calls) <= 2:  # another writer commits between the refresh and the delete
            other.feature_group("g").insert(_row(100 + len(calls), 1))
        real_delete(self, filter)

    monkeypatch.setattr(IcebergTable, "delete", racing_delete)
    boom = OnlineStoreUnavailableError("redis is down")
    _failing_online(fs, boom)
    with pytest.raises(OnlineStoreUnavailableError) as info:
        fs.feature_group("g").insert(_row(1, 1))
    assert info.value is boom
    assert len(calls) == 3
    assert _users(fs) == [101, 102]
    assert fs.registry.in_flight("g") == {}
    other.close()


def test_an_append_that_races_another_writer_is_retried(
    fs: lf.FeatureStore, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = lf.FeatureStore(home)
    real_commit = IcebergFileAppend.commit
    raced: list[bool] = []

    def racing_commit(self: IcebergFileAppend, files: Any) -> int | None:
        if not raced:
            raced.append(True)
            other.feature_group("g").insert(_row(2, 2))  # commits first, between this insert's files and its commit
        return real_commit(self, files)

    monkeypatch.setattr(IcebergFileAppend, "commit", racing_commit)
    result = fs.feature_group("g").insert(_row(1, 1))
    assert result.write == 1  # the other writer took number 2 inside this insert
    assert _users(fs) == [1, 2]
    assert _online(fs, 1) == {"clicks": 1}
    assert fs.registry.in_flight("g") == {}
    other.close()


def test_an_append_that_always_conflicts_writes_nothing(fs: lf.FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table import Transaction

    attempts = []

    def conflict(self: Transaction) -> None:
        attempts.append(1)
        msg = "another writer committed first"
        raise CommitFailedException(msg)

    monkeypatch.setattr(Transaction, "commit_transaction", conflict)
    location = Path(fs.feature_group("g").table.location.removeprefix("file://"))
    before = sorted(location.rglob("*.parquet"))
    with pytest.raises(CommitConflictError):
        fs.feature_group("g").insert(_row(1, 1))
    assert len(attempts) == groups_module.COMMIT_ATTEMPTS
    assert sorted(location.rglob("*.parquet")) == before  # the append's files are deleted again
    assert fs.registry.in_flight("g") == {}


def test_a_rollback_that_cannot_be_done_names_the_fix_and_is_never_materialized(
    fs: lf.FeatureStore, home: Path, monkeypatch: pytest.MonkeyPatch, no_backoff: None
) -> None:
    real_delete = IcebergTable.delete

    def conflict(self: IcebergTable, filter: lf.Expr) -> None:
        raise CommitConflictError("another writer committed first")

    monkeypatch.setattr(IcebergTable, "delete", conflict)
    boom = OnlineStoreUnavailableError("redis is down")
    _failing_online(fs, boom)
    with pytest.raises(CommitError) as info:
        fs.feature_group("g").insert(_row(1, 1))
    error = info.value
    assert type(error) is CommitError  # not a conflict: retrying the insert would duplicate rows
    assert error.__cause__ is boom
    message = str(error)
    assert "insert 1 into feature group 'g'" in message
    assert f"{groups_module.COMMIT_ATTEMPTS} time(s)" in message
    assert fs.registry.in_flight("g") == {1: InFlight(1, "aborted", fs.registry.in_flight("g")[1].started_at)}
    # a later insert, then a materialization from a healthy client: the aborted rows are never published
    monkeypatch.setattr(IcebergTable, "delete", real_delete)
    with lf.FeatureStore(home) as healthy:
        healthy.feature_group("g").insert(_row(2, 2))
        result = healthy.materialize("g", stale_after=timedelta(0))
        assert result.watermark == 2  # an aborted insert is final: the watermark passes it
        assert _online(healthy, 1) is None
        assert _online(healthy, 2) == {"clicks": 2}
        # the call in the message removes exactly the insert's rows
        call = re.search(r"remove them with (fs\.feature_group\(.*?\)\)) \(it failed", message)
        assert call is not None
        eval(call.group(1), {"fs": healthy, "lf": lf})
        assert healthy.feature_group("g").read().column("user_id").to_pylist() == [2]


# -- Bug B: materialization and inserts in flight --------------------------------------------------


def test_materialize_stops_below_an_insert_in_flight_and_takes_over_a_stale_one(fs: lf.FeatureStore) -> None:
    group = fs.feature_group("g")
    first = fs.registry.next_write("g")  # a writer between taking its number and committing
    assert group.insert(_row(2, 2)).write == 2
    assert fs.registry.materialized("g") == 0  # the insert-side advance waits for insert 1
    result = fs.materialize("g")
    assert (result.inserts, result.watermark) == (1, 0)  # insert 2 read, the watermark below insert 1
    _append_raw(fs, first, _row(1, 1))  # the writer commits offline, then dies
    result = fs.materialize("g")
    assert (result.rows, result.watermark) == (1, 0)  # still in flight: not read
    assert _online(fs, 1) is None
    result = fs.materialize("g", stale_after=timedelta(0))  # presumed dead: taken over
    assert (result.rows, result.watermark) == (2, 2)
    assert _online(fs, 1) == {"clicks": 1}
    assert fs.registry.in_flight("g") == {}
    assert fs.materialize("g").inserts == 0


def test_a_stale_insert_that_never_committed_leaves_no_gap_behind(fs: lf.FeatureStore) -> None:
    first = fs.registry.next_write("g")
    result = fs.materialize("g", stale_after=timedelta(0))  # taken over with nothing committed
    assert (result.rows, result.watermark) == (0, 1)
    assert first == 1


class _HeldInsert:
    """An insert run in a thread, held in its online write until ``release``."""

    def __init__(self, fs: lf.FeatureStore, data: dict[str, list[Any]], *, online_error: Exception | None) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        real = fs._write_online

        def held(spec: FeatureGroupSpec, batches: Iterable[pa.Table | pa.RecordBatch]) -> int:
            self.entered.set()
            if not self.go.wait(timeout=60):
                raise TimeoutError("the test never released the insert")
            if online_error is not None:
                raise online_error
            return real(spec, batches)

        fs._write_online = held  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, args=(lambda: fs.feature_group("g").insert(data),))
        self._thread.start()
        assert self.entered.wait(timeout=60)

    def _run(self, insert: Callable[[], Any]) -> None:
        try:
            self.result = insert()
        except BaseException as exc:  # handed to the test
            self.error = exc

    def release(self) -> None:
        self.go.set()
        self._thread.join(timeout=60)


def test_materialize_never_publishes_an_insert_that_is_rolled_back(fs: lf.FeatureStore, home: Path) -> None:
    boom = OnlineStoreUnavailableError("redis is down")
    held = _HeldInsert(fs, _row(1, 1), online_error=boom)  # committed offline, online write pending
    with lf.FeatureStore(home) as other:
        result = other.materialize("g")
        assert (result.rows, result.watermark) == (0, 0)
        assert _online(other, 1) is None
        held.release()
        assert held.error is boom
        assert other.feature_group("g").read().num_rows == 0
        result = other.materialize("g")
        assert (result.rows, result.watermark) == (0, 1)
        assert _online(other, 1) is None


def test_a_slow_insert_taken_over_keeps_its_rows_when_its_online_write_fails(fs: lf.FeatureStore, home: Path) -> None:
    boom = OnlineStoreUnavailableError("redis is down")
    held = _HeldInsert(fs, _row(1, 1), online_error=boom)
    with lf.FeatureStore(home) as other:
        result = other.materialize("g", stale_after=timedelta(0))  # the slow writer is presumed dead
        assert (result.rows, result.watermark) == (1, 1)
        held.release()
        assert type(held.error) is CommitError
        assert held.error.__cause__ is boom
        assert "fs.materialize('g', start=" in str(held.error)
        assert other.feature_group("g").read().num_rows == 1  # not rolled back: it is online
        assert _online(other, 1) == {"clicks": 1}
        assert other.registry.in_flight("g") == {}


def test_a_slow_insert_taken_over_finishes_normally(fs: lf.FeatureStore, home: Path) -> None:
    held = _HeldInsert(fs, _row(1, 1), online_error=None)
    with lf.FeatureStore(home) as other:
        assert other.materialize("g", stale_after=timedelta(0)).watermark == 1
        held.release()
        assert held.error is None
        assert held.result.write == 1
        assert other.registry.in_flight("g") == {}
        assert other.registry.materialized("g") == 1


def test_a_window_rewrite_skips_inserts_in_flight(fs: lf.FeatureStore) -> None:
    fs.feature_group("g").insert(_row(2, 2))
    write = fs.registry.next_write("g")
    _append_raw(fs, write, _row(1, 1))
    result = fs.materialize("g", start=T0 - timedelta(days=1), end=T0 + timedelta(days=1))
    assert (result.rows, result.watermark) == (1, 1)
    assert _online(fs, 1) is None


def test_stale_after_must_be_a_timedelta(fs: lf.FeatureStore) -> None:
    with pytest.raises(ConfigError, match="stale_after"):
        fs.materialize("g", stale_after=timedelta(seconds=-1))


# -- the registry ---------------------------------------------------------------------------------


def test_the_registry_records_inserts_in_flight(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/catalog.db"
    _registry_in_flight_contract(uri)


def test_a_registry_made_before_inserts_were_tracked_gets_the_table(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/catalog.db"
    _registry_upgrade_contract(uri)


def _registry_in_flight_contract(uri: str, group: str = "g") -> None:
    """Shared with the PostgreSQL tests."""
    from lakefeed.store.definitions import schema_to_b64

    registry = Registry(uri)
    spec = FeatureGroupSpec(
        name=group, keys=["user_id"], event_time="ts", table=f"features.{group}", schema_b64=schema_to_b64(USERS)
    )
    registry.put_group(spec)
    try:
        assert [registry.next_write(group) for _ in range(3)] == [1, 2, 3]
        assert sorted(registry.in_flight(group)) == [1, 2, 3]
        assert registry.finish_write(group, 1)
        assert not registry.finish_write(group, 1)
        assert registry.abort_write(group, 2)
        assert not registry.abort_write(group, 2)
        assert not registry.take_over(group, 2, stale_after=timedelta(0))  # aborted: never taken over
        assert not registry.take_over(group, 3, stale_after=timedelta(hours=1))  # not stale
        assert registry.take_over(group, 3, stale_after=timedelta(0))
        assert not registry.abort_write(group, 3)  # taken over: the writer must not roll back
        assert {w: i.state for w, i in registry.in_flight(group).items()} == {2: "aborted"}
        assert registry.next_write(group) == 4
        assert not registry.forget_aborted(group, 4)  # running: only an aborted record is forgotten
        assert not registry.forget_aborted(group, 3)  # not there
        assert registry.forget_aborted(group, 2)
        assert not registry.forget_aborted(group, 2)
        assert sorted(registry.in_flight(group)) == [4]
        registry.delete_group(group)
        assert registry.in_flight(group) == {}
    finally:
        if group in registry.list_groups():
            registry.delete_group(group)
        registry.close()
    _registry_pruning_contract(uri, group)


def _backdate(registry: Registry, group: str, write: int, age: timedelta) -> None:
    """Make an insert in flight look as if it started ``age`` ago (a writer that died then)."""
    inserts = sa.table("lakefeed_inserts", sa.column("group_name"), sa.column("write"), sa.column("started_at"))
    started = registry.in_flight(group)[write].started_at - age // timedelta(microseconds=1)
    with registry.engine.begin() as conn:
        conn.execute(
            inserts.update().where(inserts.c.group_name == group, inserts.c.write == write).values(started_at=started)
        )


def _registry_pruning_contract(uri: str, group: str) -> None:
    """Records left by dead writers: an offline group's go with its next insert, an online group's stay."""
    from lakefeed.store.definitions import schema_to_b64
    from lakefeed.store.materialize import STALE_AFTER

    registry = Registry(uri)
    offline = f"{group}_offline"
    for name, online in [(group, True), (offline, False)]:
        registry.put_group(
            FeatureGroupSpec(
                name=name,
                keys=["user_id"],
                event_time="ts",
                table=f"features.{name}",
                schema_b64=schema_to_b64(USERS),
                online=online,
            )
        )
    try:
        for name in (group, offline):
            assert [registry.next_write(name) for _ in range(3)] == [1, 2, 3]
            assert registry.abort_write(name, 3)
            _backdate(registry, name, 1, STALE_AFTER)  # dead for an hour
            _backdate(registry, name, 3, STALE_AFTER)
            _backdate(registry, name, 2, STALE_AFTER - timedelta(minutes=5))  # not stale yet
            assert registry.next_write(name) == 4
        # never materialized: the stale running record goes; the young and the aborted ones stay
        assert {w: i.state for w, i in registry.in_flight(offline).items()} == {
            2: "running",
            3: "aborted",
            4: "running",
        }
        # online: a materialization takes it over (with its own stale_after)
        assert sorted(registry.in_flight(group)) == [1, 2, 3, 4]
    finally:
        for name in (group, offline):
            if name in registry.list_groups():
                registry.delete_group(name)
        registry.close()


def _registry_upgrade_contract(uri: str, group: str = "g") -> None:
    from lakefeed.store.definitions import schema_to_b64

    Registry(uri).close()
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        conn.execute(sa.text("drop table lakefeed_inserts"))
    engine.dispose()
    registry = Registry(uri)  # an existing database, as an older lakefeed left it
    spec = FeatureGroupSpec(
        name=group, keys=["user_id"], event_time="ts", table=f"features.{group}", schema_b64=schema_to_b64(USERS)
    )
    registry.put_group(spec)
    try:
        assert registry.next_write(group) == 1
        assert sorted(registry.in_flight(group)) == [1]
    finally:
        registry.delete_group(group)
        registry.close()


def test_a_registry_failing_after_the_insert_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakefeed.errors import CatalogError, LakefeedWarning

    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS)

    def down(*args: object, **kwargs: object) -> bool:
        msg = "the registry is down"
        raise CatalogError(msg)

    monkeypatch.setattr(fs.registry, "finish_write", down)
    with pytest.warns(LakefeedWarning, match="is written, but its in-flight record could not be removed"):
        result = group.insert(_row(1, 5))
    assert result.rows == 1
    assert group.read().num_rows == 1  # written, not to be retried


def test_a_failed_insert_keeps_its_error_and_notes_the_registry_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefeed.errors import CatalogError

    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS)

    def online_down(*args: object, **kwargs: object) -> int:
        msg = "the online store is down"
        raise OnlineStoreUnavailableError(msg)

    def registry_down(*args: object, **kwargs: object) -> bool:
        msg = "the registry is down"
        raise CatalogError(msg)

    monkeypatch.setattr(fs, "_write_online", online_down)
    monkeypatch.setattr(fs.registry, "finish_write", registry_down)
    with pytest.raises(OnlineStoreUnavailableError) as info:
        group.insert(_row(1, 5))
    notes = getattr(info.value, "__notes__", [])
    assert any("in-flight record from the registry failed too: the registry is down" in n for n in notes), notes
    assert group.read().num_rows == 0  # rolled back all the same


# -- the in-flight table stays bounded -------------------------------------------------------------


def _records(fs: lf.FeatureStore, group: str) -> dict[int, str]:
    """The rows of ``lakefeed_inserts`` of ``group``, read with SQL: insert number -> state."""
    with fs.registry.engine.connect() as conn:
        rows = conn.execute(
            sa.text("select write, state from lakefeed_inserts where group_name = :g"), {"g": group}
        ).all()
    return {int(w): str(state) for w, state in rows}


def _mixed_inserts(fs: lf.FeatureStore, group: str, rounds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many inserts into ``group``, every way an insert ends, each round followed by a materialization.

    Per round: two that succeed; one whose online write fails and is rolled back; one rolled
    back whose record could not be removed (the registry failed as it finished); one that could
    not be rolled back (its rows stay; they are deleted by hand, with the call its error gives,
    in the next round); one whose writer died after taking its number.
    """
    from lakefeed.errors import CatalogError

    fg = fs.feature_group(group)
    healthy_write, healthy_finish, real_delete = fs._write_online, fs.registry.finish_write, IcebergTable.delete
    boom = OnlineStoreUnavailableError("redis is down")

    def fail(spec: FeatureGroupSpec, batches: Iterable[pa.Table | pa.RecordBatch]) -> int:
        raise boom

    def registry_down(group: str, write: int) -> bool:
        raise CatalogError("the registry is down")

    def conflict(self: IcebergTable, filter: lf.Expr) -> None:
        raise CommitConflictError("another writer committed first")

    def insert(user: int) -> None:
        fg.insert({"user_id": [user], "ts": [T0], "clicks": [user]})

    undo: str | None = None  # the call that removes the rows of the last insert that could not be rolled back
    for r in range(rounds):
        user = 100 * (r + 1)
        insert(user)
        monkeypatch.setattr(fs, "_write_online", fail)
        with pytest.raises(OnlineStoreUnavailableError):
            insert(user + 1)
        monkeypatch.setattr(fs.registry, "finish_write", registry_down)
        with pytest.raises(OnlineStoreUnavailableError):
            insert(user + 2)  # rolled back, its record left "aborted"
        monkeypatch.setattr(fs.registry, "finish_write", healthy_finish)
        monkeypatch.setattr(IcebergTable, "delete", conflict)
        with pytest.raises(CommitError) as stuck:
            insert(user + 3)
        monkeypatch.setattr(IcebergTable, "delete", real_delete)
        monkeypatch.setattr(fs, "_write_online", healthy_write)
        fs.registry.next_write(group)  # a writer that dies before it commits
        insert(user + 4)
        if undo is not None:  # the previous round's stuck rows, deleted as its error says
            eval(undo, {"fs": fs, "lf": lf})
        call = re.search(r"remove them with (fs\.feature_group\(.*?\)\)) \(it failed", str(stuck.value))
        assert call is not None
        undo = call.group(1)
        # every insert of the round left a record but the two that succeeded and the rolled-back one
        assert len(_records(fs, group)) == 3 + (r > 0)
        fs.materialize(group, stale_after=timedelta(0))  # nothing else is running
        # all that is left: the insert whose rows are still in the history
        assert _records(fs, group) == {6 * r + 4: "aborted"}
        window = fs.materialize(group, start=T0 - timedelta(days=1), end=T0 + timedelta(days=1))
        assert window.rows == 2 * (r + 1)  # the rows of the inserts that succeeded, and no other
        online = fs.online_store.read(group, [user + k for k in range(5)])
        assert [v is not None for v in online] == [True, False, False, False, True]
    assert undo is not None
    eval(undo, {"fs": fs, "lf": lf})
    fs.materialize(group)
    assert _records(fs, group) == {}
    assert fs.registry.materialized(group) == fs.registry.writes(group) == 6 * rounds
    assert sorted(int(u) for u in fg.read().column("user_id").to_pylist() if u is not None) == sorted(
        100 * (r + 1) + k for r in range(rounds) for k in (0, 4)
    )


def test_the_inserts_table_stays_bounded_through_many_inserts_and_failures(
    fs: lf.FeatureStore, monkeypatch: pytest.MonkeyPatch, no_backoff: None
) -> None:
    _mixed_inserts(fs, "g", 8, monkeypatch)


def test_an_offline_group_forgets_the_records_of_dead_writers(fs: lf.FeatureStore) -> None:
    fg = fs.create_feature_group("o", keys=["user_id"], event_time="ts", schema=USERS, online=False)
    for n in range(20):
        fs.registry.next_write("o")  # a writer that dies before it commits (never materialized: offline)
        _backdate(fs.registry, "o", 2 * n + 1, timedelta(hours=2))
        fg.insert(_row(n, n))
        assert _records(fs, "o") == {}  # the dead writer's record went with the next insert
    young = fs.registry.next_write("o")  # maybe still running: kept
    fg.insert(_row(99, 99))
    assert _records(fs, "o") == {young: "running"}
    assert fg.read().num_rows == 21


@pytest.mark.postgres
def test_the_inserts_table_stays_bounded_on_postgres(
    postgres_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_backoff: None
) -> None:
    import uuid

    group = f"g_{uuid.uuid4().hex[:10]}"
    _registry_pruning_contract(postgres_uri, group)
    with lf.FeatureStore(catalog_uri=postgres_uri, warehouse=tmp_path / "wh", online=tmp_path / "online.db") as fs:
        fs.create_feature_group(group, keys=["user_id"], event_time="ts", schema=USERS, properties=NO_RETRIES)
        try:
            _mixed_inserts(fs, group, 3, monkeypatch)
        finally:
            fs.delete_feature_group(group)
