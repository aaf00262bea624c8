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
from lakefeed.tables.pruning import ColumnStats, dataset_filter, may_match
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
