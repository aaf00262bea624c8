"""Filter expressions: building, printing, validation and translations."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, FilterError, FilterTypeError
from lakefeed.expr import columns_of, negation_normal_form, parse_filter, to_sql, validate

SCHEMA = pa.schema([("a", pa.int64()), ("s", pa.string()), ("f", pa.float32()), ("d", pa.date32()), ("b", pa.bool_())])


def test_printing_and_sql() -> None:
    f = (lf.col("a") > 3) & ~lf.col("s").isin(["x", "it's"])
    assert str(f) == "((a > 3) & ~(s IN ('x', 'it''s')))"
    assert to_sql(f) == "((\"a\" > 3) AND (NOT (\"s\" IN ('x', 'it''s'))))"
    assert to_sql(lf.col("d") == date(2024, 1, 2)) == "(\"d\" = DATE '2024-01-02')"
    assert to_sql(lf.col("t") < datetime(2024, 1, 2, 3)) == "(\"t\" < TIMESTAMP '2024-01-02 03:00:00')"
    assert to_sql(lf.col("x") == Decimal("1.50")) == '("x" = 1.50)'


def test_filters_have_no_truth_value() -> None:
    with pytest.raises(FilterError, match="no truth value"):
        bool(lf.col("a") > 1)
    with pytest.raises(FilterError, match="between"):
        _ = 1 < lf.col("a") < 3  # chained comparison calls bool()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: lf.col("a") == None, "is_null"),  # noqa: E711
        (lambda: lf.col("a") > object(), "not a filter literal"),
        (lambda: lf.col("a") > lf.col("b"), "two columns"),
        (lambda: lf.col("a").isin("xy"), "takes a list"),
        (lambda: (lf.col("a") > 1) & True, "both sides must be filters"),
        (lambda: lf.col(""), "non-empty"),
    ],
)
def test_bad_filters_are_explained(build: object, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        build()  # type: ignore[operator]


def test_validate_names_missing_column_and_bad_types() -> None:
    with pytest.raises(ColumnNotFoundError, match="no column 'zz'; columns are"):
        validate(lf.col("zz") > 1, SCHEMA)
    with pytest.raises(FilterTypeError, match="column 's' is string, cannot compare it with int 3"):
        validate(lf.col("s") == 3, SCHEMA)
    with pytest.raises(FilterTypeError, match="'b' is bool"):
        validate(lf.col("b") == 1, SCHEMA)
    with pytest.raises(FilterTypeError):
        validate(lf.col("a") == True, SCHEMA)  # noqa: E712
    validate((lf.col("a") > 1.5) & (lf.col("f") < 2) & lf.col("d").between(date(2024, 1, 1), date(2024, 2, 1)), SCHEMA)


def test_columns_of_and_nnf() -> None:
    f = ~((lf.col("a") > 1) | lf.col("s").is_null()) & lf.col("a").between(0, 9)
    assert columns_of(f) == ["a", "s"]
    assert str(negation_normal_form(f)) == "(((a <= 1) & ~(s IS NULL)) & (a BETWEEN 0 AND 9))"
    assert str(negation_normal_form(~(lf.col("f") > 1), nan_columns=["f"])) == "~(f > 1)"


def test_int_literal_beyond_column_width_compares_correctly() -> None:
    from lakefeed.expr import to_pyarrow

    t = pa.table({"x": pa.array([1, 100], pa.int8())})
    assert t.filter(to_pyarrow(lf.col("x") < 1000, t.schema)).num_rows == 2
    assert t.filter(to_pyarrow(lf.col("x") > 1.5, t.schema)).num_rows == 1


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("a > 3", "(a > 3)"),
        ("3 < a", "(a > 3)"),
        ("1 < a <= 3", "((a > 1) & (a <= 3))"),
        ("s in ('x', 'y') or s is None", "((s IN ('x', 'y')) | (s IS NULL))"),
        ("not (a == -2) and s not in ['q']", "(~(a == -2) & ~(s IN ('q')))"),
        ("between(a, 1, 2) and d >= date('2024-01-31')", "((a BETWEEN 1 AND 2) & (d >= DATE '2024-01-31'))"),
        ("s is not None", "~(s IS NULL)"),
    ],
)
def test_parse_filter(text: str, printed: str) -> None:
    assert str(parse_filter(text)) == printed


@pytest.mark.parametrize("text", ["a +", "__import__('os').system('x')", "a > b", "f(a)", "a in x", "a is 3", "a @ 3"])
def test_parse_filter_rejects(text: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(text)
