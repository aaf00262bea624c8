"""Backend specifics of the online stores; the shared behaviour is in tests/contract/test_online_store_contract.py."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from lakefeed.config import OnlineStoreConfig, RedisOnlineConfig, SqliteOnlineConfig
from lakefeed.errors import (
    ConfigError,
    MissingDependencyError,
    OnlineStoreError,
    OnlineStoreUnavailableError,
    SchemaError,
)
from lakefeed.store.online import OnlineGroup, RedisOnlineStore, SqliteOnlineStore, _batch, _codec, open_online_store

REQUIRE_SERVICES = os.environ.get("LAKEFEED_REQUIRE_SERVICES") == "1"
T0 = datetime(2024, 1, 1)
SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("v", pa.int64())])
GROUP = OnlineGroup("g", SCHEMA, keys=["id"], event_time="ts")


def batch(*items: tuple[int, datetime, int]) -> pa.Table:
    return pa.table({"id": [i[0] for i in items], "ts": [i[1] for i in items], "v": [i[2] for i in items]}, SCHEMA)


def values(store: Any, keys: list[int]) -> list[int | None]:
    return [None if r is None else r["v"] for r in store.read("g", keys, now=T0)]


# -- groups and codec (no services) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "bad name"}, ConfigError, "must match"),
        ({"name": "trailing\n"}, ConfigError, "must match"),
        ({"keys": "id"}, ConfigError, "non-empty list"),
        ({"keys": []}, ConfigError, "non-empty list"),
        ({"keys": ["nope"]}, SchemaError, "'nope' is not in the schema"),
        ({"keys": ["v"], "schema": SCHEMA.set(2, pa.field("v", pa.float64()))}, SchemaError, "integers or strings"),
        ({"event_time": "v", "schema": SCHEMA.set(2, pa.field("v", pa.string()))}, SchemaError, "time column"),
        ({"ttl": timedelta(0)}, ConfigError, "positive"),
        ({"event_time": "v", "ttl": timedelta(1)}, ConfigError, "must be an int"),
        ({"ttl": 5}, ConfigError, "must be a timedelta"),
        ({"event_time": "v", "ttl": 0}, ConfigError, "positive"),
        ({"schema": SCHEMA.remove(2)}, SchemaError, "no feature columns"),
        ({"schema": SCHEMA.append(pa.field("m", pa.map_(pa.string(), pa.int64())))}, SchemaError, "feature 'm'"),
        ({"schema": SCHEMA.append(pa.field("t", pa.time64("us")))}, SchemaError, "feature 't'"),
    ],
)
def test_group_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"name": "g", "schema": SCHEMA, "keys": ["id"], "event_time": "ts", **kwargs}
    with pytest.raises(error, match=match):
        OnlineGroup(**args)


def test_group_json_round_trip_and_fingerprint_ignores_ttl() -> None:
    group = OnlineGroup(
        "g.x-1", SCHEMA, keys=["id"], event_time="ts", created_time=None, write_order="_w", ttl=timedelta(2)
    )
    assert OnlineGroup.from_json(group.to_json()) == group
    ticks = OnlineGroup("t", SCHEMA, keys=["id"], event_time="v", ttl=7)
    assert OnlineGroup.from_json(ticks.to_json()) == ticks
    assert OnlineGroup.from_json(GROUP.to_json()).ttl is None
    assert OnlineGroup("g.x-1", SCHEMA, keys=["id"], event_time="ts", write_order="_w").fingerprint == group.fingerprint
    assert OnlineGroup("g.x-1", SCHEMA, keys=["id"], event_time="ts").fingerprint != group.fingerprint


def test_fingerprint_ignores_metadata_and_nullability_but_not_types() -> None:
    tagged = pa.schema([pa.field(f.name, f.type, nullable=False, metadata={"PARQUET:field_id": "7"}) for f in SCHEMA])
    tagged = tagged.with_metadata({"iceberg": "x"})
    assert OnlineGroup("g", tagged, keys=["id"], event_time="ts").fingerprint == GROUP.fingerprint
    wider = SCHEMA.set(2, pa.field("v", pa.float64()))
    assert OnlineGroup("g", wider, keys=["id"], event_time="ts").fingerprint != GROUP.fingerprint


def test_sqlite_empty_group_may_change_its_key_type(tmp_path: Path) -> None:
    with SqliteOnlineStore(tmp_path / "online.db") as store:
        store.register_group(GROUP)
        text_keys = pa.schema([("id", pa.string()), ("ts", pa.timestamp("us")), ("v", pa.int64())])
        store.register_group(OnlineGroup("g", text_keys, keys=["id"], event_time="ts"))
        store.write_batch("g", pa.table({"id": ["a"], "ts": [T0], "v": [1]}, text_keys))
        assert store.read("g", ["a"]) == [{"v": 1}]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**62), max_size=40), st.integers(min_value=0, max_value=4))
def test_decimal_lengths_are_the_ascii_of_each_number(values: list[int], digits: int) -> None:
    """Redis bulk-string lengths: a fixed-width matrix when every number has as many digits, else strings."""
    same = [v % 10**digits + (10**digits if digits else 0) for v in values]  # all of digits + 1 digits
    for numbers in (values, same):
        part = _codec.decimal(np.array(numbers, dtype=np.int64))
        if isinstance(part, np.ndarray):
            assert len({len(str(v)) for v in numbers}) == 1
            assert [bytes(row).decode() for row in part] == [str(v) for v in numbers]
        else:
            assert part.to_pylist() == [str(v) for v in numbers]
    assert isinstance(_codec.decimal(np.array(same, dtype=np.int64)), np.ndarray) or not same


def test_key_hashes_are_pinned() -> None:
    """The Redis key bitmap persists these hashes: changing the function breaks stored groups."""
    keys = pa.array([b"", b"1", b"12345678", b"123456789", b"user|\\x"], _codec.BINARY)
    assert [int(h) % (1 << 24) for h in _codec.key_hashes(keys)] == [0, 1312036, 10755196, 13393332, 5686420]
    assert list(_codec.key_hashes(keys.slice(1, 2))) == list(_codec.key_hashes(keys)[1:3])


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.text(alphabet="ab|\\é", max_size=4)), max_size=20))
def test_vectorised_and_scalar_keys_agree_and_are_injective(keys: list[tuple[int, str]]) -> None:
    columns = [pa.array([k[0] for k in keys], pa.int64()), pa.array([k[1] for k in keys], pa.string())]
    encoded = _codec.key_strings(columns).to_pylist()
    assert encoded == [_codec.key_string(list(k), True) for k in keys]
    assert len(set(encoded)) == len(set(keys))
    swapped = _codec.key_strings(columns[::-1]).to_pylist()
    assert swapped == [_codec.key_string([k[1], k[0]], True) for k in keys]


@settings(max_examples=100, deadline=None)
@given(number=st.integers(-(2**63), 2**63 - 1), text=st.text(alphabet="ab|\\é", max_size=4))
def test_single_key_spellings_encode_alike_and_as_the_written_keys(number: int, text: str) -> None:
    """A key given as a value, a 1-tuple, a 1-list or a mapping is the key the vectorised writer stores."""
    for value, arrow_type in ((number, pa.int64()), (text, pa.string())):
        group = OnlineGroup(
            "k", pa.schema([("id", arrow_type), ("ts", pa.timestamp("us")), ("v", pa.int64())]), ["id"], "ts"
        )
        written = _codec.key_strings([pa.array([value], arrow_type)]).to_pylist()[0]
        spellings = [value, (value,), [value], {"id": value}]
        assert {_batch.encode_key(group, key) for key in spellings} == {written}


FEATURES = {
    "i": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "u": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "f": (pa.float64(), st.floats(allow_nan=False)),
    "h": (pa.float32(), st.floats(width=32, allow_nan=False)),
    "b": (pa.bool_(), st.booleans()),
    "s": (pa.string(), st.text(max_size=40)),
    "y": (pa.binary(), st.binary(max_size=40)),
    "l": (pa.list_(pa.float64()), st.lists(st.floats(allow_nan=False), max_size=5)),
    "n": (pa.list_(pa.int64()), st.lists(st.one_of(st.none(), st.integers(0, 9)), max_size=3)),
    "d": (pa.date32(), st.dates()),
    "t": (pa.timestamp("us"), st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))),
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(0, 30))
def test_records_decode_to_what_arrow_gives(data: st.DataObject, n: int) -> None:
    names = data.draw(st.lists(st.sampled_from(sorted(FEATURES)), min_size=1, max_size=6, unique=True))
    schema = pa.schema([("k", pa.int64()), ("ts", pa.timestamp("us"))] + [(m, FEATURES[m][0]) for m in names])
    columns: dict[str, list[Any]] = {"k": list(range(n)), "ts": [T0] * n}
    for m in names:
        columns[m] = data.draw(st.lists(st.one_of(st.none(), FEATURES[m][1]), min_size=n, max_size=n))
    table = pa.table(columns, schema=schema)
    group = OnlineGroup("g", schema, keys=["k"], event_time="ts")
    prepared = _batch.prepare(group, table)
    records = prepared.records(0, prepared.num_rows).to_pylist()
    decoder = msgspec.msgpack.Decoder()
    decoded = [decoder.decode(r[_codec.HEADER_SIZE :]) for r in records]
    expected = table.select(names).to_pylist()
    for row, want in zip(decoded, expected, strict=True):
        for i, m in enumerate(names):
            convert = _codec.value_converter(schema.field(m).type)
            assert (convert(row[i]) if convert else row[i]) == want[m]


def test_times_compare_lexicographically() -> None:
    def times(rows: list[tuple[int, int, int]]) -> Any:
        return np.array(rows, dtype=_batch.TIMES)

    pairs = [((2, 0, 0), (1, 9, 9)), ((1, 1, 0), (1, 0, 9)), ((1, 1, 1), (1, 1, 1)), ((1, 1, 0), (1, 1, 1))]
    got = _batch.newer_or_equal(times([p[0] for p in pairs]), times([p[1] for p in pairs]))
    assert got.tolist() == [p[0] >= p[1] for p in pairs]


def test_config_models_are_discriminated_by_kind() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(OnlineStoreConfig)
    assert isinstance(adapter.validate_python({"kind": "sqlite", "path": "x.db"}), SqliteOnlineConfig)
    redis_cfg = adapter.validate_python({"kind": "redis", "url": "redis://h:1/2", "prefix": "p:"})
    assert isinstance(redis_cfg, RedisOnlineConfig)
    assert redis_cfg.prefix == "p:"
    with pytest.raises(ValueError, match="extra"):
        adapter.validate_python({"kind": "sqlite", "path": "x.db", "nope": 1})


# -- SQLite ---------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteOnlineStore]:
    with SqliteOnlineStore(tmp_path / "sub" / "online.db", timeout_s=0.2) as store:
        store.register_group(GROUP)
        yield store


def test_sqlite_layout_wal_and_integer_primary_key(sqlite_store: SqliteOnlineStore) -> None:
    composite = pa.schema([("a", pa.string()), ("b", pa.int64()), ("ts", pa.timestamp("us")), ("v", pa.int64())])
    sqlite_store.register_group(OnlineGroup("pairs", composite, keys=["a", "b"], event_time="ts"))
    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    assert "k INTEGER PRIMARY KEY" in tables["lakefeed_online__g"]
    assert "k BLOB PRIMARY KEY" in tables["lakefeed_online__pairs"]


def test_sqlite_bulk_writes_checkpoint_in_the_background(sqlite_store: SqliteOnlineStore) -> None:
    import threading

    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (16384,)  # a new database: large pages
    writer = sqlite_store._conn()
    with sqlite_store.bulk():
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)  # the writer never checkpoints
        assert any(t.name == "lakefeed-checkpoint" for t in threading.enumerate())
        for i in range(40):
            sqlite_store.write_batch("g", batch(*[(k, T0 + timedelta(seconds=i), k * 100 + i) for k in range(200)]))
        # each batch is visible as soon as it is written, to another connection too
        with sqlite3.connect(sqlite_store.path) as other:
            assert other.execute('SELECT count(*) FROM "lakefeed_online__g"').fetchone() == (200,)
    assert not any(t.name == "lakefeed-checkpoint" for t in threading.enumerate())
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    busy, logged, copied = writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0
    assert logged == copied  # the log is in the database
    assert values(sqlite_store, [0, 1, 199]) == [39, 139, 19939]


def test_sqlite_a_failure_inside_bulk_is_raised_as_it_is(sqlite_store: SqliteOnlineStore) -> None:
    writer = sqlite_store._conn()

    def writes() -> None:
        with sqlite_store.bulk():
            sqlite_store.write_batch("g", batch((1, T0, 1)))
            sqlite_store.write_batch("g", pa.table({"id": [2]}))

    with pytest.raises(SchemaError, match="missing column"):
        writes()
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    assert values(sqlite_store, [1, 2]) == [1, None]  # the batch before the failure stays written


def test_sqlite_batch_failing_midway_is_rolled_back(sqlite_store: SqliteOnlineStore) -> None:
    sqlite_store.write_batch("g", batch((1, T0, 1), (2, T0, 2)))
    with sqlite3.connect(sqlite_store.path) as conn:
        conn.execute(
            'CREATE TRIGGER poison BEFORE INSERT ON "lakefeed_online__g" WHEN NEW.k = 7 '
            "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
    later = T0 + timedelta(1)
    with pytest.raises(OnlineStoreError, match="poisoned row"):
        sqlite_store.write_batch("g", batch((1, later, 10), (2, later, 20), *[(k, later, k) for k in range(3, 9)]))
    assert values(sqlite_store, list(range(1, 9))) == [1, 2, None, None, None, None, None, None]
    assert sqlite_store.count("g") == 2


def test_sqlite_locked_database_is_unavailable_then_recovers(sqlite_store: SqliteOnlineStore) -> None:
    blocker = sqlite3.connect(sqlite_store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(OnlineStoreUnavailableError, match="locked"):
        sqlite_store.write_batch("g", batch((1, T0, 1)))
    assert values(sqlite_store, [1]) == [None]  # readers are not blocked in WAL mode
    blocker.execute("ROLLBACK")
    blocker.close()
    assert sqlite_store.write_batch("g", batch((1, T0, 1))) == 1


def test_sqlite_connections_per_thread_closed_with_the_store(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "online.db")
    store.register_group(GROUP)
    store.write_batch("g", batch((1, T0, 5)))
    seen: list[object] = []

    def read() -> None:
        seen.append(store._conn())
        assert values(store, [1]) == [5]

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 3
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")  # type: ignore[attr-defined]


def test_sqlite_refuses_memory_databases() -> None:
    with pytest.raises(ConfigError, match="needs a file"):
        SqliteOnlineStore(":memory:")


def test_open_online_store_dispatches_on_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    targets: list[Any] = [
        tmp_path / "a.db",
        str(tmp_path / "b.db"),
        f"sqlite:///{tmp_path}/c.db",
        "sqlite:///rel.db",
        SqliteOnlineConfig(path=str(tmp_path / "d.db")),
    ]
    for target in targets:
        with open_online_store(target) as store:
            assert isinstance(store, SqliteOnlineStore)
    assert (tmp_path / "c.db").exists()
    assert (tmp_path / "rel.db").exists()
    with pytest.raises(ConfigError, match="unknown online store URI scheme 'mongodb'"):
        open_online_store("mongodb://x")
    with pytest.raises(ConfigError, match="got int"):
        open_online_store(3)  # type: ignore[arg-type]


# -- Redis ----------------------------------------------------------------------------------------


def test_lakefeed_store_online_does_not_import_redis() -> None:
    code = "import sys, lakefeed.store.online; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lakefeed\[redis\]'"):
        open_online_store("redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisOnlineStore]:
    import redis

    prefix = f"lftest:{uuid.uuid4().hex}:"
    with RedisOnlineStore(RedisOnlineConfig(url=redis_url, prefix=prefix)) as store:
        store.register_group(GROUP)
        yield store
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.redis
def test_redis_keys_layout_and_prefix_isolation(redis_store: RedisOnlineStore, redis_url: str) -> None:
    import redis

    redis_store.write_batch("g", batch((1, T0, 5), (2, T0, 6)))
    client = redis.Redis.from_url(redis_url)
    prefix = redis_store.config.prefix
    assert client.get(f"{prefix}n:g") == b"2"
    assert client.exists(f"{prefix}t:g") == 0  # a record's times live in its header only
    record = client.get(f"{prefix}v:g:1")
    assert record is not None
    assert record[0] == _codec.FORMAT_VERSION
    assert set(client.hkeys(f"{prefix}groups")) == {b"g"}
    client.close()
    with RedisOnlineStore(RedisOnlineConfig(url=redis_url, prefix=f"{prefix}other:")) as other:
        assert other.groups() == []


@pytest.mark.redis
def test_redis_delete_finds_only_its_own_records_whatever_the_prefix(redis_url: str) -> None:
    """Deleting scans by pattern: glob characters in the prefix are matched literally."""
    import redis

    base = f"lftest:{uuid.uuid4().hex}:"
    # unescaped, the pattern "p[1]:v:g:*" would also match the other store's "p1:v:g:..." keys
    stores = [RedisOnlineStore(RedisOnlineConfig(url=redis_url, prefix=f"{base}{p}")) for p in ("p[1]:", "p1:", "p*:")]
    client = redis.Redis.from_url(redis_url)
    try:
        for store in stores:
            store.register_group(GROUP)
            store.write_batch("g", batch(*[(k, T0, k) for k in range(1500)]))
        stores[0].delete_group("g")
        stores[2].delete_group("g")
        assert stores[0].groups() == []
        assert stores[2].groups() == []
        assert stores[1].count("g") == 1500
        assert values(stores[1], [0, 1499]) == [0, 1499]
        left = {k.decode() for k in client.scan_iter(match=f"{base}*", count=1000)}
        assert len(left) == 1500 + 4  # the surviving store's records, counter, bitmap, token and groups hash
        assert all(k.startswith(f"{base}p1:") for k in left)
    finally:
        for store in stores:
            store.close()
        for key in client.scan_iter(match=f"{base}*", count=1000):
            client.delete(key)
        client.close()


@pytest.mark.redis
@pytest.mark.parametrize(("pipelined", "keys"), [(False, 50), (True, 50), (True, 3000)])
def test_redis_concurrent_writers_keep_latest_wins(redis_store: RedisOnlineStore, pipelined: bool, keys: int) -> None:
    """Two writers interleave (write_batch, or write_batches: conflicts retried inside its pipeline)."""
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        steps = (
            batch(*[(k, T0 + timedelta(minutes=step * 2 + offset), step * 10 + offset) for k in range(keys)])
            for step in range(15)
        )
        try:
            if pipelined:
                redis_store.write_batches("g", steps)
            else:
                for step in steps:
                    redis_store.write_batch("g", step)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert values(redis_store, list(range(keys))) == [141] * keys  # step 14, offset 1: the latest event
    assert redis_store.count("g") == keys


@pytest.mark.redis
def test_redis_nothing_listening_is_unavailable(redis_url: str) -> None:
    url = f"redis://:s3cret@127.0.0.1:{_free_port()}/0"
    store = RedisOnlineStore(RedisOnlineConfig(url=url, connect_timeout_s=0.5))
    calls = [
        lambda: store.register_group(GROUP),
        lambda: store.groups(),
        lambda: store.read("g", [1]),
        lambda: store.count("g"),
        lambda: store._write(_batch.prepare(GROUP, batch((1, T0, 1)))),
        lambda: store._write_many(iter([_batch.prepare(GROUP, batch((1, T0, 1))) for _ in range(2)])),
    ]
    for call in calls:
        with pytest.raises(OnlineStoreUnavailableError, match="unavailable") as info:
            call()
        assert "s3cret" not in str(info.value)
        assert info.value.__cause__ is not None
    assert "s3cret" not in repr(store)
    store.close()


@pytest.mark.redis
def test_redis_restart_recovers_and_nothing_is_half_written(redis_url: str, tmp_path: Path) -> None:
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server and redis-cli are required (LAKEFEED_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server not installed")
    port = _free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(tmp_path), "--dbfilename", "dump.rdb"]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True, check=False)
            if ping.stdout.strip() == "PONG":
                return proc
            time.sleep(0.05)
        proc.kill()
        pytest.fail("throwaway redis-server did not start")

    def stop(proc: subprocess.Popen[bytes]) -> None:
        subprocess.run([cli, "-p", str(port), "shutdown", "save"], capture_output=True, check=False)
        proc.wait(timeout=10)

    proc = start()
    try:
        store = RedisOnlineStore(RedisOnlineConfig(url=f"redis://127.0.0.1:{port}/0", connect_timeout_s=0.5))
        store.register_group(GROUP)
        store.write_batch("g", batch(*[(k, T0, k) for k in range(2000)]))
        stop(proc)
        later = T0 + timedelta(1)
        with pytest.raises(OnlineStoreUnavailableError):
            store.write_batch("g", batch(*[(k, later, -k) for k in range(2000)]))
        with pytest.raises(OnlineStoreUnavailableError):
            store.write_batches("g", iter([batch(*[(k, later, -k) for k in range(2000)])] * 2))
        with pytest.raises(OnlineStoreUnavailableError):
            store.read("g", [1])
        proc = start()
        assert values(store, [0, 1, 1999]) == [0, 1, 1999]  # the same object works again; old data intact
        assert store.count("g") == 2000
        assert store.write_batch("g", batch((1, later, -1))) == 1
        assert values(store, [1]) == [-1]
        assert store.write_batches("g", iter([batch(*[(k, later, -k) for k in range(2000)])] * 2)) == 4000
        assert values(store, [0, 1999]) == [0, -1999]
        assert store.count("g") == 2000
        store.close()
    finally:
        if proc.poll() is None:
            stop(proc)


@pytest.mark.redis
def test_redis_bad_url_is_a_config_error() -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError, match="bad Redis URL"):
        RedisOnlineStore("redis://:pw@host:notaport/0")
