"""The production feature store: registry and catalog on a real PostgreSQL, online store on a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import lakefeed as lf

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

T0 = datetime(2026, 3, 1)
SCHEMA = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])


@pytest.fixture
def production(postgres_uri: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[lf.FeatureStore, str]]:
    store = lf.FeatureStore(catalog_uri=postgres_uri, warehouse=tmp_path / "wh", online=redis_url)
    name = f"g_{uuid.uuid4().hex[:10]}"
    yield store, name
    store.online_store.delete_group(name)
    for view in store.list_feature_views():
        if view.startswith(name):
            store.registry.delete_view(view)
    if name in store.list_feature_groups():
        store.warehouse.drop_table(store.feature_group(name).spec.table, purge=True)
        store.registry.delete_group(name)
    store.close()


def test_groups_views_and_vectors_on_postgres_and_redis(
    production: tuple[lf.FeatureStore, str],
    postgres_uri: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    store, name = production
    group = store.create_feature_group(name, keys=["user_id"], event_time="ts", schema=SCHEMA, ttl=timedelta(days=3))
    group.insert({"user_id": [1, 2, 1], "ts": [T0, T0, T0 + timedelta(days=1)], "clicks": [1, 2, 3]})
    view = store.create_feature_view(f"{name}_v", [f"{name}.clicks"])
    spine = {"user_id": [1, 1, 2], "ts": [T0, T0 + timedelta(days=2), T0 + timedelta(days=5)]}
    assert view.training_data(spine).column("clicks").to_pylist() == [1, 3, None]  # day 5: beyond the TTL
    assert view.get_feature_vector({"user_id": 1}, now=T0 + timedelta(days=2))["clicks"] == 3
    # a second client sees the same registry, tables and online store
    other = lf.FeatureStore(catalog_uri=postgres_uri, warehouse=tmp_path / "wh", online=redis_url)
    assert name in other.list_feature_groups()
    assert other.feature_view(f"{name}_v").get_feature_vector({"user_id": 2}, now=T0)["clicks"] == 2
    assert other.materialize(name).rows == 0  # the inserts already wrote online
    other.close()


def test_the_registry_records_inserts_in_flight_on_postgres(postgres_uri: str) -> None:
    from tests.unit.test_feature_store_inserts import _registry_in_flight_contract, _registry_upgrade_contract

    _registry_in_flight_contract(postgres_uri, f"g_{uuid.uuid4().hex[:10]}")
    _registry_upgrade_contract(postgres_uri, f"g_{uuid.uuid4().hex[:10]}")


def test_materialize_waits_for_an_insert_in_flight_on_postgres(production: tuple[lf.FeatureStore, str]) -> None:
    store, name = production
    group = store.create_feature_group(name, keys=["user_id"], event_time="ts", schema=SCHEMA)
    first = store.registry.next_write(name)  # a writer between taking its number and committing
    group.insert({"user_id": [2], "ts": [T0], "clicks": [2]})
    assert store.materialize(name).watermark == 0
    order = pa.array([first << 32], pa.int64())
    row = pa.table({"user_id": [1], "ts": [T0], "clicks": [1]}, schema=SCHEMA)
    group.table.append(row.append_column("_lf_write", order))  # it commits, then dies
    assert store.materialize(name).watermark == 0
    assert store.online_store.read(name, [1]) == [None]
    result = store.materialize(name, stale_after=timedelta(0))
    assert (result.rows, result.watermark) == (2, 2)
    assert store.online_store.read(name, [1]) == [{"clicks": 1}]
    assert store.registry.in_flight(name) == {}
