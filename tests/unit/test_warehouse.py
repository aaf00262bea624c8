"""The embedded warehouse: where it lives, namespaces on demand, typed catalog configuration."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.config import PyIcebergCatalogConfig, SqlCatalogConfig
from lakefeed.errors import ConfigError, NamespaceNotFoundError, SchemaError, TableNotFoundError


def test_home_from_argument_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert lf.Warehouse(tmp_path / "a").home == tmp_path / "a"
    monkeypatch.setenv("LAKEFEED_HOME", str(tmp_path / "env"))
    assert lf.Warehouse().home == tmp_path / "env"
    monkeypatch.delenv("LAKEFEED_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    wh = lf.Warehouse()
    assert wh.home == tmp_path / "user" / ".lakefeed"
    wh.create_table("t", pa.table({"x": [1]}))
    assert (tmp_path / "user" / ".lakefeed" / "catalog.db").exists()
    assert wh.list_tables() == ["default.t"]


def test_namespaces_are_created_on_demand(warehouse: lf.Warehouse) -> None:
    warehouse.create_table("a.c", pa.table({"x": [1]}))
    warehouse.create_table("z.t", pa.table({"x": [1]}))
    assert warehouse.list_namespaces() == ["a", "z"]
    assert warehouse.list_tables() == ["a.c", "z.t"]
    with pytest.raises(ConfigError, match="not valid"):
        warehouse.create_table("a.b.c", pa.table({"x": [1]}))
    assert warehouse.list_tables("z") == ["z.t"]
    with pytest.raises(NamespaceNotFoundError, match="'nope' not found"):
        warehouse.list_tables("nope")


def test_two_warehouse_objects_see_the_same_tables(tmp_path: Path) -> None:
    lf.Warehouse(tmp_path).create_table("s.t", pa.table({"x": [1, 2]}))
    assert lf.Warehouse(tmp_path).table("s.t").scan().count() == 2
    assert lf.open_table(f"iceberg://{tmp_path}/s.t").scan().count() == 2


def test_typed_catalog_config(tmp_path: Path) -> None:
    cfg = PyIcebergCatalogConfig(
        name="typed",
        properties={"type": "sql", "uri": f"sqlite:///{tmp_path}/c.db", "warehouse": (tmp_path / "wh").as_uri()},
    )
    wh = lf.Warehouse(catalog=cfg)
    wh.create_table("n.t", pa.table({"x": [1]}))
    assert wh.table("n.t").scan().count() == 1
    with pytest.raises(ConfigError, match="not both"):
        lf.Warehouse(tmp_path, catalog=cfg)
    with pytest.raises(ValueError, match="extra"):
        SqlCatalogConfig(uri="sqlite://", warehouse="x", bogus=1)  # type: ignore[call-arg]


def test_catalog_uri_needs_a_warehouse() -> None:
    with pytest.raises(ConfigError, match="needs warehouse="):
        lf.Warehouse(catalog_uri="postgresql+psycopg://postgres:secret@127.0.0.1/test")


def test_unreachable_catalog_is_a_catalog_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is in the main environment only")
    wh = lf.Warehouse(catalog_uri="postgresql+psycopg://postgres:secret@127.0.0.1:1/none", warehouse=tmp_path)
    with pytest.raises(lf.errors.CatalogError, match=r"unreachable") as info:
        wh.list_tables()
    assert "secret" not in str(info.value)
    wh.close()


def test_open_table_detects_formats(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "one.parquet")
    assert lf.open_table(tmp_path / "one.parquet").format == "parquet"
    assert lf.open_table(str(tmp_path)).format == "parquet"
    assert lf.open_table(f"parquet://{tmp_path}/*.parquet").scan().count() == 2
    with pytest.raises(TableNotFoundError, match="no table at"):
        lf.open_table(tmp_path / "nothing")
    with pytest.raises(TableNotFoundError, match="no Parquet files match"):
        lf.open_table(f"parquet://{tmp_path}/*.csv")
    with pytest.raises(ConfigError, match=r"end in '/namespace\.table'"):
        lf.open_table(f"iceberg://{tmp_path}")
    with pytest.raises(ConfigError, match="plain Parquet is read-only"):
        lf.create_table(f"parquet://{tmp_path}/x", pa.table({"x": [1]}))


def test_open_iceberg_folder_without_catalog(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("f.t", pa.table({"x": [1, 2, 3]}))
    table.append(pa.table({"x": [4]}))
    folder = table.location.removeprefix("file://")
    static = lf.open_table(folder)
    assert static.format == "iceberg"
    assert sorted(static.scan().to_arrow().column("x").to_pylist()) == [1, 2, 3, 4]


def test_parquet_is_read_only(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "a.parquet")
    t = lf.open_table(tmp_path)
    with pytest.raises(lf.errors.UnsupportedOperationError, match="does not support append"):
        t.append(pa.table({"x": [2]}))


def test_parquet_scan_pins_its_file_list(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "a.parquet")
    t = lf.open_table(tmp_path)
    scan = t.scan()
    pq.write_table(pa.table({"x": [2]}), tmp_path / "b.parquet")
    assert scan.count() == 1
    assert t.refresh().scan().count() == 2


def test_parquet_files_with_different_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1], "y": ["a"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [2]}), tmp_path / "b.parquet")
    t = lf.open_table(tmp_path)
    rows = sorted(t.scan(filter=lf.col("x") > 0).to_arrow().to_pylist(), key=lambda r: r["x"])
    assert rows == [{"x": 1, "y": "a"}, {"x": 2, "y": None}]


@pytest.mark.parametrize("kind", [pa.timestamp("ns"), pa.timestamp("us", tz="Europe/Paris")])
def test_a_type_iceberg_lacks_is_a_schema_error(warehouse: lf.Warehouse, kind: pa.DataType) -> None:
    schema = pa.schema([("id", pa.int64()), ("ts", kind)])
    with pytest.raises(SchemaError, match=r"column 'ts' is timestamp.*cast it to pa.timestamp\('us'\)"):
        warehouse.create_table("n.bad", schema)
    assert not warehouse.table_exists("n.bad")
    fs = lf.FeatureStore(warehouse.home or "")
    with pytest.raises(SchemaError, match="column 'ts' is timestamp"):
        fs.create_feature_group("g", keys=["id"], event_time="ts", schema=schema.append(pa.field("x", pa.float64())))
    assert fs.list_feature_groups() == []
