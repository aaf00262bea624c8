"""Feature-store edges: registered online sources, groups with nothing online, empty datasets,
integer-time TTLs and naive instants."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakefeed as lf
from lakefeed.errors import ConfigError, OnlineStoreUnavailableError
from lakefeed.store.skew import check_skew

T0 = datetime(2026, 1, 1)
USERS = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
TICKS = pa.schema([("user_id", pa.int64()), ("step", pa.int64()), ("clicks", pa.int64())])


def test_a_registered_online_source_materializes_and_serves(tmp_path: Path) -> None:
    folder = tmp_path / "ext"
    folder.mkdir()
    rows = {
        "user_id": [1, 2, 1],
        "ts": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)],
        "score": [0.1, 0.2, 0.3],
    }
    pq.write_table(pa.table(rows), folder / "p.parquet")
    fs = lf.FeatureStore(tmp_path / "home")
    fs.register_feature_group("scores", str(folder), keys=["user_id"], event_time="ts", online=True)
    result = fs.materialize("scores")
    assert result.rows == 3
    view = fs.create_feature_view("v", ["scores.score"])
    now = T0 + timedelta(days=1)
    assert view.get_feature_vectors([{"user_id": 1}, {"user_id": 2}, {"user_id": 3}], now=now) == [
        {"user_id": 1, "score": 0.3},  # the later event wins
        {"user_id": 2, "score": 0.2},
        {"user_id": 3, "score": None},
    ]


def test_a_group_with_nothing_online_yet_serves_nulls(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    fs.create_feature_group("a", keys=["user_id"], event_time="ts", schema=USERS).insert(
        {"user_id": [1], "ts": [T0], "clicks": [5]}
    )
    other = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("views", pa.int64())])
    fs.create_feature_group("b", keys=["user_id"], event_time="ts", schema=other)  # never inserted into
    view = fs.create_feature_view("v", ["a.clicks", "b.views"])
    assert not fs.online_store.has_group("b")
    assert view.get_feature_vector({"user_id": 1}) == {"user_id": 1, "clicks": 5, "views": None}
    assert check_skew(view, sample=5, now=T0 + timedelta(days=1)).consistent


@pytest.mark.redis
def test_has_group_does_not_hide_an_unreachable_store(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home", online="redis://127.0.0.1:6399/0")  # nothing listens there
    with pytest.raises(OnlineStoreUnavailableError):
        fs.online_store.has_group("a")


def test_an_empty_training_dataset_reads_back_empty(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    fs.create_feature_group("a", keys=["user_id"], event_time="ts", schema=USERS, online=False).insert(
        {"user_id": [1], "ts": [T0], "clicks": [5]}
    )
    view = fs.create_feature_view("v", ["a.clicks"])
    spine = pa.table({"user_id": pa.array([], pa.int64()), "ts": pa.array([], pa.timestamp("us"))})
    dataset = view.create_training_dataset(spine, "empty")
    assert dataset.spec.snapshot_id is None
    again = lf.FeatureStore(tmp_path / "home").training_dataset("empty")
    for ds in (dataset, again):
        assert ds.read().num_rows == 0
        assert ds.read().column_names == ["user_id", "ts", "clicks"]
        assert list(ds.loader(batch_size=2, features=["clicks"])) == []


def test_a_training_dataset_records_its_snapshot(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    fs.create_feature_group("a", keys=["user_id"], event_time="ts", schema=USERS, online=False).insert(
        {"user_id": [1, 2], "ts": [T0, T0], "clicks": [5, 6]}
    )
    view = fs.create_feature_view("v", ["a.clicks"])
    dataset = view.create_training_dataset({"user_id": [2, 1], "ts": [T0, T0]}, "ds")
    assert dataset.spec.snapshot_id == dataset.table.snapshot_id is not None
    dataset.table.append(dataset.read())  # behind the store's back: the saved rows stay what they were
    assert lf.FeatureStore(tmp_path / "home").training_dataset("ds").read().column("clicks").to_pylist() == [6, 5]


def test_integer_event_times_take_an_integer_ttl(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.create_feature_group("a", keys=["user_id"], event_time="step", schema=TICKS, ttl=10)
    assert group.spec.ttl == 10
    group.insert({"user_id": [1, 2], "step": [100, 95], "clicks": [5, 6]})
    view = fs.create_feature_view("v", ["a.clicks"])
    spine = {"user_id": [1, 1, 2, 2], "step": [109, 110, 104, 105]}
    # valid while step - event < 10: a row exactly ttl old has expired
    assert view.training_data(spine).column("clicks").to_pylist() == [5, None, 6, None]
    reopened = lf.FeatureStore(tmp_path / "home").feature_group("a")
    assert reopened.spec.ttl == 10
    entities = [{"user_id": 1}, {"user_id": 2}]
    assert [v["clicks"] for v in view.get_feature_vectors(entities, now=104)] == [5, 6]
    assert [v["clicks"] for v in view.get_feature_vectors(entities, now=105)] == [5, None]
    # no integer now (a serving process has no clock in these units): the TTL cannot apply
    assert [v["clicks"] for v in view.get_feature_vectors(entities)] == [5, 6]


@pytest.mark.parametrize(
    ("schema", "ttl", "match"),
    [
        (TICKS, timedelta(seconds=5), r"ttl must be positive and an int in the event times' units .*'step' is int64"),
        (TICKS, 0, "ttl must be positive"),
        (TICKS, True, "ttl must be positive"),
        (USERS, 5, r"ttl must be positive and a timedelta .*'ts' is timestamp\[us\]"),
        (USERS, timedelta(0), "ttl must be positive"),
    ],
)
def test_a_ttl_of_the_wrong_kind_is_refused(tmp_path: Path, schema: pa.Schema, ttl: object, match: str) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    event_time = "step" if "step" in schema.names else "ts"
    with pytest.raises(ConfigError, match=match):
        fs.create_feature_group("a", keys=["user_id"], event_time=event_time, schema=schema, ttl=ttl)  # type: ignore[arg-type]
    assert fs.list_feature_groups() == []


@pytest.fixture
def pacific() -> Iterator[None]:
    """The process's local time zone set to one far from UTC."""
    import os

    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("pacific")
