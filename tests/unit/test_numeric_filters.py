"""Regression cases for numeric filters: NaN under negation, float32 literals, fractional and huge
literals on integer columns, decimals at other scales, and exact Iceberg deletes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakefeed as lf
from lakefeed.errors import ConfigError, FilterTypeError, UnsupportedOperationError
from lakefeed.expr import Expr, to_pyarrow
from lakefeed.expr_literals import normalize_literals
from lakefeed.tables.iceberg_filter import to_iceberg_filter
from tests.reference import python_filter_ids

NAN = float("nan")
FORMATS = ["parquet", "iceberg", pytest.param("delta", marks=pytest.mark.delta)]


def _table(kind: str, root: Path, data: pa.Table) -> lf.Table:
    if kind == "parquet":
        pq.write_table(data, root / "a.parquet")
        return lf.open_table(f"parquet://{root}")
    if kind == "iceberg":
        return lf.Warehouse(root / "home").create_table("ns.t", data)
    return lf.create_table(f"delta://{root}/t", data)


def _read(table: lf.Table, expr: lf.Expr, column: str) -> tuple[list[object], list[object]]:
    scan = table.scan(columns=[column], filter=expr)
    batches = [v for b in scan.to_batches() for v in b.column(column).to_pylist()]
    return scan.to_arrow().column(column).to_pylist(), batches


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(
    "expr",
    [
        lf.col("f") != 2.0,
        ~(lf.col("f") == 2.0),
        ~lf.col("f").isin([2.0]),
        ~lf.col("f").between(0.0, 3.0),
        ~(lf.col("f") <= 2.0),
        (lf.col("f") != 2.0) & (lf.col("x") > 0),
    ],
    ids=str,
)
def test_nan_rows_survive_row_group_pruning(kind: str, tmp_path: Path, expr: lf.Expr) -> None:
    table = _table(kind, tmp_path, pa.table({"x": [1, 2], "f": [2.0, NAN]}))
    for got in _read(table, expr, "x"):
        assert got == [2]


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(
    "expr",
    [lf.col("f") == 0.1, lf.col("f") <= 0.1, lf.col("f").isin([0.1]), lf.col("f").between(0.05, 0.1)],
    ids=str,
)
def test_float32_columns_compare_with_float32_literals(kind: str, tmp_path: Path, expr: lf.Expr) -> None:
    table = _table(kind, tmp_path, pa.table({"x": [1, 2], "f": pa.array([0.1, 0.5], pa.float32())}))
    for got in _read(table, expr, "x"):
        assert got == [1]


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (lf.col("i") <= 6.5, [1, 2]),
        (lf.col("i") < 1e10, [1, 2]),
        (lf.col("i") == 6.5, []),
        (lf.col("i") != 6.5, [1, 2, 3]),
        (~(lf.col("i") != 6.5), []),
        (lf.col("i") > float(2**53), [3]),
        (lf.col("i").isin([3, 2.5]), [2]),
        (lf.col("i").isin([2**53, 2**64]), []),
        (lf.col("i") == 2**63, []),
        (lf.col("i") > -(2**70), [1, 2, 3]),
        (lf.col("i") != NAN, [1, 2, 3]),
        (lf.col("i").between(Decimal("2.5"), 3.0), [2]),
    ],
    ids=str,
)
def test_integer_columns_compare_with_any_number_exactly(
    kind: str, tmp_path: Path, expr: lf.Expr, expected: list[int]
) -> None:
    data = pa.table({"x": [1, 2, 3, 4], "i": pa.array([-(2**31), 3, 2**53 + 1, None], pa.int64())})
    table = _table(kind, tmp_path, data)
    for got in _read(table, expr, "x"):
        assert sorted(got) == expected  # type: ignore[type-var]


def test_unsigned_and_out_of_range_literals() -> None:
    data = pa.table({"u": pa.array([1, 2**63 + 5, None], pa.uint64())})
    assert data.filter(to_pyarrow(lf.col("u") > -1, data.schema)).column("u").to_pylist() == [1, 2**63 + 5]
    assert data.filter(to_pyarrow(~(lf.col("u") < 2**64), data.schema)).num_rows == 0


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (lf.col("p") > 2, [Decimal("2.25")]),
        (lf.col("p") > Decimal("2"), [Decimal("2.25")]),
        (lf.col("p") >= Decimal("2.250"), [Decimal("2.25")]),
        (lf.col("p") == Decimal("1.5"), [Decimal("1.50")]),
        (lf.col("p") < 2.0, [Decimal("1.50")]),
        (lf.col("p").isin([1, Decimal("2.25")]), [Decimal("2.25")]),
        (lf.col("p") > Decimal("1.005"), [Decimal("1.50"), Decimal("2.25")]),
        (lf.col("p") == Decimal("1.505"), []),
        (lf.col("p") < Decimal("1e20"), [Decimal("1.50"), Decimal("2.25")]),
    ],
    ids=str,
)
def test_iceberg_filters_on_decimal_columns(tmp_path: Path, expr: lf.Expr, expected: list[Decimal]) -> None:
    data = pa.table({"p": pa.array([Decimal("1.50"), Decimal("2.25"), None], pa.decimal128(10, 2))})
    table = _table("iceberg", tmp_path, data)
    assert table.scan(filter=expr).to_arrow().column("p").to_pylist() == expected
    assert data.filter(to_pyarrow(expr, data.schema)).column("p").to_pylist() == expected


def test_decimal_literals_are_quantized_to_the_column_scale() -> None:
    schema = pa.schema([("p", pa.decimal128(10, 2))])
    assert str(normalize_literals(lf.col("p") > Decimal("1.005"), schema)) == "(p >= 1.01)"
    assert str(normalize_literals(lf.col("p") == Decimal("1.005"), schema)) == "(p IN ())"
    assert str(normalize_literals(lf.col("p") <= 3, schema)) == "(p <= 3.00)"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (lf.col("f") == NAN, []),
        (lf.col("f") != NAN, [1.0, "nan"]),
        (lf.col("f").isin([NAN]), ["nan"]),
        (~lf.col("f").isin([NAN, 1.0]), []),
    ],
    ids=str,
)
def test_iceberg_filters_with_a_nan_literal(tmp_path: Path, expr: lf.Expr, expected: list[object]) -> None:
    table = _table("iceberg", tmp_path, pa.table({"f": [1.0, NAN, None]}))
    got = table.scan(filter=expr).to_arrow().column("f").to_pylist()
    assert [("nan" if v != v else v) for v in got] == expected


DELETE_DATA = pa.table(
    {"x": pa.array([1, 2, None, 4], pa.int64()), "f": [1.0, NAN, None, 3.0], "g": [0.0, -0.0, NAN, 2.0]}
)


@pytest.mark.parametrize(
    "expr",
    [
        lf.col("f") != 1.0,
        ~(lf.col("f") < 2.0),
        ~lf.col("f").isin([1.0]),
        lf.col("f").isin([NAN]),
        lf.col("f") != NAN,
        lf.col("f").is_null() | (lf.col("x") > 3),
        (lf.col("x") > 1) & ~(lf.col("f") > 2.0),
        lf.col("g").isin([0.0, 7.0]),
        ~lf.col("g").isin([0.0, 7.0]),
        lf.col("x") <= 1.5,
    ],
    ids=str,
)
def test_iceberg_delete_removes_exactly_the_filters_rows(tmp_path: Path, expr: lf.Expr) -> None:
    table = _table("iceberg", tmp_path, DELETE_DATA)
    table.delete(expr)
    keep = DELETE_DATA.append_column("n", pa.array(range(4)))
    deleted = set(keep.filter(to_pyarrow(expr, keep.schema)).column("n").to_pylist())
    left = table.scan().to_arrow().to_pylist()
    assert repr(left) == repr([r for k, r in enumerate(DELETE_DATA.to_pylist()) if k not in deleted])


def test_iceberg_overwrite_replaces_exactly_the_filters_rows(tmp_path: Path) -> None:
    table = _table("iceberg", tmp_path, DELETE_DATA)
    table.overwrite(pa.table({"x": pa.array([9], pa.int64()), "f": [9.0], "g": [9.0]}), lf.col("f") != 1.0)
    assert sorted(table.scan(columns=["x"]).to_arrow().column("x").to_pylist(), key=str) == [1, 9, None]


def test_iceberg_write_filter_with_a_float_on_a_decimal_column_is_refused() -> None:
    schema = pa.schema([("p", pa.decimal128(10, 2))])
    with pytest.raises(FilterTypeError, match="use a Decimal literal"):
        to_iceberg_filter(lf.col("p") > 1.5, schema, exact=True)
    assert str(to_iceberg_filter(lf.col("p") > 1.5, schema)) == "AlwaysTrue()"


# -- Iceberg translation errors name the column -------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class _Custom(Expr):
    """A filter node lakefeed does not know (someone's own ``Expr`` subclass)."""

    column: str


@dataclass(frozen=True, eq=False, repr=False)
class _Constant(Expr):
    """An unknown filter node with no column."""


WRITE_FIELDS: list[tuple[str, pa.DataType]] = [
    ("price", pa.decimal128(10, 2)),
    ("seen_at", pa.timestamp("us")),
    ("paid_at", pa.timestamp("us", tz="UTC")),
    ("payload", pa.binary()),
    ("label", pa.string()),
]
WRITE_SCHEMA = pa.schema(WRITE_FIELDS)


@pytest.mark.parametrize(
    ("expr", "error", "column", "fix"),
    [
        (lf.col("price") > 1.5, FilterTypeError, "price", "use a Decimal literal such as Decimal('1.5')"),
        (lf.col("seen_at") >= datetime(2026, 1, 1, tzinfo=UTC), FilterTypeError, "seen_at", "naive datetime"),
        (lf.col("paid_at") < datetime(2026, 1, 1), FilterTypeError, "paid_at", "aware datetime"),
        (lf.col("payload") == b"x", UnsupportedOperationError, "payload", "select the rows by other columns"),
        (lf.col("payload").isin([b"x", b"y"]), UnsupportedOperationError, "payload", "by other columns"),
        (lf.col("label").is_null() | _Custom("label"), ConfigError, "label", "build filters from lf.col(...)"),
    ],
)
def test_iceberg_write_filter_errors_name_the_column(
    expr: lf.Expr, error: type[Exception], column: str, fix: str
) -> None:
    with pytest.raises(error) as info:
        to_iceberg_filter(expr, WRITE_SCHEMA, exact=True)
    message = str(info.value)
    assert f"column {column!r}" in message
    assert fix in message


def test_an_unknown_filter_node_is_refused_by_name_in_reads_too() -> None:
    with pytest.raises(ConfigError, match=r"filter node _Custom \(on column 'label'\)"):
        to_iceberg_filter(_Custom("label") & (lf.col("price") > 1), WRITE_SCHEMA)
    with pytest.raises(ConfigError, match=r"filter node _Constant \(naming no column\)"):  # not a RecursionError
        to_iceberg_filter(_Constant(), WRITE_SCHEMA, exact=True)


def test_an_unknown_filter_node_is_refused_by_name_in_sql_and_arrow() -> None:
    from lakefeed.errors import FilterError

    for node in (_Custom("label"), _Constant()):
        with pytest.raises(FilterError, match=f"unknown filter node {type(node).__name__}"):  # not a RecursionError
            str(node)
        with pytest.raises(FilterError, match=f"unknown filter node {type(node).__name__}"):
            to_pyarrow(node, WRITE_SCHEMA)


def test_an_iceberg_delete_by_a_binary_column_names_it(tmp_path: Path) -> None:
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "payload": pa.array([b"x", b"y"], pa.binary())})
    table = lf.Warehouse(tmp_path / "home").create_table("ns.blobs", data)
    with pytest.raises(UnsupportedOperationError, match=r"column 'payload' \(binary\)"):
        table.delete(lf.col("payload") == b"x")
    assert table.scan().count() == 2  # nothing deleted


