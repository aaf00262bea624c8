"""Hypothesis-generated filters: every format returns exactly the pandas reference's rows."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings

import lakefeed as lf
from lakefeed.testing import assert_tables_equal, filters
from tests.conftest import DATA
from tests.reference import reference_filter

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