def test_check_skew_reads_a_naive_instant_as_utc(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.create_feature_group("a", keys=["user_id"], event_time="ts", schema=USERS, ttl=timedelta(hours=1))
    group.insert({"user_id": [1], "ts": [datetime(2024, 1, 1, 11, 30)], "clicks": [5]})
    view = fs.create_feature_view("v", ["a.clicks"])
    naive = check_skew(view, sample=1, now=datetime(2024, 1, 1, 12))
    aware = check_skew(view, sample=1, now=datetime(2024, 1, 1, 12, tzinfo=UTC))
    assert naive.consistent, naive.mismatches
    assert aware.consistent, aware.mismatches


def test_a_feature_named_like_a_key_of_the_view_is_refused(tmp_path: Path) -> None:
    fs = lf.FeatureStore(tmp_path / "home")
    fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS)
    items = pa.schema([("item_id", pa.int64()), ("ts", pa.timestamp("us")), ("user_id", pa.int64())])
    fs.create_feature_group("items", keys=["item_id"], event_time="ts", schema=items)  # its seller, say
    with pytest.raises(ConfigError, match=r"items.user_id has the name of a key of feature group 'users'"):
        fs.create_feature_view("v", ["users.clicks", "items.*"])
    assert fs.list_feature_views() == []
    fs.create_feature_view("alone", ["items.user_id"])  # no group of this view is keyed by it


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("delta", marks=pytest.mark.delta),
        pytest.param("delta_pk", marks=pytest.mark.delta),
        pytest.param("paimon", marks=pytest.mark.paimon),
        pytest.param("paimon_pk", marks=pytest.mark.paimon),
    ],
)
def test_delta_and_paimon_sources_register_read_only_and_pin_their_snapshot(tmp_path: Path, kind: str) -> None:
    from lakefeed.errors import UnsupportedOperationError

    scheme, _, pk = kind.partition("_")
    uri = f"{scheme}://{tmp_path}/src" + ("/db.t" if scheme == "paimon" else "")
    first = pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "ts": pa.array([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)], pa.timestamp("us")),
            "clicks": pa.array([10, 20, 30], pa.int64()),
        }
    )
    keys = ["user_id", "ts"] if pk else None
    source = lf.create_table(uri, first, primary_key=keys) if pk else lf.create_table(uri, first)
    fs = lf.FeatureStore(tmp_path / "home")
    group = fs.register_feature_group("ext", uri, keys=["user_id"], event_time="ts", online=True)
    assert group.spec.read_only
    assert group.spec.source_format == scheme
    with pytest.raises(UnsupportedOperationError, match=f"registered {scheme} source and read-only"):
        group.insert(first)
    view = fs.create_feature_view("v", ["ext.clicks"])
    spine = {"user_id": [1, 2, 3, 4], "ts": [T0 + timedelta(days=1)] * 4}
    assert view.training_data(spine).column("clicks").to_pylist() == [10, 20, 30, None]
    dataset = view.create_training_dataset(spine, "ds")
    # the source moves on: a later event for user 1, and (primary-key tables) a changed row of user 2
    later = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([T0 + timedelta(hours=12), T0 + timedelta(hours=1)], pa.timestamp("us")),
            "clicks": pa.array([11, 21], pa.int64()),
        }
    )
    if pk:
        source.upsert(later)
    else:
        source.append(later.slice(0, 1))
    now = view.training_data(spine).column("clicks").to_pylist()
    assert now == ([11, 21, 30, None] if pk else [11, 20, 30, None])
    assert dataset.read().column("clicks").to_pylist() == [10, 20, 30, None]  # pinned to the old snapshot
    assert fs.training_dataset("ds").read().equals(dataset.read())
    assert fs.materialize("ext").rows >= 3
    got = view.get_feature_vectors([{"user_id": 1}, {"user_id": 2}], now=T0 + timedelta(days=1))
    assert got == [{"user_id": 1, "clicks": 11}, {"user_id": 2, "clicks": 21 if pk else 20}]