# -- infinities on float32 columns -----------------------------------------------------------------

INF = float("inf")
F32_MAX = 3.4028234663852886e38  # the largest finite float32
INFINITIES = pa.table(
    {"id": list(range(9)), "g": pa.array([1.0, INF, -INF, NAN, None, F32_MAX, -F32_MAX, -2.5, INF], pa.float32())}
)


def _infinity_filters() -> list[lf.Expr]:
    g = lf.col("g")
    out: list[lf.Expr] = []
    for v in (INF, -INF, 1e40, -1e40, F32_MAX):  # 1e40 rounds to the float32 +inf
        out += [g == v, g != v, g < v, g <= v, g > v, g >= v, ~(g == v), ~(g <= v)]
    return [*out, g.isin([INF]), g.isin([-INF, 1.0]), ~g.isin([INF, 1.0]), g.between(-INF, 0.0), ~g.between(0.0, INF)]


def _infinity_table(kind: str, root: Path) -> lf.Table:
    """INFINITIES in three files of three rows: file and row-group statistics can prune."""
    chunks = [INFINITIES.slice(k, 3) for k in range(0, INFINITIES.num_rows, 3)]
    if kind == "parquet":
        for k, chunk in enumerate(chunks):
            pq.write_table(chunk, root / f"part-{k}.parquet")
        return lf.open_table(f"parquet://{root}")
    table = _table(kind, root, chunks[0])
    for chunk in chunks[1:]:
        table.append(chunk)
    return table


@pytest.mark.parametrize("kind", FORMATS)
def test_infinite_literals_on_float32_columns_lose_no_row(kind: str, tmp_path: Path) -> None:
    # pyiceberg binds an infinite literal to a float column as "beyond the type's range":
    # g == inf would prune every file, though a float32 column holds infinities
    table = _infinity_table(kind, tmp_path)
    for expr in _infinity_filters():
        got = sorted(table.scan(columns=["id"], filter=expr).to_arrow().column("id").to_pylist())
        assert got == python_filter_ids(INFINITIES, expr), str(expr)


@pytest.mark.parametrize("expr", _infinity_filters(), ids=str)
def test_iceberg_delete_with_an_infinite_literal_on_a_float32_column(tmp_path: Path, expr: lf.Expr) -> None:
    table = _infinity_table("iceberg", tmp_path)
    table.delete(expr)
    gone = set(python_filter_ids(INFINITIES, expr))
    left = sorted(table.scan(columns=["id"]).to_arrow().column("id").to_pylist())
    assert left == [i for i in range(INFINITIES.num_rows) if i not in gone]
