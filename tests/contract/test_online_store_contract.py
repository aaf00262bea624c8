"""One contract for every online store: SQLite (in tmp_path) and Redis (for real, at 127.0.0.1:6379).

Each Redis test gets its own key prefix and deletes its keys afterwards. Without a Redis server
the Redis cases are skipped, or fail when LAKEFEED_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakefeed.config import RedisOnlineConfig
from lakefeed.errors import ConfigError, OnlineStoreError, SchemaError
from lakefeed.store.online import OnlineGroup, OnlineStore, RedisOnlineStore, SqliteOnlineStore, _codec

T0 = datetime(2024, 1, 1)


def _drop_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


Opener = Callable[[], OnlineStore]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one backend location (several calls: several clients of the same data)."""
    opened: list[OnlineStore] = []
    if request.param == "sqlite":
        path = tmp_path / "online.db"

        def make() -> OnlineStore:
            opened.append(SqliteOnlineStore(path))
            return opened[-1]

        yield make
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"lftest:{uuid.uuid4().hex}:"

        def make() -> OnlineStore:
            opened.append(RedisOnlineStore(RedisOnlineConfig(url=url, prefix=prefix)))
            return opened[-1]

        yield make
        _drop_prefix(url, prefix)
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> OnlineStore:
    return open_store()


SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        ("ts", pa.timestamp("us")),
        ("clicks", pa.int64()),
        ("ctr", pa.float64()),
        ("name", pa.string()),
        ("vip", pa.bool_()),
        ("emb", pa.list_(pa.float32())),
    ]
)
USERS = OnlineGroup("users", SCHEMA, keys=["user_id"], event_time="ts")


def rows(*items: tuple[int, datetime, int | None], schema: pa.Schema = SCHEMA) -> pa.Table:
    """Rows (user_id, ts, clicks) with the other features derived from clicks."""
    out: dict[str, list[Any]] = {name: [] for name in schema.names}
    for uid, ts, clicks in items:
        out["user_id"].append(uid)
        out["ts"].append(ts)
        out["clicks"].append(clicks)
        out["ctr"].append(None if clicks is None else clicks / 10)
        out["name"].append(None if clicks is None else f"user-{uid}-{clicks}")
        out["vip"].append(None if clicks is None else clicks % 2 == 0)
        out["emb"].append(None if clicks is None else [float(clicks), 0.5])
    return pa.table(out, schema=schema)


def clicks_of(store: OnlineStore, keys: list[int], group: str = "users") -> list[int | None]:
    return [None if r is None else r["clicks"] for r in store.read(group, keys, now=T0)]


# -- groups ---------------------------------------------------------------------------------------


def test_register_is_idempotent_and_listed(store: OnlineStore) -> None:
    assert store.groups() == []
    store.register_group(USERS)
    store.register_group(USERS)
    assert store.groups() == ["users"]
    assert store.group("users") == USERS
    assert store.count("users") == 0


def test_unknown_group_is_an_online_store_error(store: OnlineStore) -> None:
    with pytest.raises(OnlineStoreError, match="'nope' is not registered"):
        store.read("nope", [1])
    with pytest.raises(OnlineStoreError, match="not registered"):
        store.write_batch("nope", rows((1, T0, 1)))


def test_changed_layout_needs_delete_first_but_ttl_may_change(open_store: Opener) -> None:
    store = open_store()
    store.register_group(USERS)
    store.write_batch("users", rows((1, T0, 5)))
    other = OnlineGroup("users", SCHEMA.remove(SCHEMA.get_field_index("vip")), keys=["user_id"], event_time="ts")
    with pytest.raises(SchemaError, match="delete_group"):
        store.register_group(other)
    store.register_group(OnlineGroup("users", SCHEMA, keys=["user_id"], event_time="ts", ttl=timedelta(days=3)))
    assert open_store().group("users").ttl == timedelta(days=3)
    store.delete_group("users")
    store.register_group(other)
    assert store.group("users").features == ("clicks", "ctr", "name", "emb")


def test_registration_is_shared_by_every_client(open_store: Opener) -> None:
    writer, reader = open_store(), open_store()
    writer.register_group(USERS)
    writer.write_batch("users", rows((1, T0, 5)))
    assert clicks_of(reader, [1]) == [5]
    assert reader.group("users") == USERS


