"""Bad input to the feature store: each gets a clear error, and nothing is written or left behind."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError
from lakefeed.store.definitions import WRITE_COLUMN

T0 = datetime(2026, 3, 1)
USERS = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])


def _rows(n: int = 3) -> dict[str, list[Any]]:
    return {"user_id": list(range(n)), "ts": [T0] * n, "clicks": list(range(10, 10 + n))}


def _offline_store(tmp_path: Path) -> lf.FeatureStore:
    """A production-style store (catalog + warehouse) with no online store."""
    return lf.FeatureStore(catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=tmp_path / "wh")


def _nothing_created(fs: lf.FeatureStore, name: str) -> None:
    assert name not in fs.list_feature_groups()
    assert not fs.warehouse.table_exists(f"features.{name}")


def test_an_online_group_needs_an_online_store(tmp_path: Path) -> None:
    with _offline_store(tmp_path) as fs:
        with pytest.raises(ConfigError, match=r"'users' is online .* no online store; pass FeatureStore\(.*online="):
            fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS)
        _nothing_created(fs, "users")
        offline = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS, online=False)
        assert offline.insert(_rows()).rows == 3
        with pytest.raises(ConfigError, match="offline only"):
            fs.materialize("users")


def test_an_online_group_opened_without_an_online_store_inserts_nothing(tmp_path: Path) -> None:
    with lf.FeatureStore(tmp_path / "home") as fs:
        fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS)
    # the same catalog and warehouse, opened without the online store
    with lf.FeatureStore(
        catalog_uri=f"sqlite:///{tmp_path / 'home' / 'catalog.db'}", warehouse=tmp_path / "home" / "warehouse"
    ) as fs:
        group = fs.feature_group("users")
        before = group.table.snapshot_id
        with pytest.raises(ConfigError, match="no online store"):
            group.insert(_rows())
        assert group.table.snapshot_id == before
        assert group.read().num_rows == 0
        with pytest.raises(ConfigError, match="no online store"):
            fs.materialize("users")


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        (
            pa.schema([("user_id", pa.float64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())]),
            "key column 'user_id' is double",
        ),
        (
            pa.schema(
                [("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("tags", pa.map_(pa.string(), pa.int64()))]
            ),
            "feature 'tags' is map",
        ),
    ],
)
def test_a_type_the_online_store_cannot_hold_is_refused_at_creation(
    tmp_path: Path, schema: pa.Schema, match: str
) -> None:
    with lf.FeatureStore(tmp_path / "home") as fs:
        with pytest.raises(SchemaError, match=match):
            fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=schema)
        _nothing_created(fs, "g")
        # offline only, the same schema is fine
        fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=schema, online=False)
        assert "g" in fs.list_feature_groups()


def test_nanosecond_times_that_are_not_whole_microseconds_are_refused_before_writing(tmp_path: Path) -> None:
    with lf.FeatureStore(tmp_path / "home") as fs:
        group = fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS)
        stamps = pa.array([1_767_225_600_000_000_000, 1_767_225_600_000_000_123], pa.timestamp("ns"))
        with pytest.raises(SchemaError, match=r"column 'ts' is timestamp\[ns\] and does not fit timestamp\[us\]"):
            group.insert({"user_id": [1, 2], "ts": stamps, "clicks": [3, 4]})
        assert group.table.snapshot_id is None  # not even an append undone later
        whole = pa.array([1_767_225_600_000_000_000, 1_767_225_600_000_001_000], pa.timestamp("ns"))
        assert group.insert({"user_id": [1, 2], "ts": whole, "clicks": [3, 4]}).rows == 2


def test_nulls_in_a_non_nullable_feature_are_refused(tmp_path: Path) -> None:
    schema = pa.schema(
        [("user_id", pa.int64()), ("ts", pa.timestamp("us")), pa.field("clicks", pa.int64(), nullable=False)]
    )
    with lf.FeatureStore(tmp_path / "home") as fs:
        group = fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=schema)
        with pytest.raises(SchemaError, match=r"1 null\(s\) in 'clicks', which is not nullable"):
            group.insert({"user_id": [1, 2], "ts": [T0, T0], "clicks": [5, None]})
        assert group.table.snapshot_id is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"schema": {"user_id": "int64"}}, ConfigError, "schema must be a pyarrow.Schema, got dict"),
        ({"keys": []}, ConfigError, "keys must be a non-empty list"),
        ({"keys": "user_id"}, ConfigError, "keys must be a non-empty list"),
        ({"schema": USERS.append(pa.field(WRITE_COLUMN, pa.int64()))}, SchemaError, "is reserved"),
        ({"schema": USERS.remove(2)}, SchemaError, "no feature columns besides keys and times"),
        ({"event_time": "clicks", "schema": USERS.remove(1)}, SchemaError, None),
        ({"created_time": "nope"}, SchemaError, "column 'nope' is not in the schema"),
    ],
)
def test_bad_feature_group_definitions(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str | None
) -> None:
    args: dict[str, Any] = {"keys": ["user_id"], "event_time": "ts", "schema": USERS} | kwargs
    with lf.FeatureStore(tmp_path / "home") as fs:
        with pytest.raises(error, match=match):
            fs.create_feature_group("g", **args)
        _nothing_created(fs, "g")


def test_a_failed_registry_write_leaves_no_table_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lf.FeatureStore(tmp_path / "home") as fs:

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise ConnectionError("the registry went away")  # as when its database connection drops

        monkeypatch.setattr(fs.registry, "put_group", refuse)
        with pytest.raises(ConnectionError, match="went away"):
            fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS)
        monkeypatch.undo()
        _nothing_created(fs, "g")
        group = fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS)  # the name is free
        group.insert(_rows())
        view = fs.create_feature_view("v", ["g.*"])
        spine = pa.table({"user_id": [0, 1], "ts": pa.array([T0, T0], pa.timestamp("us"))})
        monkeypatch.setattr(fs.registry, "put_dataset", refuse)
        with pytest.raises(ConnectionError, match="went away"):
            view.create_training_dataset(spine, name="ds")
        monkeypatch.undo()
        assert not fs.warehouse.table_exists("training.ds")
        assert view.create_training_dataset(spine, name="ds").read().num_rows == 2


def test_bad_views_spines_and_dataset_names(tmp_path: Path) -> None:
    with lf.FeatureStore(tmp_path / "home") as fs:
        fs.create_feature_group("g", keys=["user_id"], event_time="ts", schema=USERS).insert(_rows())
        with pytest.raises(ConfigError, match=r"features must be a non-empty list like \['user_stats.clicks'\]"):
            fs.create_feature_view("v", [])
        with pytest.raises(
            ConfigError, match="transform must be a fitted lakefeed Pipeline or its JSON spec, got dict"
        ):
            fs.create_feature_view("v", ["g.clicks"], transform={"steps": []})
        assert "v" not in fs.list_feature_views()
        view = fs.create_feature_view("v", ["g.clicks"])
        spine = pa.table({"user_id": [0, 1], "ts": pa.array([T0, T0 + timedelta(days=1)], pa.timestamp("us"))})
        with pytest.raises(ColumnNotFoundError, match=r"spine has no label column 'y'; it has \['user_id', 'ts'\]"):
            view.training_data(spine, label="y")
        with pytest.raises(ColumnNotFoundError, match="spine has no column 'when' \\(spine_time\\)"):
            view.training_data(spine, spine_time="when")
        for bad in ("ctr v1", "1st", ""):
            with pytest.raises(ConfigError, match=r"must be an identifier, e\.g\. 'ctr_v1'"):
                view.create_training_dataset(spine, name=bad)
        assert view.training_data(spine).column("clicks").to_pylist() == [10, 11]
