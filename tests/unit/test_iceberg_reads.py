"""Iceberg read paths: the pyiceberg path for files with delete files agrees with the fast path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.tables.iceberg import IcebergTable, _IcebergFilePart
from lakefeed.testing import assert_tables_equal


@pytest.fixture
def table(warehouse: lf.Warehouse) -> IcebergTable:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    data = pa.table(
        {
            "id": pa.array(range(500), pa.int64()),
            "v": [None if i % 9 == 0 else i * 0.5 for i in range(500)],
            "s": [f"s{i % 7}" for i in range(500)],
            "ts": pa.array([start + timedelta(hours=i) for i in range(500)], pa.timestamp("us", tz="UTC")),
        }
    )
    t = warehouse.create_table("r.t", data, partition_by=["s"])
    t.append(data.slice(0, 50))
    return t


@pytest.mark.parametrize(
    "expr",
    [
        None,
        lf.col("v") > 100.0,
        (lf.col("s") == "s3") | lf.col("v").is_null(),
        lf.col("ts") >= datetime(2024, 1, 10, tzinfo=UTC),
    ],
    ids=str,
)
def test_pyiceberg_path_equals_fast_path(table: IcebergTable, expr: lf.Expr | None) -> None:
    scan = table.scan(columns=["id", "s", "ts"], filter=expr)
    assert table.snapshot_id is not None
    ice = table.pyiceberg_table
    schema = ice.schema()
    slow_parts = [_IcebergFilePart(table, task, table.snapshot_id, schema) for task in ice.scan().plan_files()]
    slow = pa.Table.from_batches([b for part in slow_parts for b in part.read(scan.plan)], schema=scan.schema)
    assert_tables_equal(slow, scan.to_arrow())
    assert all(not p.exact_rows for p in slow_parts)


def test_pyiceberg_path_keeps_row_counts_without_columns(table: IcebergTable) -> None:
    scan = table.scan(columns=[])
    ice = table.pyiceberg_table
    assert table.snapshot_id is not None
    parts = [_IcebergFilePart(table, task, table.snapshot_id, ice.schema()) for task in ice.scan().plan_files()]
    assert sum(b.num_rows for part in parts for b in part.read(scan.plan)) == 550


def test_timestamp_with_time_zone_filters(table: IcebergTable) -> None:
    cut = datetime(2024, 1, 5, tzinfo=UTC)
    assert table.scan(filter=lf.col("ts") < cut).count() == 4 * 24 + 50
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_renamed_and_added_columns_are_read_by_field_id(table: IcebergTable) -> None:
    ice = table.pyiceberg_table
    with ice.update_schema() as update:
        update.rename_column("v", "value")
        update.add_column("extra", lf_long())
    table.refresh()
    result = table.scan(columns=["id", "value", "extra"], filter=lf.col("value") > 240.0).to_arrow()
    assert result.schema.names == ["id", "value", "extra"]
    assert sorted(result.column("id").to_pylist()) == [
        481,
        482,
        483,
        484,
        485,
        487,
        488,
        489,
        490,
        491,
        492,
        493,
        494,
        496,
        497,
        498,
        499,
    ]
    assert result.column("extra").null_count == result.num_rows


def lf_long() -> object:
    from pyiceberg.types import LongType

    return LongType()


def test_exact_filter_keeps_passing_batches_uncopied_and_takes_the_rest() -> None:
    from lakefeed.expr import to_pyarrow
    from lakefeed.tables.base import ReadPlan

    # "__row" and "_row" are real columns here: the filter's row number must not take their place
    batch = pa.record_batch({"__row": [5, 1, 7, None], "_row": ["a", "b", "c", "d"], "x": [0.5, 1.5, 2.5, 3.5]})
    expr = lf.col("__row") >= 1

    def plan(e: lf.Expr) -> ReadPlan:
        return ReadPlan("t", batch.schema, batch.schema, e, to_pyarrow(e, batch.schema))

    every = plan(lf.col("x") > 0).finish(batch, filtered=False)
    assert every is batch  # nothing dropped: the batch itself, not a copy
    some = plan(expr).finish(batch, filtered=False)
    assert some.to_pydict() == {"__row": [5, 1, 7], "_row": ["a", "b", "c"], "x": [0.5, 1.5, 2.5]}
    none = plan(lf.col("x") > 9).finish(batch, filtered=False)
    assert none.num_rows == 0
    assert none.schema == batch.schema