def test_reader_follows_a_group_re_registered_elsewhere(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.register_group(USERS)
    a.write_batch("users", rows((1, T0, 5)))
    assert clicks_of(a, [1]) == [5]
    b.delete_group("users")
    narrow = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
    b.register_group(OnlineGroup("users", narrow, keys=["user_id"], event_time="ts"))
    b.write_batch("users", pa.table({"user_id": [1], "ts": [T0], "clicks": [9]}, schema=narrow))
    assert a.read("users", [1]) == [{"clicks": 9}]  # a's cached layout is stale: it reloads it


def test_a_writer_with_a_stale_layout_is_refused(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.register_group(USERS)
    a.write_batch("users", rows((1, T0, 5)))
    b.delete_group("users")
    narrow = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
    b.register_group(OnlineGroup("users", narrow, keys=["user_id"], event_time="ts"))
    with pytest.raises(OnlineStoreError, match="re-registered"):
        a.write_batch("users", rows((2, T0, 6)))
    assert b.count("users") == 0
    assert a.group("users").features == ("clicks",)  # a reloaded the new layout


# -- writes and reads -----------------------------------------------------------------------------


def test_round_trip_of_every_value_kind(store: OnlineStore) -> None:
    schema = pa.schema(
        [
            ("k", pa.string()),
            ("ts", pa.timestamp("ns", tz="UTC")),
            ("i8", pa.int8()),
            ("u64", pa.uint64()),
            ("f32", pa.float32()),
            ("f64", pa.float64()),
            ("b", pa.bool_()),
            ("s", pa.large_string()),
            ("bin", pa.binary()),
            ("when", pa.timestamp("us", tz="Europe/Paris")),
            ("naive", pa.timestamp("ms")),
            ("day", pa.date32()),
            ("dec", pa.decimal128(10, 3)),
            ("ints", pa.list_(pa.int32())),
            ("fixed", pa.list_(pa.float64(), 2)),
            ("words", pa.list_(pa.string())),
            ("maybe", pa.list_(pa.int64())),
            ("st", pa.struct([("a", pa.int64()), ("b", pa.string())])),
        ]
    )
    data = pa.table(
        {
            "k": ["a", "b"],
            "ts": [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)],
            "i8": [-128, None],
            "u64": [2**64 - 1, 0],
            "f32": [1.5, float("inf")],
            "f64": [-0.0, None],
            "b": [True, False],
            "s": ["ünïcode ✓", ""],
            "bin": [b"\x00\xff", None],
            "when": [datetime(2024, 5, 1, 12, tzinfo=UTC), None],
            "naive": [datetime(1960, 1, 1, 0, 0, 0, 123000), datetime(2024, 1, 1)],
            "day": [date(1969, 12, 31), date(2024, 2, 29)],
            "dec": [Decimal("1.250"), None],
            "ints": [[1, 2, 3], []],
            "fixed": [[1.0, 2.0], None],
            "words": [["x", "y|z"], None],
            "maybe": [[1, None], [2]],
            "st": [{"a": 1, "b": "x"}, None],
        },
        schema=schema,
    )
    store.register_group(OnlineGroup("kinds", schema, keys=["k"], event_time="ts"))
    assert store.write_batch("kinds", data) == 2
    expected = data.drop_columns(["k", "ts"]).to_pylist()
    assert store.read("kinds", ["a", "b", "c"]) == [*expected, None]
    # the same rows as a slice of a longer batch (every column at an offset), as scans hand them
    keyed = [data.set_column(0, schema.field("k"), pa.array(keys, pa.string())) for keys in (["p", "q"], ["c", "d"])]
    sliced = pa.concat_tables(keyed).combine_chunks().slice(2, 2)
    assert sliced.column("s").chunk(0).offset == 2
    assert store.write_batch("kinds", sliced) == 2
    assert store.read("kinds", ["c", "d", "p"]) == [*expected, None]


def test_missing_keys_and_empty_reads(store: OnlineStore) -> None:
    store.register_group(USERS)
    assert store.read("users", []) == []
    assert store.read("users", [1, 2]) == [None, None]
    store.write_batch("users", rows((2, T0, 7)))
    assert clicks_of(store, [1, 2, 2]) == [None, 7, 7]
    assert store.write_batch("users", rows()) == 0


def test_an_older_event_never_replaces_a_newer_one(store: OnlineStore) -> None:
    store.register_group(USERS)
    assert store.write_batch("users", rows((1, T0 + timedelta(hours=2), 20), (2, T0, 1))) == 2
    assert store.write_batch("users", rows((1, T0 + timedelta(hours=1), 10), (2, T0 + timedelta(hours=1), 2))) == 1
    assert clicks_of(store, [1, 2]) == [20, 2]
    assert store.write_batch("users", rows((1, T0, 0))) == 0
    assert clicks_of(store, [1]) == [20]


def test_on_a_full_tie_the_later_write_wins(store: OnlineStore) -> None:
    store.register_group(USERS)
    store.write_batch("users", rows((1, T0, 1)))
    assert store.write_batch("users", rows((1, T0, 2))) == 1
    assert clicks_of(store, [1]) == [2]


def test_within_a_batch_the_latest_row_per_key_wins(store: OnlineStore) -> None:
    store.register_group(USERS)
    batch = rows((1, T0, 1), (2, T0, 5), (1, T0 + timedelta(1), 3), (1, T0, 2), (2, T0, 6), (1, T0 + timedelta(1), 4))
    assert store.write_batch("users", batch) == 2
    assert clicks_of(store, [1, 2]) == [4, 6]  # greatest event time; on ties the last row
    assert store.count("users") == 2


def test_created_time_then_write_order_break_ties(store: OnlineStore) -> None:
    schema = pa.schema([("id", pa.int32()), ("ts", pa.date32()), ("created", pa.timestamp("s")), ("v", pa.string())])
    group = OnlineGroup("g", schema, keys=["id"], event_time="ts", created_time="created", write_order="_w")
    store.register_group(group)
    day = date(2024, 3, 1)

    def write(v: str, created: datetime | None, order: int) -> int:
        batch = pa.table({"id": [1], "ts": [day], "created": [created], "v": [v], "_w": [order]})
        return store.write_batch("g", batch.cast(schema.append(pa.field("_w", pa.int64()))))

    assert write("a", T0, 5) == 1
    assert write("b", T0 - timedelta(1), 9) == 0  # created earlier: loses whatever its write order
    assert write("c", None, 9) == 0  # no created time sorts before any
    assert write("d", T0, 4) == 0  # same created, lower write order
    assert write("e", T0, 5) == 1  # full tie: the later write
    assert write("f", T0 + timedelta(1), 0) == 1
    got = store.read("g", [1], with_times=True)
    assert got == [{"v": "f", "ts": day, "created": T0 + timedelta(1)}]


def test_write_order_resolves_a_replayed_insert(store: OnlineStore) -> None:
    group = OnlineGroup("users", SCHEMA, keys=["user_id"], event_time="ts", write_order="_w")
    store.register_group(group)
    first = rows((1, T0, 1)).append_column("_w", pa.array([1 << 32]))
    second = rows((1, T0, 2)).append_column("_w", pa.array([2 << 32]))
    store.write_batch("users", first)
    store.write_batch("users", second)
    assert store.write_batch("users", first) == 0  # replaying the older insert changes nothing
    assert clicks_of(store, [1]) == [2]


def test_composite_keys_with_separator_characters(store: OnlineStore) -> None:
    schema = pa.schema([("a", pa.string()), ("b", pa.int64()), ("c", pa.string()), ("ts", pa.timestamp("us"))])
    schema = schema.append(pa.field("v", pa.int64()))
    store.register_group(OnlineGroup("pairs", schema, keys=["a", "b", "c"], event_time="ts"))
    keys = [("x|1", 2, ""), ("x", 1, "|2|"), ("x\\", -1, "|"), ("x", -1, "\\|"), ("", 0, ""), ("é", 7, "✓")]
    data = pa.table(
        {
            "a": [k[0] for k in keys],
            "b": [k[1] for k in keys],
            "c": [k[2] for k in keys],
            "ts": [T0] * len(keys),
            "v": list(range(len(keys))),
        },
        schema=schema,
    )
    assert store.write_batch("pairs", data) == len(keys)
    assert store.count("pairs") == len(keys)
    assert [r and r["v"] for r in store.read("pairs", keys)] == list(range(len(keys)))
    assert store.read("pairs", [{"a": "x", "b": 1, "c": "|2|"}, ["x\\", -1, "|"]]) == [{"v": 1}, {"v": 2}]
    assert store.read("pairs", [("x", 1, "2")]) == [None]


def test_bad_keys_on_read_are_schema_errors(store: OnlineStore) -> None:
    store.register_group(USERS)
    for bad in ["1", 1.0, True, (1, 2), {"user": 1}]:
        with pytest.raises(SchemaError):
            store.read("users", [bad])  # type: ignore[list-item]


def test_ttl_is_honoured_on_read(store: OnlineStore) -> None:
    store.register_group(OnlineGroup("users", SCHEMA, keys=["user_id"], event_time="ts", ttl=timedelta(hours=1)))
    store.write_batch("users", rows((1, T0, 1), (2, T0 + timedelta(minutes=30), 2)))
    at = T0 + timedelta(hours=1)
    assert clicks_of_at(store, at - timedelta(microseconds=1)) == [1, 2]
    assert clicks_of_at(store, at) == [None, 2]  # exactly ttl old has expired, as in point-in-time joins
    assert clicks_of_at(store, T0 + timedelta(hours=2)) == [None, None]
    aware = (T0 + timedelta(minutes=59)).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=-5)))
    assert [r and r["clicks"] for r in store.read("users", [1, 2], now=aware)] == [1, 2]
    late = T0 + timedelta(days=30)
    assert [r and r["clicks"] for r in store.read("users", [1, 2], now=late, ttl=timedelta(days=31))] == [1, 2]
    assert store.read("users", [1])[0] is None  # now defaults to the current time
    with pytest.raises(ConfigError, match="timedelta"):
        store.read("users", [1], ttl=5)


