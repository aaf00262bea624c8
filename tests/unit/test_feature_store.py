"""The feature store end to end: groups, inserts, point-in-time training data, datasets, online vectors."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
import lakefeed.transforms as lt
from lakefeed.errors import (
    ColumnNotFoundError,
    ConfigError,
    NotFoundError,
    OnlineStoreUnavailableError,
    SchemaError,
    UnsupportedOperationError,
)

T0 = datetime(2026, 1, 1)
USERS = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64()), ("ctr", pa.float64())])
ITEMS = pa.schema([("item_id", pa.string()), ("ts", pa.timestamp("us")), ("price", pa.float64())])


def _day(d: float) -> datetime:
    return T0 + timedelta(days=d)


@pytest.fixture
def fs(tmp_path: Path) -> lf.FeatureStore:
    store = lf.FeatureStore(tmp_path / "home")
    users = store.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS, ttl=timedelta(days=10))
    users.insert(
        {
            "user_id": [1, 1, 2, 3],
            "ts": [_day(0), _day(5), _day(1), _day(2)],
            "clicks": [10, 15, 20, 30],
            "ctr": [0.1, 0.15, 0.2, 0.3],
        }
    )
    items = store.create_feature_group("items", keys=["item_id"], event_time="ts", schema=ITEMS)
    items.insert({"item_id": ["a", "b"], "ts": [_day(0), _day(3)], "price": [9.5, 20.0]})
    return store


def test_groups_are_registered_and_survive_a_reopen(fs: lf.FeatureStore, tmp_path: Path) -> None:
    assert fs.list_feature_groups() == ["items", "users"]
    again = lf.FeatureStore(tmp_path / "home")
    users = again.feature_group("users")
    assert users.spec.keys == ["user_id"]
    assert users.features == ["clicks", "ctr"]
    assert users.spec.ttl == timedelta(days=10)
    assert users.read().num_rows == 4
    with pytest.raises(NotFoundError, match="no feature group 'nope'"):
        again.feature_group("nope")


def test_deleting_groups_and_views(fs: lf.FeatureStore) -> None:
    view = fs.create_feature_view("ctr", ["users.clicks", "items.price"])
    dataset = view.create_training_dataset({"user_id": [1], "item_id": ["a"], "ts": [_day(6)]}, "ctr_v1")
    users = fs.feature_group("users")
    location = users.table.location
    assert fs.online_store.count("users") == 3
    with pytest.raises(ConfigError, match=r"read by the feature view\(s\) \['ctr'\]"):
        fs.delete_feature_group("users")
    assert fs.list_feature_groups() == ["items", "users"]  # refused: nothing changed
    fs.delete_feature_view("ctr")
    assert fs.list_feature_views() == []
    with pytest.raises(NotFoundError, match="ctr"):
        fs.delete_feature_view("ctr")
    fs.delete_feature_group("users")
    assert fs.list_feature_groups() == ["items"]
    assert not fs.warehouse.table_exists(users.spec.table)
    assert not Path(location.removeprefix("file://")).exists()
    assert "users" not in fs.online_store.groups()
    with pytest.raises(NotFoundError, match="users"):
        fs.delete_feature_group("users")
    assert fs.training_dataset("ctr_v1").read().equals(dataset.read())  # datasets are tables of their own
    # the name can be used again, from scratch
    again = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS)
    assert again.read().num_rows == 0


def test_a_bad_insert_writes_nothing(fs: lf.FeatureStore) -> None:
    users = fs.feature_group("users")
    before = users.table.snapshot_id
    with pytest.raises(SchemaError, match="unknown column"):
        users.insert({"user_id": [4], "ts": [_day(1)], "clicks": [1], "ctr": [0.5], "oops": [1]})
    with pytest.raises(SchemaError, match="does not fit int64"):
        users.insert({"user_id": [4], "ts": [_day(1)], "clicks": ["many"], "ctr": [0.5]})
    with pytest.raises(SchemaError, match="null"):
        users.insert({"user_id": [None], "ts": [_day(1)], "clicks": [1], "ctr": [0.5]})
    assert users.table.snapshot_id == before
    view = fs.create_feature_view("v", ["users.clicks"])
    assert view.get_feature_vector({"user_id": 4})["clicks"] is None


def test_training_data_is_point_in_time_correct(fs: lf.FeatureStore) -> None:
    view = fs.create_feature_view("ctr", ["users.*", "items.price"])
    spine = pa.table(
        {
            "user_id": [1, 1, 1, 2, 3, 9],
            "item_id": ["a", "b", "a", "b", "a", "a"],
            "ts": [_day(4), _day(5), _day(16), _day(0.5), _day(2), _day(4)],
            "label": [0, 1, 0, 1, 1, 0],
        }
    )
    out = view.training_data(spine, label="label")
    assert out.column_names == ["user_id", "item_id", "ts", "label", "clicks", "ctr", "price"]
    assert out.column("label").to_pylist() == [0, 1, 0, 1, 1, 0]  # spine order, every row once
    # day 4 sees the day-0 row; day 5 sees the day-5 row (<=); day 16 is beyond the 10-day TTL
    assert out.column("clicks").to_pylist() == [10, 15, None, None, 30, None]
    assert out.column("price").to_pylist() == [9.5, 20.0, 9.5, None, 9.5, 9.5]
    assert view.last_report == {"users": 3, "items": 1}


def test_training_datasets_are_pinned_and_feed_the_loader(fs: lf.FeatureStore) -> None:
    view = fs.create_feature_view("ctr", ["users.clicks", "users.ctr"])
    spine = {"user_id": [1, 2, 3, 1], "ts": [_day(6)] * 4, "label": [1, 0, 1, 0]}
    ds = view.create_training_dataset(spine, "ctr_v1", label="label")
    first = ds.read()
    fs.feature_group("users").insert({"user_id": [2], "ts": [_day(5.5)], "clicks": [99], "ctr": [0.9]})
    assert view.training_data(spine).column("clicks").to_pylist() == [15, 99, 30, 15]
    again = fs.training_dataset("ctr_v1")
    assert again.read().equals(first)
    assert again.spec.snapshots["users"] is not None
    batches = list(again.loader(batch_size=2, features=["clicks", "ctr"], label="label", shuffle=False))
    assert sum(len(b["label"]) for b in batches) == 4
    # the dataset itself is a loader source, read at its pinned snapshot
    direct = list(lf.Loader(again, batch_size=2, features=["clicks", "ctr"], label="label", shuffle=False))
    assert [b["features"].tolist() for b in direct] == [b["features"].tolist() for b in batches]
    assert np.concatenate([b["features"][:, 0] for b in direct]).tolist() == first.column("clicks").to_pylist()
    with pytest.raises(ConfigError, match="TrainingDataset is read whole, at the snapshot it was saved in"):
        lf.Loader(again, features=["clicks"], filter=lf.col("clicks") > 1)
    with pytest.raises(ConfigError, match="already exists"):
        view.create_training_dataset(spine, "ctr_v1")
    assert fs.list_training_datasets() == ["ctr_v1"]
    location = again.table.location
    fs.delete_training_dataset("ctr_v1")
    assert fs.list_training_datasets() == []
    assert not fs.warehouse.table_exists(again.spec.table)
    assert not Path(location.removeprefix("file://")).exists()  # purged, files included
    with pytest.raises(NotFoundError, match="ctr_v1"):
        fs.training_dataset("ctr_v1")
    with pytest.raises(NotFoundError, match="ctr_v1"):
        fs.delete_training_dataset("ctr_v1")
    # the name is free again
    assert view.create_training_dataset(spine, "ctr_v1", label="label").read().num_rows == 4


def test_online_vectors_are_the_latest_values(fs: lf.FeatureStore) -> None:
    view = fs.create_feature_view("serve", ["users.clicks", "items.price"])
    got = view.get_feature_vectors([{"user_id": 1, "item_id": "b"}, {"user_id": 7, "item_id": "a"}], now=_day(6))
    assert got == [
        {"user_id": 1, "item_id": "b", "clicks": 15, "price": 20.0},
        {"user_id": 7, "item_id": "a", "clicks": None, "price": 9.5},
    ]
    # TTL on read: 10 days after user 1's last row, nothing
    assert view.get_feature_vector({"user_id": 1, "item_id": "b"}, now=_day(16))["clicks"] is None
    # an older event never replaces a newer one
    fs.feature_group("users").insert({"user_id": [1], "ts": [_day(1)], "clicks": [-1], "ctr": [0.0]})
    assert view.get_feature_vector({"user_id": 1, "item_id": "b"}, now=_day(6))["clicks"] == 15
    with pytest.raises(ColumnNotFoundError, match="item_id"):
        view.get_feature_vector({"user_id": 1})


def test_entity_keys_are_taken_as_given(fs: lf.FeatureStore) -> None:
    from collections import defaultdict

    view = fs.create_feature_view("serve_keys", ["users.clicks"])
    entity: defaultdict[str, int] = defaultdict(int, {"item_id": 3})
    with pytest.raises(ColumnNotFoundError, match="user_id"):  # no default key: user 0 is not served
        view.get_feature_vector(entity)
    assert "user_id" not in entity  # and the caller's mapping is left alone
    for wrapped in ((1,), [1], {"user_id": 1}):  # a key value is one value, never the key's parts
        with pytest.raises(SchemaError, match="user_id"):
            view.get_feature_vector({"user_id": wrapped}, now=_day(6))
    assert view.get_feature_vector({"user_id": np.int64(1)}, now=_day(6))["clicks"] == 15


def test_a_view_pipeline_applies_offline_and_online_alike(fs: lf.FeatureStore) -> None:
    history = fs.feature_group("users").read()
    pipe = lt.Pipeline([lt.StandardScaler(columns=["clicks", "ctr"])]).fit(history)
    view = fs.create_feature_view("scaled", ["users.clicks", "users.ctr"], transform=pipe)
    offline = view.training_data({"user_id": [1, 3], "ts": [_day(6), _day(6)]}).to_pylist()
    online = view.get_feature_vectors([{"user_id": 1}, {"user_id": 3}], now=_day(6))
    for a, b in zip(offline, online, strict=True):
        assert a["clicks"] == b["clicks"]
        assert a["ctr"] == b["ctr"]


def _random_history(
    tmp_path: Path, *, seed: int, inserts: int, rows: int, keys: int
) -> tuple[lf.FeatureStore, lf.FeatureGroup]:
    """A store whose online group ``users`` got ``inserts`` inserts of ``rows`` random rows over ``keys`` users."""
    store = lf.FeatureStore(tmp_path / "m")
    users = store.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS, online=True)
    rng = np.random.default_rng(seed)
    for _k in range(inserts):
        users.insert(
            {
                "user_id": rng.integers(0, keys, rows),
                "ts": [_day(float(d)) for d in rng.uniform(0, 30, rows)],
                "clicks": rng.integers(0, 100, rows),
                "ctr": rng.random(rows),
            }
        )
    return store, users


def test_materialize_is_incremental_and_idempotent(tmp_path: Path) -> None:
    store, users = _random_history(tmp_path, seed=0, inserts=3, rows=200, keys=50)
    view = store.create_feature_view("v", ["users.clicks"])
    expected = {r["user_id"]: r["clicks"] for r in users.latest().to_pylist()}
    # inserts already wrote online: nothing left to materialize
    assert store.materialize("users").rows == 0
    # forget the watermark (as after a crash before it was saved): redoing changes nothing
    store.registry.engine.dispose()
    import sqlalchemy as sa

    with store.registry.engine.begin() as conn:
        conn.execute(sa.text("update lakefeed_feature_groups set materialized = 1 where name = 'users'"))
    result = store.materialize("users")
    assert result.inserts == 2
    assert result.rows == 400
    assert result.watermark == 3
    got = view.get_feature_vectors([{"user_id": u} for u in expected], now=_day(40))
    assert {u: g["clicks"] for u, g in zip(expected, got, strict=True)} == expected


def test_materialize_shows_inserts_and_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = lf.FeatureStore(tmp_path / "m")
    users = store.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS, online=True)
    for k in range(2):
        users.insert(
            {
                "user_id": list(range(k * 700, k * 700 + 700)),
                "ts": [_day(1)] * 700,
                "clicks": [1] * 700,
                "ctr": [0.5] * 700,
            }
        )
    capsys.readouterr()
    result = store.materialize("users", start=_day(0), progress=True)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert result.rows == 1400
    assert "materializing users" in text
    assert "2/2 inserts, 1,400 rows" in text
    store.materialize("users", start=_day(0), progress=False)
    quiet = capsys.readouterr()
    assert "materializing" not in quiet.out + quiet.err


def test_a_materialization_that_crashed_midway_resumes_without_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefeed.store import materialize as materialize_module

    store, users = _random_history(tmp_path, seed=1, inserts=5, rows=300, keys=80)
    view = store.create_feature_view("v", ["users.clicks", "users.ctr"])
    expected = {r["user_id"]: (r["clicks"], r["ctr"]) for r in users.latest().to_pylist()}
    # the online side lost (a new online store), the watermark back at the start
    store.online_store.delete_group("users")
    import sqlalchemy as sa

    with store.registry.engine.begin() as conn:
        conn.execute(sa.text("update lakefeed_feature_groups set materialized = 0 where name = 'users'"))

    class Crashing(materialize_module._Counted):
        """Reads of the third insert die after half of its first batch is written online."""

        reads = 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            Crashing.reads += 1
            for batch in super().__iter__():
                if Crashing.reads == 3:
                    yield batch.slice(0, batch.num_rows // 2)
                    raise KeyboardInterrupt  # the process is killed
                yield batch

    monkeypatch.setattr(materialize_module, "_Counted", Crashing)
    with pytest.raises(KeyboardInterrupt):
        store.materialize("users")
    monkeypatch.undo()
    assert store.registry.materialized("users") == 2  # past the two inserts that were written whole
    partial = view.get_feature_vectors([{"user_id": u} for u in expected], now=_day(40))
    assert {u: (g["clicks"], g["ctr"]) for u, g in zip(expected, partial, strict=True)} != expected
    result = store.materialize("users")
    assert (result.inserts, result.rows, result.watermark) == (3, 900, 5)  # the crashed insert again, then the rest
    got = view.get_feature_vectors([{"user_id": u} for u in expected], now=_day(40))
    assert {u: (g["clicks"], g["ctr"]) for u, g in zip(expected, got, strict=True)} == expected
    assert store.online_store.count("users") == len(expected)  # one record per key: nothing twice
    assert store.materialize("users").rows == 0


@pytest.mark.redis
def test_an_online_failure_rolls_the_insert_back(tmp_path: Path) -> None:
    store = lf.FeatureStore(tmp_path / "r", online="redis://127.0.0.1:6399/0")  # nothing listens there
    users = store.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS)
    with pytest.raises(OnlineStoreUnavailableError):
        users.insert({"user_id": [1], "ts": [_day(0)], "clicks": [1], "ctr": [0.1]})
    assert users.read().num_rows == 0


def test_registered_sources_are_read_only(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    folder = tmp_path / "ext"
    folder.mkdir()
    pq.write_table(pa.table({"user_id": [1, 2], "ts": [_day(0), _day(1)], "score": [0.5, 0.7]}), folder / "p.parquet")
    store = lf.FeatureStore(tmp_path / "ro")
    group = store.register_feature_group("scores", str(folder), keys=["user_id"], event_time="ts")
    assert group.spec.read_only
    assert group.spec.source_format == "parquet"
    view = store.create_feature_view("s", ["scores.score"])
    assert view.training_data({"user_id": [2, 1], "ts": [_day(2), _day(2)]}).column("score").to_pylist() == [0.7, 0.5]
    with pytest.raises(UnsupportedOperationError, match="read-only"):
        group.insert({"user_id": [3], "ts": [_day(2)], "score": [0.1]})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "bad name"}, ConfigError, "identifier"),
        ({"keys": []}, ConfigError, "keys"),
        ({"keys": ["nope"]}, SchemaError, "'nope' is not in the schema"),
        (
            {"event_time": "clicks", "schema": pa.schema([("user_id", pa.int64()), ("clicks", pa.string())])},
            SchemaError,
            "time column",
        ),
        ({"ttl": timedelta(0)}, ConfigError, "positive"),
        ({"name": "users"}, ConfigError, "already exists"),
        ({"properties": {"write.parquet.compression-codec": 1}}, ConfigError, "must map strings to strings"),
        ({"properties": ["snappy"]}, ConfigError, "must map strings to strings"),
        ({"properties": {"write.parquet.compression-codec": "snapy"}}, ConfigError, "unknown .* 'snapy'; use one of"),
    ],
)
def test_bad_group_definitions(fs: lf.FeatureStore, kwargs: dict[str, object], error: type, match: str) -> None:
    options: dict[str, object] = {"name": "g2", "keys": ["user_id"], "event_time": "ts", "schema": USERS}
    options.update(kwargs)
    name = options.pop("name")
    with pytest.raises(error, match=match):
        fs.create_feature_group(name, **options)  # type: ignore[arg-type]
    assert fs.list_feature_groups() == ["items", "users"]  # nothing made


@pytest.mark.parametrize(
    ("properties", "codec"), [(None, "SNAPPY"), ({"write.parquet.compression-codec": "zstd"}, "ZSTD")]
)
def test_group_tables_are_written_with_snappy_unless_asked(
    tmp_path: Path, properties: dict[str, str] | None, codec: str
) -> None:
    import pyarrow.parquet as pq

    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS, properties=properties)
    group.insert({"user_id": [1, 2], "ts": [_day(0), _day(1)], "clicks": [3, 4], "ctr": [0.5, 0.25]})
    files = {f for task in group.table.scan().tasks() for part in task.parts for f in part.files}
    assert files
    for path in files:
        meta = pq.ParquetFile(path.removeprefix("file://")).metadata
        assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {codec}
    assert group.read().num_rows == 2


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (["nope.x"], "no feature group 'nope'"),
        (["users.nope"], "no feature 'nope'"),
        (["users"], "group.feature"),
        (["users.ts"], "no feature 'ts'"),
    ],
)
def test_bad_views(fs: lf.FeatureStore, features: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fs.create_feature_view("bad", features)
