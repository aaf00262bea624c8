"""File skipping from statistics never loses a row; on Delta it skips files that cannot match."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakefeed as lf
from lakefeed.tables.pruning import ColumnStats, may_match
from lakefeed.testing import filters
from tests.reference import reference_filter

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
