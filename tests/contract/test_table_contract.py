"""One contract, every format: reading the shared data set back gives exactly the data."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, FilterTypeError, SnapshotNotFoundError, UnsupportedOperationError
from lakefeed.testing import assert_tables_equal
from tests.conftest import DATA
from tests.reference import reference_filter


def _values(table: pa.Table) -> pa.Table:
    """Compare values, not nullability flags (formats differ on optional/required)."""
    return pa.table({n: table.column(n).to_pylist() for n in table.column_names})


def test_full_scan_equals_data(any_table: lf.Table) -> None:
    result = any_table.scan().to_arrow()
    assert result.num_rows == DATA.num_rows
    assert_tables_equal(_values(result.select(DATA.column_names)), _values(DATA))


def test_schema_types_round_trip(any_table: lf.Table) -> None:
    schema = any_table.schema
    for field in DATA.schema:
        assert schema.field(field.name).type == field.type, field.name


def test_projection_keeps_requested_order(any_table: lf.Table) -> None:
    result = any_table.scan(columns=["s", "id"]).to_arrow()
    assert result.column_names == ["s", "id"]
    assert_tables_equal(_values(result), _values(DATA.select(["s", "id"])))


@pytest.mark.parametrize(
    "expr",
    [
        (lf.col("i") > 30) & lf.col("s").isin(["a", "x"]),
        ~(lf.col("f") <= 10.5) | lf.col("b").is_null(),
        lf.col("d").between(date(2024, 1, 10), date(2024, 2, 1)),
        lf.col("ts") >= datetime(2024, 2, 1),
        (lf.col("cat") == "red") & ~lf.col("i").isin([1, 2, 3]),
        lf.col("s") != "a",
        lf.col("b") == True,  # noqa: E712 - a filter, not a comparison
        lf.col("id").isin([]),
    ],
    ids=str,
)
def test_filter_matches_reference(any_table: lf.Table, expr: lf.Expr) -> None:
    result = any_table.scan(filter=expr).to_arrow().select(DATA.column_names)
    assert_tables_equal(_values(result), _values(reference_filter(DATA, expr)))


def test_filter_on_column_outside_projection(any_table: lf.Table) -> None:
    expr = (lf.col("f") > 50) & (lf.col("cat") != "blue")
    result = any_table.scan(columns=["id"], filter=expr).to_arrow()
    expected = reference_filter(DATA, expr).select(["id"])
    assert_tables_equal(_values(result), _values(expected))


def test_count_with_and_without_filter(any_table: lf.Table) -> None:
    assert any_table.scan().count() == DATA.num_rows
    expr = lf.col("i") < 0
    assert any_table.scan(filter=expr).count() == reference_filter(DATA, expr).num_rows


@pytest.mark.parametrize("target", [1, 2_000, 64 << 20])
def test_tasks_partition_the_scan(any_table: lf.Table, target: int) -> None:
    expr = lf.col("f") > 0
    scan = any_table.scan(columns=["id", "f"], filter=expr)
    tasks = scan.tasks(target_bytes=target)
    ids: list[int] = []
    for task in tasks:
        assert task.estimated_bytes >= 0
        for batch in task.read():
            assert batch.schema == scan.schema
            ids.extend(batch.column("id").to_pylist())
    expected = reference_filter(DATA, expr).column("id").to_pylist()
    assert sorted(ids) == sorted(expected)
    assert len(ids) == len(set(ids)), "a row was read twice"


def test_to_batches_streams_same_rows(any_table: lf.Table) -> None:
    rows = sum(b.num_rows for b in any_table.scan().to_batches())
    assert rows == DATA.num_rows


def test_missing_column_is_named(any_table: lf.Table) -> None:
    with pytest.raises(ColumnNotFoundError, match="nope"):
        any_table.scan(columns=["id", "nope"])
    with pytest.raises(ColumnNotFoundError, match="missing_col"):
        any_table.scan(filter=lf.col("missing_col") > 1)


def test_filter_on_wrong_type(any_table: lf.Table) -> None:
    with pytest.raises(FilterTypeError, match="'i' is int32"):
        any_table.scan(filter=lf.col("i") > "3")
    with pytest.raises(FilterTypeError, match="'d' is date32"):
        any_table.scan(filter=lf.col("d") == 3)


def test_wrong_snapshot_lists_existing(any_table: lf.Table) -> None:
    if any_table.format == "parquet":
        with pytest.raises(UnsupportedOperationError, match="no snapshots"):
            any_table.scan(snapshot=1)
        return
    with pytest.raises(SnapshotNotFoundError, match=str(any_table.snapshot_id)):
        any_table.scan(snapshot=987654321)
    with pytest.raises(SnapshotNotFoundError, match="oldest"):
        any_table.scan(snapshot=datetime(2000, 1, 1))


def test_snapshots_are_listed_oldest_first(any_table: lf.Table) -> None:
    snaps = any_table.snapshots()
    if any_table.format == "parquet":
        assert snaps == []
        return
    assert snaps, "a written table has snapshots"
    assert snaps[-1].snapshot_id == any_table.snapshot_id
    assert [s.timestamp for s in snaps] == sorted(s.timestamp for s in snaps)


def test_empty_projection_keeps_row_counts(any_table: lf.Table) -> None:
    scan = any_table.scan(columns=[], filter=lf.col("i") > 0)
    expected = reference_filter(DATA, lf.col("i") > 0).num_rows
    assert scan.to_arrow().num_rows == expected
    assert scan.count() == expected
    assert any_table.scan(columns=[]).to_arrow().num_rows == DATA.num_rows