def test_ttl_for_integer_event_times_is_an_int(store: OnlineStore) -> None:
    schema = pa.schema([("k", pa.int64()), ("tick", pa.int64()), ("v", pa.int64())])
    store.register_group(OnlineGroup("ticks", schema, keys=["k"], event_time="tick", ttl=10))
    store.write_batch("ticks", pa.table({"k": [1, 2], "tick": [100, 105], "v": [1, 2]}, schema))
    assert store.read("ticks", [1, 2], now=109, with_times=True) == [{"v": 1, "tick": 100}, {"v": 2, "tick": 105}]
    assert store.read("ticks", [1, 2], now=110) == [None, {"v": 2}]
    with pytest.raises(ConfigError, match="pass now= as an int"):
        store.read("ticks", [1])
    with pytest.raises(ConfigError, match="must be an int"):
        OnlineGroup("ticks", schema, keys=["k"], event_time="tick", ttl=timedelta(1))


def clicks_of_at(store: OnlineStore, now: datetime) -> list[int | None]:
    return [None if r is None else r["clicks"] for r in store.read("users", [1, 2], now=now)]


def test_with_times_returns_the_event_time(store: OnlineStore) -> None:
    store.register_group(USERS)
    store.write_batch("users", rows((1, T0 + timedelta(microseconds=7), 3)))
    (got,) = store.read("users", [1], with_times=True)
    assert got is not None
    assert got["ts"] == T0 + timedelta(microseconds=7)
    assert got["clicks"] == 3


