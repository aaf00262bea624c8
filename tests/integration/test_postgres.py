"""The production catalog: pyiceberg's SQL catalog on a real PostgreSQL at 127.0.0.1:5432."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import lakefeed as lf

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_warehouse(postgres_uri: str, tmp_path: Path) -> Iterator[lf.Warehouse]:
    with lf.Warehouse(catalog_uri=postgres_uri, warehouse=tmp_path / "wh") as wh:
        yield wh


@pytest.fixture
def namespace(pg_warehouse: lf.Warehouse) -> Iterator[str]:
    ns = f"t_{uuid.uuid4().hex[:12]}"
    yield ns
    for name in pg_warehouse.list_tables():
        if name.startswith(f"{ns}."):
            pg_warehouse.drop_table(name, purge=True)
    pg_warehouse.catalog.drop_namespace(ns)


def test_full_lifecycle_on_postgres(
    pg_warehouse: lf.Warehouse, namespace: str, postgres_uri: str, tmp_path: Path
) -> None:
    name = f"{namespace}.clicks"
    data = pa.table({"id": pa.array(range(1000), pa.int64()), "v": [float(i % 7) for i in range(1000)]})
    table = pg_warehouse.create_table(name, data, primary_key=["id"], partition_by=["bucket(4, id)"])
    first = table.snapshot_id
    table.upsert(pa.table({"id": pa.array([1, 5000], pa.int64()), "v": [99.0, 1.0]}))
    table.delete(lf.col("v") == 3.0)
    assert name in pg_warehouse.list_tables()

    # a second client (another process would do the same) sees the same catalog state
    second = lf.Warehouse(catalog_uri=postgres_uri, warehouse=tmp_path / "wh")
    other = second.table(name)
    assert other.snapshot_id == table.snapshot_id
    rows = {r["id"]: r["v"] for r in other.scan().to_arrow().to_pylist()}
    expected = {i: float(i % 7) for i in range(1000) if i % 7 != 3}
    expected.update({1: 99.0, 5000: 1.0})
    assert rows == expected
    assert other.scan(snapshot=first).count() == 1000
    assert other.scan(filter=lf.col("v") > 5.0).count() == sum(1 for v in expected.values() if v > 5.0)
    second.close()


def test_catalog_is_shared_between_warehouse_objects_and_isolated_by_namespace(
    pg_warehouse: lf.Warehouse, namespace: str
) -> None:
    pg_warehouse.create_table(f"{namespace}.a", pa.table({"x": [1]}))
    with pytest.raises(lf.errors.TableExistsError):
        pg_warehouse.create_table(f"{namespace}.a", pa.table({"x": [2]}))
    assert pg_warehouse.list_tables(namespace) == [f"{namespace}.a"]
