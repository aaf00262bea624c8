"""Hypothesis-generated filters: every format returns exactly the reference's rows.

The reference is pandas for the shared data set, plain Python comparisons for numeric edge cases.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

import lakefeed as lf
from lakefeed.errors import FilterTypeError
from lakefeed.testing import assert_tables_equal, filters
from tests.conftest import DATA, table_of_files
from tests.property.edge_literals import EDGE_DATA, EDGE_SCHEMA, edge_filters
from tests.reference import python_filter_ids, reference_filter

SAMPLE = {name: DATA.column(name).to_pylist()[:40] for name in DATA.column_names}
FILTER_SCHEMA = DATA.schema


def _values(table: pa.Table) -> pa.Table:
    return pa.table({n: table.column(n).to_pylist() for n in table.column_names})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=filters(FILTER_SCHEMA, SAMPLE))
def test_generated_filters_match_pandas(any_table: lf.Table, expr: lf.Expr) -> None:
    result = any_table.scan(columns=["id", "i", "s"], filter=expr).to_arrow()
    expected = reference_filter(DATA, expr).select(["id", "i", "s"])
    assert_tables_equal(_values(result), _values(expected))


@settings(max_examples=60, deadline=None)
@given(expr=filters(FILTER_SCHEMA, SAMPLE))
def test_pyarrow_translation_matches_pandas(expr: lf.Expr) -> None:
    from lakefeed.expr import to_pyarrow

    got = DATA.filter(to_pyarrow(expr, DATA.schema))
    assert_tables_equal(_values(got), _values(reference_filter(DATA, expr)))


@settings(max_examples=60, deadline=None)
@given(expr=filters(FILTER_SCHEMA, SAMPLE))
def test_sql_translation_matches_pandas(expr: lf.Expr) -> None:
    import duckdb

    from lakefeed.expr import to_sql

    con = duckdb.connect()
    con.register("data", DATA)
    got = con.sql(f"SELECT * FROM data WHERE {to_sql(expr)}").to_arrow_table()
    assert_tables_equal(_values(got), _values(reference_filter(DATA, expr)))


# -- numeric edge cases: NaN, float32, fractional and huge literals, decimals ------------------

EDGE_KINDS = [
    pytest.param("parquet", id="parquet"),
    pytest.param("iceberg", id="iceberg"),
    pytest.param("delta", marks=pytest.mark.delta, id="delta"),
    pytest.param("paimon", marks=pytest.mark.paimon, id="paimon"),
]


def _edge_table(kind: str, root: Path, data: pa.Table) -> lf.Table:
    """``data`` in small files and row groups, so row-group and file statistics can prune."""
    chunks = [data.slice(k, 8) for k in range(0, data.num_rows, 8)]
    if kind == "parquet":
        for k, chunk in enumerate(chunks):
            pq.write_table(chunk, root / f"part-{k}.parquet", row_group_size=3)
        return lf.open_table(f"parquet://{root}")
    if kind == "iceberg":
        wh = lf.Warehouse(root / "home")
        return table_of_files(wh, "ns.edge", chunks, row_group_rows=3)
    location = f"delta://{root}/t" if kind == "delta" else f"paimon://{root}/paimon/db.edge"
    table = lf.create_table(location, chunks[0])
    for chunk in chunks[1:]:
        table.append(chunk)
    return table


@pytest.fixture(scope="module", params=EDGE_KINDS)
def edge_table(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    return _edge_table(request.param, tmp_path_factory.mktemp(f"edge-{request.param}"), EDGE_DATA)


@settings(max_examples=150, deadline=None)
@given(expr=edge_filters())
def test_exact_filter_matches_python_comparisons(expr: lf.Expr) -> None:
    """The exact filter compares numbers as numbers: ``i <= 6.5``, ``i > 2.0**53``, ``j == 2**63``, NaN."""
    from lakefeed.expr import to_pyarrow

    got = sorted(int(v) for v in EDGE_DATA.filter(to_pyarrow(expr, EDGE_SCHEMA)).column("id").to_pylist())
    assert got == python_filter_ids(EDGE_DATA, expr)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=edge_filters())
def test_every_format_returns_the_exact_filters_rows(edge_table: lf.Table, expr: lf.Expr) -> None:
    """Pruning (row-group statistics, file statistics, Iceberg metrics) never loses a row the exact filter keeps."""
    expected = python_filter_ids(EDGE_DATA, expr)
    scan = edge_table.scan(columns=["id"], filter=expr)
    assert sorted(int(v) for v in scan.to_arrow().column("id").to_pylist()) == expected
    assert sorted(int(v) for b in scan.to_batches() for v in b.column("id").to_pylist()) == expected


@pytest.mark.parametrize(
    "kind", [pytest.param("iceberg", id="iceberg"), pytest.param("delta", marks=pytest.mark.delta, id="delta")]
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=edge_filters(("i", "f", "g", "p")))
def test_delete_removes_exactly_the_exact_filters_rows(
    kind: str, tmp_path_factory: pytest.TempPathFactory, expr: lf.Expr
) -> None:
    table = _edge_table(kind, tmp_path_factory.mktemp("edge-delete"), EDGE_DATA)
    try:
        table.delete(expr)
    except FilterTypeError:
        return  # a float literal on a decimal column has no exact Iceberg form: refused, nothing deleted
    gone = set(python_filter_ids(EDGE_DATA, expr))
    left = sorted(int(v) for v in table.scan(columns=["id"]).to_arrow().column("id").to_pylist())
    assert left == [i for i in range(EDGE_DATA.num_rows) if i not in gone]