# -- failed batches leave the store as it was ----------------------------------------------------


def _snapshot(store: OnlineStore) -> tuple[int, list[Any]]:
    return store.count("users"), store.read("users", [1, 2, 3], now=T0, with_times=True)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda t: t.set_column(3, "ctr", pa.array(["x", "y", "z"])), id="string-for-float"),
        pytest.param(lambda t: t.set_column(2, "clicks", pa.array([1.5, 2.0, 3.0])), id="fraction-for-int"),
        pytest.param(lambda t: t.drop_columns(["user_id"]), id="key-missing"),
        pytest.param(lambda t: t.drop_columns(["emb"]), id="feature-missing"),
        pytest.param(lambda t: t.set_column(0, "user_id", pa.array([1, None, 3], pa.int64())), id="null-key"),
        pytest.param(lambda t: t.set_column(1, "ts", pa.array([T0, None, T0], pa.timestamp("us"))), id="null-time"),
        pytest.param(lambda t: t.set_column(1, "ts", pa.array([1, 2, 3])), id="int-for-timestamp"),
        pytest.param(lambda t: t.set_column(0, "user_id", pa.array(["1", "2", "3"])), id="string-key"),
        pytest.param(lambda t: t.to_pylist(), id="not-arrow"),
    ],
)
def test_a_failed_batch_writes_nothing(store: OnlineStore, bad: Callable[[pa.Table], Any]) -> None:
    store.register_group(USERS)
    store.write_batch("users", rows((1, T0, 1), (2, T0, 2)))
    before = _snapshot(store)
    newer = rows((1, T0 + timedelta(1), 10), (2, T0 + timedelta(1), 20), (3, T0 + timedelta(1), 30))
    with pytest.raises(SchemaError):
        store.write_batch("users", bad(newer))
    assert _snapshot(store) == before


