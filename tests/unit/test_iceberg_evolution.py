"""Iceberg schema evolution: renames, drops and time travel read the right columns and rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakefeed as lf
from lakefeed.tables.iceberg import IcebergTable, _IcebergFilePart


def _rows(table: pa.Table) -> list[str]:
    return sorted(map(repr, table.to_pylist()))


def _swap_a_and_b(t: IcebergTable) -> None:
    """Swap the names of columns a and b (renames make no snapshot)."""
    ice = t.pyiceberg_table
    for old, new in [("a", "tmp"), ("b", "a"), ("tmp", "b")]:
        with ice.update_schema() as update:
            update.rename_column(old, new)
    t.refresh()


@pytest.fixture
def ab(warehouse: lf.Warehouse) -> IcebergTable:
    data = pa.table({"a": pa.array([1, 2, 3], pa.int64()), "b": pa.array([100, 200, 300], pa.int64())})
    t = warehouse.create_table("evo.ab", data)
    assert isinstance(t, IcebergTable)
    return t


def test_filter_after_a_swap_rename_is_not_served_from_the_old_plan(ab: IcebergTable) -> None:
    assert ab.scan(filter=lf.col("a") > 50).to_arrow().num_rows == 0  # plans (and caches) the snapshot
    _swap_a_and_b(ab)
    got = ab.scan(filter=lf.col("a") > 50).to_arrow()
    assert got.sort_by("a").column("a").to_pylist() == [100, 200, 300]
    assert ab.scan(filter=lf.col("a") > 50).count() == 3


def test_time_travel_filter_uses_the_snapshot_schema_after_a_swap(ab: IcebergTable) -> None:
    snap = ab.snapshot_id
    assert snap is not None
    _swap_a_and_b(ab)
    ab.append(pa.table({"b": pa.array([4], pa.int64()), "a": pa.array([400], pa.int64())}))
    old = ab.scan(snapshot=snap, filter=lf.col("a") == 2).to_arrow()
    assert old.to_pylist() == [{"a": 2, "b": 200}]
    # the same snapshot read now (current names) and then in time travel, in both orders
    assert ab.scan(snapshot=snap, filter=lf.col("b") > 50).to_arrow().column("a").to_pylist() == [1, 2, 3]
    assert ab.scan(filter=lf.col("b") > 50).to_arrow().num_rows == 0
    assert ab.scan(filter=lf.col("a") > 50).to_arrow().sort_by("b").column("b").to_pylist() == [1, 2, 3, 4]
    assert ab.scan(snapshot=snap, filter=lf.col("a") > 50).to_arrow().num_rows == 0


def test_time_travel_filter_on_a_renamed_or_dropped_column(warehouse: lf.Warehouse) -> None:
    t = warehouse.create_table(
        "evo.x", pa.table({"x": pa.array([1, 2, 3], pa.int64()), "z": pa.array([1.0, 2.0, 3.0])})
    )
    assert isinstance(t, IcebergTable)
    snap = t.snapshot_id
    with t.pyiceberg_table.update_schema() as update:
        update.rename_column("x", "y")
        update.delete_column("z")
    t.refresh()
    assert t.scan(snapshot=snap, filter=lf.col("x") == 2).to_arrow().to_pylist() == [{"x": 2, "z": 2.0}]
    assert t.scan(snapshot=snap, filter=lf.col("z") >= 2.0).count() == 2
    assert t.scan(snapshot=snap, filter=~(lf.col("z") < 2.0) | (lf.col("x") == 1)).count() == 3
    assert t.scan(filter=lf.col("y") == 3).to_arrow().to_pylist() == [{"y": 3}]


def test_renamed_nested_fields_are_read_by_field_id(warehouse: lf.Warehouse) -> None:
    from pyiceberg.types import LongType

    inner = pa.struct([("p", pa.int64()), ("q", pa.string())])
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "st": pa.array([{"p": 1, "q": "u"}, {"p": 2, "q": "v"}, None], inner),
            "ls": pa.array([[{"p": 5, "q": "a"}], [], None], pa.list_(inner)),
        }
    )
    t = warehouse.create_table("evo.nested", data)
    assert isinstance(t, IcebergTable)
    snap = t.snapshot_id
    ice = t.pyiceberg_table
    with ice.update_schema() as update:
        update.rename_column("st.p", "pp")
        update.rename_column("ls.element.q", "qq")
    with ice.update_schema() as update:
        update.delete_column("st.q")
    with ice.update_schema() as update:
        update.add_column(("st", "q"), LongType())  # a new field under the old name: not the old values
    t.refresh()
    scan = t.scan(filter=lf.col("id") >= 1)
    assert any(isinstance(p, _IcebergFilePart) for p in scan.parts())
    got = t.scan().to_arrow()
    assert _rows(got) == _rows(ice.refresh().scan().to_arrow().cast(got.schema))
    by_id = {r["id"]: r for r in got.to_pylist()}
    assert by_id[1]["st"] == {"pp": 1, "q": None}
    assert by_id[1]["ls"] == [{"p": 5, "qq": "a"}]
    assert t.scan(snapshot=snap).to_arrow().column("st").to_pylist()[0] == {"p": 1, "q": "u"}
    assert t.scan(filter=lf.col("id") == 2).to_arrow().column("st").to_pylist() == [{"pp": 2, "q": None}]


def test_unchanged_nested_fields_keep_the_fast_path(warehouse: lf.Warehouse) -> None:
    data = pa.table({"id": [1, 2], "st": pa.array([{"p": 1}, None], pa.struct([("p", pa.int64())]))})
    t = warehouse.create_table("evo.same", data)
    with t.pyiceberg_table.update_schema() as update:
        update.rename_column("id", "key")
    t.refresh()
    scan = t.scan()
    assert not any(isinstance(p, _IcebergFilePart) for p in scan.parts())
    assert scan.to_arrow().column("st").to_pylist() == [{"p": 1}, None]
    assert pc.sum(scan.to_arrow().column("key")).as_py() == 3


def test_append_of_struct_list_and_map_columns_the_table_stores_as_large_types(warehouse: lf.Warehouse) -> None:
    data = pa.table(
        {
            "st": pa.array([{"q": "u"}], pa.struct([("q", pa.string())])),
            "l": pa.array([["a"]], pa.list_(pa.string())),
            "m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int32())),
        }
    )
    t = warehouse.create_table("evo.structs", data)
    t.append(data)
    t.append(pa.table({"st": pa.array([{"q": "w"}], pa.struct([("q", pa.large_string())]))}))
    assert t.scan().count() == 3
    assert _rows(t.scan(columns=["st"]).to_arrow()) == sorted(repr({"st": {"q": q}}) for q in "uuw")
    for bad in [
        pa.array([{"z": "x"}], pa.struct([("z", pa.string())])),  # a field the table lacks
        pa.array([{"q": 1.5}], pa.struct([("q", pa.float64())])),  # a field of another type
    ]:
        with pytest.raises(lf.SchemaError, match="column 'st'"):
            t.append(pa.table({"st": bad}))
    with pytest.raises(lf.SchemaError, match="column 'm'"):
        t.append(pa.table({"m": pa.array([[(1, 1)]], pa.map_(pa.int64(), pa.int32()))}))
    assert t.scan().count() == 3
