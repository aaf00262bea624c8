"""File skipping from statistics never loses a row; on Delta it skips files that cannot match."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakefeed as lf
from lakefeed.expr import to_pyarrow
from lakefeed.tables.pruning import ColumnStats, all_match, dataset_filter, may_match
from lakefeed.testing import filters
from tests.property.edge_literals import EDGE_DATA, EDGE_SCHEMA, edge_filters
from tests.reference import python_filter_ids, reference_filter

SCHEMA = pa.schema([("i", pa.int64()), ("f", pa.float64()), ("d", pa.date32())])


@st.composite
def chunks(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 12))
    ints = st.one_of(st.none(), st.integers(-50, 150))
    floats = st.one_of(st.none(), st.floats(-50, 150, allow_nan=False))
    dates = st.one_of(st.none(), st.integers(-30, 60).map(lambda k: date(2024, 1, 1) + timedelta(days=k)))
    return pa.table(
        {
            "i": pa.array(draw(st.lists(ints, min_size=n, max_size=n)), pa.int64()),
            "f": pa.array(draw(st.lists(floats, min_size=n, max_size=n)), pa.float64()),
            "d": pa.array(draw(st.lists(dates, min_size=n, max_size=n)), pa.date32()),
        }
    )


def _stats(chunk: pa.Table) -> dict[str, ColumnStats]:
    out = {}
    for name in chunk.column_names:
        column = chunk.column(name)
        mm = pc.min_max(column).as_py()
        out[name] = ColumnStats(mm["min"], mm["max"], column.null_count)
    return out


@settings(max_examples=300, deadline=None)
@given(chunk=chunks(), expr=filters(SCHEMA))
def test_a_skipped_chunk_has_no_matching_row(chunk: pa.Table, expr: lf.Expr) -> None:
    if not may_match(expr, _stats(chunk), chunk.num_rows, SCHEMA):
        assert reference_filter(chunk, expr).num_rows == 0


@pytest.mark.delta
def test_delta_skips_files_by_their_statistics(tmp_path: Path) -> None:
    first = pa.table({"id": pa.array(range(0, 100), pa.int64()), "v": [float(i) for i in range(100)]})
    table = lf.create_table(f"delta://{tmp_path}/t", first)
    for k in (1, 2, 3):
        table.append(pa.table({"id": pa.array(range(k * 100, k * 100 + 100), pa.int64()), "v": [1.0] * 100}))
    every = {p.path for p in table.scan().parts()}
    picked = {p.path for p in table.scan(filter=(lf.col("id") >= 210) & (lf.col("id") < 230)).parts()}
    assert len(every) == 4
    assert len(picked) == 1
    assert table.scan(filter=(lf.col("id") >= 210) & (lf.col("id") < 230)).count() == 20
    assert len({p.path for p in table.scan(filter=lf.col("id") > 10_000).parts()}) == 0
    assert len({p.path for p in table.scan(filter=~(lf.col("id") > 10_000)).parts()}) == 4


@st.composite
def edge_chunks(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.lists(st.integers(0, EDGE_DATA.num_rows - 1), min_size=1, max_size=6))
    return EDGE_DATA.take(pa.array(rows, pa.int64()))


def _nan_blind_stats(chunk: pa.Table) -> dict[str, ColumnStats]:
    """Statistics as Parquet and Delta keep them: min/max leave NaN out (none when all NaN)."""
    out = {}
    for name in ("i", "j", "f", "g"):
        column = chunk.column(name)
        values = [v for v in column.to_pylist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
        low, high = (min(values), max(values)) if values else (None, None)
        out[name] = ColumnStats(low, high, column.null_count)
    return out


@settings(max_examples=400, deadline=None)
@given(chunk=edge_chunks(), expr=edge_filters())
def test_skipping_by_nan_blind_statistics_loses_no_row(chunk: pa.Table, expr: lf.Expr) -> None:
    """NaN, float32 columns, fractional and out-of-range literals on integer columns."""
    if not may_match(expr, _nan_blind_stats(chunk), chunk.num_rows, EDGE_SCHEMA):
        assert python_filter_ids(chunk, expr) == []


@settings(max_examples=200, deadline=None)
@given(chunk=edge_chunks(), expr=edge_filters())
def test_pyarrow_row_group_pruning_keeps_every_row_the_exact_filter_keeps(chunk: pa.Table, expr: lf.Expr) -> None:
    """``pyarrow.dataset`` trusts NaN-blind row-group statistics; what lakefeed hands it loses no row."""
    import tempfile

    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    exact = to_pyarrow(expr, EDGE_SCHEMA)
    pushed = dataset_filter(expr, EDGE_SCHEMA)
    with tempfile.TemporaryDirectory() as root:
        pq.write_table(chunk, f"{root}/a.parquet", row_group_size=2)
        read = ds.dataset(f"{root}/a.parquet").to_table(filter=exact if pushed is None else pushed)
    assert sorted(int(v) for v in read.filter(exact).column("id").to_pylist()) == python_filter_ids(chunk, expr)


@settings(max_examples=300, deadline=None)
@given(chunk=chunks(), expr=filters(SCHEMA))
def test_a_chunk_read_without_its_filter_has_only_matching_rows(chunk: pa.Table, expr: lf.Expr) -> None:
    if all_match(expr, _stats(chunk), chunk.num_rows, SCHEMA):
        assert reference_filter(chunk, expr).num_rows == chunk.num_rows


@settings(max_examples=400, deadline=None)
@given(chunk=edge_chunks(), expr=edge_filters())
def test_a_chunk_read_without_its_filter_by_nan_blind_statistics_has_only_matching_rows(
    chunk: pa.Table, expr: lf.Expr
) -> None:
    """NaN, float32 columns, fractional and out-of-range literals on integer columns."""
    if all_match(expr, _nan_blind_stats(chunk), chunk.num_rows, EDGE_SCHEMA):
        assert len(python_filter_ids(chunk, expr)) == chunk.num_rows


def test_all_match_is_certain_only_where_the_statistics_prove_it() -> None:
    from lakefeed.expr import col

    stats = {"i": ColumnStats(10, 20, 0), "d": ColumnStats(date(2024, 1, 1), date(2024, 2, 1), 0)}
    proven = [
        col("i") >= 10,
        (col("i") > 9) & (col("i") <= 20),
        col("i").between(0, 20),
        col("i") != 21,
        col("i").isin([5, 10]) | (col("i") < 100),
        ~col("i").is_null(),
        col("d") >= date(2024, 1, 1),
    ]
    unproven = [
        col("i") > 10,
        col("i") == 10,
        col("i").isin([10, 20]),
        col("f") >= 0,  # a float: NaN is not in its statistics
        col("i").is_null(),
        (col("i") >= 10) & (col("f") >= 0),
    ]
    assert all(all_match(e, stats, 5, SCHEMA) for e in proven)
    assert not any(all_match(e, stats, 5, SCHEMA) for e in unproven)
    with_nulls = {"i": ColumnStats(10, 20, 1)}
    assert not all_match(col("i") >= 0, with_nulls, 5, SCHEMA)  # a null row fails every comparison


def test_row_groups_every_row_of_which_passes_are_read_without_the_filter(tmp_path: Path) -> None:
    import numpy as np

    from lakefeed.expr import col

    data = pa.table({"i": np.arange(10_000, dtype=np.int64), "f": np.arange(10_000, dtype=np.float64)})
    table = lf.Warehouse(tmp_path).create_table("p.rg", data)
    with table.pyiceberg_table.transaction() as tx:  # small row groups: 10 of 1,000 rows
        tx.set_properties({"write.parquet.row-group-limit": "1000"})
    table.refresh()
    table.overwrite(data)
    expr = (col("i") >= 2_000) & (col("i") < 7_500)
    scan = table.scan(filter=expr)
    parts = scan._plan_parts(scan.plan)
    flags = sorted((p.row_groups, p.proven is not None) for p in parts)  # type: ignore[attr-defined]
    assert [f for _, f in flags].count(True) == 5  # row groups 2-6: every row passes
    got = scan.to_arrow().column("i").to_pylist()
    assert got == list(range(2_000, 7_500))