def test_non_nullable_feature_rejects_nulls(store: OnlineStore) -> None:
    schema = pa.schema([("k", pa.int64()), ("ts", pa.timestamp("us")), pa.field("v", pa.int64(), nullable=False)])
    store.register_group(OnlineGroup("strict", schema, keys=["k"], event_time="ts"))
    with pytest.raises(SchemaError, match="'v' has 1 null"):
        store.write_batch("strict", pa.table({"k": [1, 2], "ts": [T0, T0], "v": [1, None]}))
    assert store.count("strict") == 0


def test_compatible_types_are_cast_and_extra_columns_ignored(store: OnlineStore) -> None:
    store.register_group(USERS)
    batch = rows((1, T0, 4)).cast(SCHEMA.set(2, pa.field("clicks", pa.int16())).set(0, pa.field("user_id", pa.int32())))
    batch = batch.append_column("unrelated", pa.array(["x"]))
    store.write_batch("users", pa.RecordBatch.from_pydict(batch.to_pydict(), schema=batch.schema))
    assert clicks_of(store, [1]) == [4]


# -- lifecycle ------------------------------------------------------------------------------------


def test_delete_group_removes_records_and_registration(open_store: Opener) -> None:
    store, other = open_store(), open_store()
    store.register_group(USERS)
    store.register_group(OnlineGroup("other", SCHEMA, keys=["user_id"], event_time="ts"))
    store.write_batch("users", rows((1, T0, 1), (2, T0, 2)))
    store.write_batch("other", rows((1, T0, 9)))
    store.delete_group("users")
    store.delete_group("users")  # deleting twice is fine
    assert store.groups() == ["other"]
    with pytest.raises(OnlineStoreError):
        other.count("users")
    store.register_group(USERS)
    assert store.count("users") == 0
    assert clicks_of(store, [1, 2]) == [None, None]
    assert clicks_of(store, [1], group="other") == [9]


def test_closed_store_refuses_calls_and_works_as_context_manager(open_store: Opener) -> None:
    with open_store() as store:
        store.register_group(USERS)
    store.close()
    with pytest.raises(OnlineStoreError, match="closed"):
        store.read("users", [1])
    with pytest.raises(OnlineStoreError, match="closed"):
        store.groups()


def test_unknown_record_format_version_names_group_and_key(open_store: Opener, request: pytest.FixtureRequest) -> None:
    store = open_store()
    store.register_group(USERS)
    store.write_batch("users", rows((1, T0, 1)))
    _overwrite_record(store, "users", b"1", b"\x09" + b"\x00" * 40)
    with pytest.raises(OnlineStoreError, match=r"'users', key '1': record format version 9"):
        store.read("users", [1])


