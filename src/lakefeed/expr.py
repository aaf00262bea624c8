"""Filter expressions: ``lf.col("a") > 3`` and their translations.

An expression is an immutable tree of :class:`Expr` nodes. Semantics are SQL's three-valued
logic, the same as Iceberg, Delta, DuckDB and Arrow: a comparison with a null is null, a row
is kept only where the filter is *true*, ``~`` of null is null. ``NaN`` is a value, not a null.

Translations live next to the code that needs them: :func:`to_pyarrow` (the exact filter
lakefeed applies to every batch) and :func:`to_sql` here; the Iceberg and Paimon pushdowns in
``lakefeed.tables``. Pushdowns only prune; the exact filter is always applied after them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from lakefeed.errors import ColumnNotFoundError, FilterError, FilterTypeError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

from lakefeed._typing import Scalar

__all__ = [
    "And",
    "Between",
    "Column",
    "Compare",
    "CompareOp",
    "Expr",
    "IsIn",
    "IsNull",
    "Not",
    "Or",
    "col",
    "columns_of",
    "conjuncts",
    "negation_normal_form",
    "parse_filter",
    "to_pyarrow",
    "to_sql",
    "validate",
]

CompareOp: TypeAlias = Literal["==", "!=", "<", "<=", ">", ">="]
_NEGATE: dict[CompareOp, CompareOp] = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_SCALAR_TYPES = (bool, int, float, str, bytes, Decimal, date, datetime)


def _check_scalar(value: object, where: str) -> Scalar:
    if value is None:
        msg = f"{where}: comparing with None is never true in SQL semantics; use .is_null() or ~col(...).is_null()"
        raise FilterError(msg)
    if not isinstance(value, _SCALAR_TYPES):
        msg = (
            f"{where}: {value!r} ({type(value).__name__}) is not a filter literal; "
            "use a bool, int, float, str, bytes, Decimal, date or datetime"
        )
        raise FilterError(msg)
    return value


class Expr:
    """A boolean filter expression. Combine with ``&``, ``|`` and ``~``.

    Example:
        >>> import lakefeed as lf
        >>> f = (lf.col("a") > 3) & ~lf.col("c").isin(["x", "y"])
        >>> print(f)
        ((a > 3) & ~(c IN ('x', 'y')))
    """

    __slots__ = ()

    def __and__(self, other: object) -> Expr:
        return And(self, _as_expr(other, "&"))

    def __or__(self, other: object) -> Expr:
        return Or(self, _as_expr(other, "|"))

    def __rand__(self, other: object) -> Expr:
        return And(_as_expr(other, "&"), self)

    def __ror__(self, other: object) -> Expr:
        return Or(_as_expr(other, "|"), self)

    def __invert__(self) -> Expr:
        return Not(self)

    def __bool__(self) -> bool:
        msg = (
            f"the filter {self} has no truth value; combine filters with & | ~ "
            "(not and/or/not) and write a < col < b as col.between(a, b)"
        )
        raise FilterError(msg)

    def __str__(self) -> str:
        return to_sql(self, _pretty=True)

    def __repr__(self) -> str:
        return f"<Expr {self}>"


def _as_expr(value: object, op: str) -> Expr:
    if isinstance(value, Expr):
        return value
    msg = f"cannot combine a filter with {value!r} using {op}; both sides must be filters such as lf.col('a') > 1"
    raise FilterError(msg)


@dataclass(frozen=True, eq=False, repr=False)
class Compare(Expr):
    """``column <op> value``."""

    column: str
    op: CompareOp
    value: Scalar


@dataclass(frozen=True, eq=False, repr=False)
class IsIn(Expr):
    """``column IN (values)``."""

    column: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, eq=False, repr=False)
class IsNull(Expr):
    """``column IS NULL``."""

    column: str


@dataclass(frozen=True, eq=False, repr=False)
class Between(Expr):
    """``low <= column <= high`` (both ends inclusive)."""

    column: str
    low: Scalar
    high: Scalar


@dataclass(frozen=True, eq=False, repr=False)
class And(Expr):
    """Both sides true."""

    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Or(Expr):
    """Either side true."""

    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Not(Expr):
    """The operand false (null stays null)."""

    operand: Expr


class Column:
    """A reference to a column, the start of every filter. Build one with :func:`col`.

    Example:
        >>> import lakefeed as lf
        >>> print(lf.col("price").between(1, 10) | lf.col("sku").is_null())
        ((price BETWEEN 1 AND 10) | (sku IS NULL))
    """

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            msg = f"a column name must be a non-empty string, got {name!r}"
            raise FilterError(msg)
        self.name = name

    def _cmp(self, op: CompareOp, value: object) -> Expr:
        if isinstance(value, Column):
            msg = (
                f"comparing two columns ({self.name} {op} {value.name}) is not supported in filters; "
                "compare with a literal"
            )
            raise FilterError(msg)
        return Compare(self.name, op, _check_scalar(value, f"col({self.name!r}) {op} ..."))

    def __eq__(self, value: object) -> Expr:  # type: ignore[override]
        return self._cmp("==", value)

    def __ne__(self, value: object) -> Expr:  # type: ignore[override]
        return self._cmp("!=", value)

    def __lt__(self, value: object) -> Expr:
        return self._cmp("<", value)

    def __le__(self, value: object) -> Expr:
        return self._cmp("<=", value)

    def __gt__(self, value: object) -> Expr:
        return self._cmp(">", value)

    def __ge__(self, value: object) -> Expr:
        return self._cmp(">=", value)

    def isin(self, values: Iterable[object]) -> Expr:
        """``column IN values``; an empty list matches no row."""
        if isinstance(values, (str, bytes)):
            msg = (
                f"col({self.name!r}).isin() takes a list of values, got the string {values!r}; write isin([{values!r}])"
            )
            raise FilterError(msg)
        checked = tuple(_check_scalar(v, f"col({self.name!r}).isin(...)") for v in values)
        return IsIn(self.name, checked)

    def is_null(self) -> Expr:
        """``column IS NULL``; negate with ``~`` for IS NOT NULL."""
        return IsNull(self.name)

    def is_not_null(self) -> Expr:
        """``column IS NOT NULL``."""
        return Not(IsNull(self.name))

    def between(self, low: object, high: object) -> Expr:
        """``low <= column <= high``."""
        where = f"col({self.name!r}).between(...)"
        return Between(self.name, _check_scalar(low, where), _check_scalar(high, where))

    def __repr__(self) -> str:
        return f"col({self.name!r})"


def col(name: str) -> Column:
    """Refer to a column in a filter.

    Args:
        name: The column name.

    Returns:
        A :class:`Column`; compare it or call its methods to build a filter.

    Example:
        >>> import lakefeed as lf
        >>> print((lf.col("a") >= 2) & lf.col("b").is_null())
        ((a >= 2) & (b IS NULL))
    """
    return Column(name)


def _walk(expr: Expr) -> Iterator[Expr]:
    yield expr
    if isinstance(expr, (And, Or)):
        yield from _walk(expr.left)
        yield from _walk(expr.right)
    elif isinstance(expr, Not):
        yield from _walk(expr.operand)


def columns_of(expr: Expr | None) -> list[str]:
    """The column names an expression refers to, in first-seen order.

    Example:
        >>> columns_of((col("b") > 1) | col("a").is_null() | (col("b") < 0))
        ['b', 'a']
    """
    if expr is None:
        return []
    seen: dict[str, None] = {}
    for node in _walk(expr):
        if isinstance(node, (Compare, IsIn, IsNull, Between)):
            seen.setdefault(node.column, None)
    return list(seen)


def conjuncts(expr: Expr | None) -> list[Expr]:
    """Split an AND-chain into its parts.

    Example:
        >>> [str(e) for e in conjuncts((col("a") > 1) & (col("b") < 2))]
        ['(a > 1)', '(b < 2)']
    """
    if expr is None:
        return []
    if isinstance(expr, And):
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


# -- validation -----------------------------------------------------------------------------


def _literal_fits(value: Scalar, arrow_type: pa.DataType) -> bool:
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return isinstance(value, bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return isinstance(value, str)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return isinstance(value, bytes)
    if pa.types.is_timestamp(t):
        return isinstance(value, datetime)
    if pa.types.is_date(t):
        return isinstance(value, date) and not isinstance(value, datetime)
    return False


def validate(expr: Expr, schema: pa.Schema, *, table: str = "the table") -> None:
    """Check that every column exists and every literal fits its column's type.

    Raises:
        ColumnNotFoundError: A column is not in ``schema``.
        FilterTypeError: A literal cannot be compared with its column.

    Example:
        >>> import pyarrow as pa
        >>> validate(col("a") > 1, pa.schema([("a", pa.int64())]))
        >>> validate(col("a") > "x", pa.schema([("a", pa.int64())]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lakefeed.errors.FilterTypeError: filter (a > 'x') on the table: column 'a' is int64, ...
    """
    names = schema.names
    for node in _walk(expr):
        if not isinstance(node, (Compare, IsIn, IsNull, Between)):
            continue
        if node.column not in names:
            msg = f"filter {expr} on {table}: no column {node.column!r}; columns are {names}"
            raise ColumnNotFoundError(msg)
        arrow_type = schema.field(node.column).type
        values: Sequence[Scalar]
        if isinstance(node, Compare):
            values = [node.value]
        elif isinstance(node, IsIn):
            values = node.values
        elif isinstance(node, Between):
            values = [node.low, node.high]
        else:
            values = []
        for value in values:
            if not _literal_fits(value, arrow_type):
                msg = (
                    f"filter {expr} on {table}: column {node.column!r} is {arrow_type}, cannot compare it with "
                    f"{type(value).__name__} {value!r}; use a {_expected_python(arrow_type)} value"
                )
                raise FilterTypeError(msg)


def _expected_python(arrow_type: pa.DataType) -> str:
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "int/float/Decimal"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytes"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "str"
    return f"(no literal type; {t} columns can only be tested with is_null)"


# -- translations ---------------------------------------------------------------------------


def _arrow_scalar(value: Scalar, arrow_type: pa.DataType) -> pa.Scalar[Any]:
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if isinstance(value, float) and (pa.types.is_integer(t) or pa.types.is_decimal(t)):
        return pa.scalar(value, pa.float64())
    if isinstance(value, int) and pa.types.is_integer(t):
        info_ok = _int_fits(value, t)
        return pa.scalar(value, t if info_ok else pa.float64())
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.scalar(value, pa.string())
    try:
        return pa.scalar(value, t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.scalar(value)


def _int_fits(value: int, t: pa.DataType) -> bool:
    bits = t.bit_width
    if t.id in {2, 4, 6, 8}:  # unsigned ids in Arrow's Type enum (uint8/16/32/64)
        return 0 <= value < (1 << bits)
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


def to_pyarrow(expr: Expr, schema: pa.Schema) -> pc.Expression:
    """Translate to a ``pyarrow.compute.Expression`` with SQL null semantics.

    The schema gives each literal its column's type, so ``int32`` columns compare with
    ``int32`` literals and no column is cast; literals are first put in the column's own
    terms by :func:`normalize_literals` (``i <= 6.5`` is ``i <= 6``).

    Example:
        >>> import pyarrow as pa, pyarrow.dataset as ds
        >>> t = pa.table({"a": [1, None, 3]})
        >>> ds.dataset(t).to_table(filter=to_pyarrow(~(col("a") > 1), t.schema)).column("a").to_pylist()
        [1]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakefeed.expr_literals import normalize_literals  # it builds on this module's classes

    def go(e: Expr) -> pc.Expression:
        if isinstance(e, Compare):
            field = pc.field(e.column)
            lit = _arrow_scalar(e.value, schema.field(e.column).type)
            result: pc.Expression = {
                "==": lambda: field == lit,
                "!=": lambda: field != lit,
                "<": lambda: field < lit,
                "<=": lambda: field <= lit,
                ">": lambda: field > lit,
                ">=": lambda: field >= lit,
            }[e.op]()
            return result
        if isinstance(e, IsIn):
            field = pc.field(e.column)
            arrow_type = schema.field(e.column).type
            if not e.values:
                empty: pc.Expression = pc.if_else(field.is_valid(), pa.scalar(False), pa.scalar(None, pa.bool_()))
                return empty
            scalars = [_arrow_scalar(v, arrow_type) for v in e.values]
            common = scalars[0].type
            if any(s.type != common for s in scalars):
                value_set = pa.array([s.as_py() for s in scalars], pa.float64())
            else:
                value_set = pa.array([s.as_py() for s in scalars], common)
            member = pc.is_in(field, value_set=value_set)
            kleene: pc.Expression = pc.if_else(field.is_valid(), member, pa.scalar(None, pa.bool_()))
            return kleene
        if isinstance(e, IsNull):
            return pc.field(e.column).is_null()
        if isinstance(e, Between):
            arrow_type = schema.field(e.column).type
            field = pc.field(e.column)
            return (field >= _arrow_scalar(e.low, arrow_type)) & (field <= _arrow_scalar(e.high, arrow_type))
        if isinstance(e, And):
            return go(e.left) & go(e.right)
        if isinstance(e, Or):
            return go(e.left) | go(e.right)
        if isinstance(e, Not):
            return ~go(e.operand)
        # the node's type, not its repr: an Expr's repr is its SQL, which would come back here
        msg = f"unknown filter node {type(e).__name__}; build filters from lf.col(...) and its operators"
        raise FilterError(msg)

    return go(normalize_literals(expr, schema))


def _sql_literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"CAST('{value}' AS DOUBLE)"
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return f"DATE '{value.isoformat()}'"


def _sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(expr: Expr, *, leaf: Callable[[Expr], str | None] | None = None, _pretty: bool = False) -> str:
    """Translate to a SQL predicate (quoted identifiers, typed literals).

    ``leaf``, when given, is asked first for each comparison, ``IN`` and ``BETWEEN``: a string
    replaces the default translation (a dialect's own form), None keeps it.

    Example:
        >>> print(to_sql((col("a") > 3) & col("c").isin(["x"])))
        (("a" > 3) AND ("c" IN ('x')))
    """
    ident = (lambda n: n) if _pretty else _sql_ident
    and_, or_, not_ = (" & ", " | ", "~") if _pretty else (" AND ", " OR ", "NOT ")
    eq = "==" if _pretty else "="
    ne = "!=" if _pretty else "<>"

    def go(e: Expr) -> str:
        if leaf is not None and isinstance(e, Compare | IsIn | Between):
            custom = leaf(e)
            if custom is not None:
                return custom
        if isinstance(e, Compare):
            op = {"==": eq, "!=": ne}.get(e.op, e.op)
            return f"({ident(e.column)} {op} {_sql_literal(e.value)})"
        if isinstance(e, IsIn):
            if not e.values:
                if _pretty:
                    return f"({e.column} IN ())"
                return f"(CASE WHEN {ident(e.column)} IS NULL THEN NULL ELSE FALSE END)"
            return f"({ident(e.column)} IN ({', '.join(_sql_literal(v) for v in e.values)}))"
        if isinstance(e, IsNull):
            return f"({ident(e.column)} IS NULL)"
        if isinstance(e, Between):
            return f"({ident(e.column)} BETWEEN {_sql_literal(e.low)} AND {_sql_literal(e.high)})"
        if isinstance(e, And):
            return f"({go(e.left)}{and_}{go(e.right)})"
        if isinstance(e, Or):
            return f"({go(e.left)}{or_}{go(e.right)})"
        if isinstance(e, Not):
            return f"{not_}{go(e.operand)}" if _pretty else f"(NOT {go(e.operand)})"
        # the node's type, not its repr: an Expr's repr is its SQL, which would come back here
        msg = f"unknown filter node {type(e).__name__}; build filters from lf.col(...) and its operators"
        raise FilterError(msg)

    return go(expr)


def negation_normal_form(expr: Expr, *, nan_columns: Iterable[str] = ()) -> Expr:
    """Push every ``~`` down to the leaves (exact under SQL three-valued logic).

    ``~(a > 1)`` becomes ``a <= 1``; ``~(a IS NULL)`` and ``~(a IN ...)`` stay negated leaves,
    and so do comparisons on ``nan_columns`` (floating point: ``~(NaN > 1)`` is true but
    ``NaN <= 1`` is false).

    Example:
        >>> print(negation_normal_form(~((col("a") > 1) | col("b").between(1, 2))))
        ((a <= 1) & ((b < 1) | (b > 2)))
    """
    keep = frozenset(nan_columns)

    def go(e: Expr, negate: bool) -> Expr:
        if isinstance(e, Not):
            return go(e.operand, not negate)
        if isinstance(e, And):
            left, right = go(e.left, negate), go(e.right, negate)
            return Or(left, right) if negate else And(left, right)
        if isinstance(e, Or):
            left, right = go(e.left, negate), go(e.right, negate)
            return And(left, right) if negate else Or(left, right)
        if not negate:
            return e
        if isinstance(e, (Compare, Between)) and e.column in keep:
            return Not(e)
        if isinstance(e, Compare):
            return Compare(e.column, _NEGATE[e.op], e.value)
        if isinstance(e, Between):
            return Or(Compare(e.column, "<", e.low), Compare(e.column, ">", e.high))
        return Not(e)

    return go(expr, False)


# -- text ------------------------------------------------------------------------------------


def parse_filter(text: str) -> Expr:
    """Parse a filter written as a Python-like expression (used by the CLI).

    Columns are bare names; ``and``/``or``/``not``, comparisons (chains like ``1 < a <= 3``
    too), ``in``/``not in`` lists, ``x is None``/``x is not None``, ``between(x, lo, hi)``,
    and ``date('2024-01-31')`` / ``timestamp('2024-01-31T12:00')`` literals. Nothing is
    evaluated: the text is parsed with :mod:`ast` and only these forms are accepted.

    Raises:
        FilterError: The text is not such an expression.

    Example:
        >>> print(parse_filter("clicked == 1 and country in ('US', 'DE') and not price > 9.5"))
        (((clicked == 1) & (country IN ('US', 'DE'))) & ~(price > 9.5))
    """
    import ast

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        msg = f"cannot parse filter {text!r}: {exc.msg}; write e.g. \"a > 3 and b in ('x', 'y')\""
        raise FilterError(msg) from exc

    def fail(node: ast.AST) -> FilterError:
        return FilterError(f"filter {text!r}: {ast.unparse(node)!r} is not supported here")

    def literal(node: ast.AST) -> Scalar:
        if isinstance(node, ast.Constant) and isinstance(node.value, _SCALAR_TYPES):
            return cast(Scalar, node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            value = node.operand.value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if node.func.id == "date":
                    return date.fromisoformat(arg.value)
                if node.func.id == "timestamp":
                    return datetime.fromisoformat(arg.value)
        raise fail(node)

    def column(node: ast.AST) -> Column:
        if isinstance(node, ast.Name):
            return Column(node.id)
        raise fail(node)

    ops: dict[type[ast.cmpop], CompareOp] = {
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Lt: "<",
        ast.LtE: "<=",
        ast.Gt: ">",
        ast.GtE: ">=",
    }
    flipped: dict[CompareOp, CompareOp] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

    def compare(left: ast.AST, op: ast.cmpop, right: ast.AST) -> Expr:
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, (ast.Tuple, ast.List)):
                raise fail(right)
            expr = column(left).isin([literal(v) for v in right.elts])
            return Not(expr) if isinstance(op, ast.NotIn) else expr
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise fail(right)
            expr = column(left).is_null()
            return Not(expr) if isinstance(op, ast.IsNot) else expr
        symbol = ops.get(type(op))
        if symbol is None:
            raise fail(op)
        if isinstance(left, ast.Name):
            return column(left)._cmp(symbol, literal(right))
        return column(right)._cmp(flipped[symbol], literal(left))

    def go(node: ast.AST) -> Expr:
        if isinstance(node, ast.BoolOp):
            parts = [go(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = And(out, p) if isinstance(node.op, ast.And) else Or(out, p)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(go(node.operand))
        if isinstance(node, ast.Compare):
            terms = [node.left, *node.comparators]
            exprs = [compare(terms[i], op, terms[i + 1]) for i, op in enumerate(node.ops)]
            out = exprs[0]
            for e in exprs[1:]:
                out = And(out, e)
            return out
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "between"
            and len(node.args) == 3
        ):
            return column(node.args[0]).between(literal(node.args[1]), literal(node.args[2]))
        raise fail(node)

    return go(tree.body)