def test_a_corrupt_or_foreign_record_names_group_and_key(open_store: Opener) -> None:
    store = open_store()
    store.register_group(USERS)
    store.write_batch("users", rows((1, T0, 1), (2, T0, 2)))
    good = store.read("users", [2])
    header = _codec.HEADER.pack(_codec.FORMAT_VERSION, USERS.fingerprint, 0, _codec.MISSING, _codec.MISSING)
    _overwrite_record(store, "users", b"1", header + b"\xc1")  # 0xc1: never valid MessagePack
    with pytest.raises(OnlineStoreError, match=r"'users', key '1': corrupt record"):
        store.read("users", [2, 1])
    _overwrite_record(store, "users", b"1", header + b"\x92\x01\x02")  # a list of the wrong length
    with pytest.raises(OnlineStoreError, match=r"'users', key '1': corrupt record"):
        store.read("users", [1])
    foreign = _codec.HEADER.pack(_codec.FORMAT_VERSION, USERS.fingerprint ^ 1, 0, _codec.MISSING, _codec.MISSING)
    _overwrite_record(store, "users", b"1", foreign + b"\x90")
    with pytest.raises(OnlineStoreError, match=r"'users', key '1': the record was written for another schema"):
        store.read("users", [1])
    assert store.read("users", [2]) == good


def _overwrite_record(store: OnlineStore, group: str, key: bytes, value: bytes) -> None:
    if isinstance(store, SqliteOnlineStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(f'UPDATE "lakefeed_online__{group}" SET v = ? WHERE k = ?', (value, int(key)))
        return
    import redis

    assert isinstance(store, RedisOnlineStore)
    client = redis.Redis.from_url(store.config.url)
    client.set(f"{store.config.prefix}v:{group}:".encode() + key, value)
    client.close()


# -- concurrency and volume -----------------------------------------------------------------------


def test_reads_from_many_threads(store: OnlineStore) -> None:
    store.register_group(USERS)
    store.write_batch("users", rows(*[(i, T0, i * 3) for i in range(200)]))
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(200):
                keys = [rng.randrange(250) for _ in range(rng.randint(1, 20))]
                assert clicks_of(store, keys) == [k * 3 if k < 200 else None for k in keys]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("together", [False, True], ids=["write_batch", "write_batches"])
def test_random_batches_match_a_latest_wins_model(store: OnlineStore, together: bool) -> None:
    group = OnlineGroup("users", SCHEMA, keys=["user_id"], event_time="ts", write_order="_w")
    store.register_group(group)
    rng = random.Random(3)
    model: dict[int, tuple[tuple[int, int], int]] = {}
    sizes = [1, 5, 3000, 40, 1500, 2, 5000, 7]  # small batches and large ones (>= 1024 rows)
    batches, written = [], []
    for write, size in enumerate(sizes, start=1):
        items = []
        for row in range(size):
            uid, hour = rng.randrange(2500), rng.randrange(48)
            items.append((uid, T0 + timedelta(hours=hour), write * 100_000 + row))
        batch = rows(*items).append_column("_w", pa.array([write] * size, pa.int64()))
        expected_written = set()
        for uid, ts, clicks in items:
            rank = (int(ts.timestamp()), write)
            if uid not in model or rank >= model[uid][0]:
                model[uid] = (rank, clicks)
                expected_written.add(uid)
        batches.append(batch)
        written.append(len(expected_written))
        if not together:
            assert store.write_batch("users", batch) == written[-1]
    if together:
        assert store.write_batches("users", iter(batches)) == sum(written)
    keys = list(range(2600))
    assert clicks_of(store, keys) == [model[k][1] if k in model else None for k in keys]
    assert store.count("users") == len(model)


def test_write_batches_stops_at_a_bad_batch_keeping_the_ones_before(store: OnlineStore) -> None:
    store.register_group(USERS)
    good = [rows(*[(k, T0, step) for k in range(2000)]) for step in (1, 2)]
    bad = rows((5, T0, 9)).set_column(1, "ts", pa.array([None], pa.timestamp("us")))
    after = rows((1, T0 + timedelta(hours=1), 3))
    with pytest.raises(SchemaError, match="'ts' has 1 null"):
        store.write_batches("users", iter([*good, bad, after]))
    assert clicks_of(store, [0, 1, 1999, 2000]) == [2, 2, 2, None]  # both good batches, not the one after
    assert store.count("users") == 2000
    assert store.write_batches("users", iter([])) == 0


def test_write_batches_writes_only_the_winners_of_each_batch(store: OnlineStore) -> None:
    store.register_group(USERS)
    store.write_batch("users", rows(*[(k, T0 + timedelta(hours=k % 2), 1) for k in range(3000)]))
    # odd keys hold a newer event: of the next batch only the even keys win, of the one after all
    later = [rows(*[(k, T0, 2) for k in range(3000)]), rows(*[(k, T0 + timedelta(hours=2), 3) for k in range(10)])]
    assert store.write_batches("users", iter(later)) == 1500 + 10
    assert clicks_of(store, [0, 1, 2, 3, 10, 11]) == [3, 3, 3, 3, 2, 1]
    assert store.count("users") == 3000


def test_a_client_sees_what_another_wrote_between_its_own_writes(open_store: Opener) -> None:
    """A large batch of keys another client wrote since this client's last write keeps the newer rows."""
    a, b = open_store(), open_store()
    a.register_group(USERS)
    later = T0 + timedelta(hours=1)
    a.write_batch("users", rows(*[(k, later, 1) for k in range(2000)]))
    b.write_batch("users", rows(*[(k, later, 2) for k in range(2000, 4000)]))
    assert a.write_batches("users", iter([rows(*[(k, T0, 3) for k in range(4000)])])) == 0  # all older
    assert clicks_of(a, [0, 1999, 2000, 3999]) == [1, 1, 2, 2]
    b.delete_group("users")
    b.register_group(USERS)
    b.write_batch("users", rows(*[(k, later, 4) for k in range(1500)]))
    assert a.write_batch("users", rows(*[(k, T0, 5) for k in range(3000)])) == 1500  # keys 1500.. are new again
    assert clicks_of(a, [0, 1499, 1500, 2999]) == [4, 4, 5, 5]
    assert a.count("users") == 3000


# -- nanosecond times ------------------------------------------------------------------------------

NS = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("ns")), ("made", pa.timestamp("ns")), ("x", pa.int64())])
NS_T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20, in nanoseconds


def _ns_rows(*rows: tuple[int, int, int | None, int]) -> pa.Table:
    ids, ts, made, x = zip(*rows, strict=True)
    return pa.table({"id": ids, "ts": ts, "made": made, "x": x}, NS)


def test_a_sub_microsecond_time_is_refused_not_cut(store: OnlineStore) -> None:
    # cut to microseconds, an older event written later would tie the newer one and replace it
    store.register_group(OnlineGroup("ns", NS, keys=["id"], event_time="ts", created_time="made"))
    with pytest.raises(SchemaError, match=r"'ts' holds nanosecond time 2023-11-14T22:13:20\.000000900"):
        store.write_batch("ns", _ns_rows((1, NS_T0 + 900, None, 1)))
    with pytest.raises(SchemaError, match=r"'made' holds nanosecond time 1969-12-31T23:59:59\.999998500"):
        store.write_batch("ns", _ns_rows((1, NS_T0, None, 1), (2, NS_T0, -1_500, 2)))
    with pytest.raises(SchemaError, match="floor_temporal"):
        store.write_batches("ns", [_ns_rows((1, NS_T0 - 100, None, 1))])
    assert store.count("ns") == 0  # nothing of a refused batch is written
    assert store.read("ns", [1, 2]) == [None, None]


def test_nanosecond_times_of_whole_microseconds_order_and_expire_exactly(store: OnlineStore) -> None:
    group = OnlineGroup("ns", NS, keys=["id"], event_time="ts", created_time="made", ttl=timedelta(seconds=1))
    store.register_group(group)
    assert store.write_batch("ns", _ns_rows((1, NS_T0, None, 1), (2, -1_000, -2_000, 2))) == 2
    assert store.write_batch("ns", _ns_rows((1, NS_T0 - 1_000, None, 9))) == 0  # one microsecond older
    now = datetime(2023, 11, 14, 22, 13, 21)  # exactly the ttl after key 1's event: expired
    assert store.read("ns", [1], now=now) == [None]
    assert store.read("ns", [1], now=now - timedelta(microseconds=1)) == [{"x": 1}]
    (got,) = store.read("ns", [2], now=datetime(1970, 1, 1), with_times=True)
    before = datetime(1969, 12, 31, 23, 59, 59)
    assert got == {"x": 2, "ts": before.replace(microsecond=999999), "made": before.replace(microsecond=999998)}
