"""Write-side schema checks: accept data in common shapes and conform it to a table's schema."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakefeed.errors import ConfigError, SchemaError, UnsupportedOperationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CreateSpec",
    "as_arrow_table",
    "conform",
    "normalize_arrow_schema",
    "parse_partition_field",
    "prepare_create",
    "validate_keys_unique",
]

_PARTITION_RE = re.compile(r"^\s*(\w+)\s*\(\s*(?:(\d+)\s*,\s*)?([^()]+?)\s*\)\s*$")


def as_arrow_table(data: Any, *, what: str) -> pa.Table:
    """Accept a pyarrow Table/RecordBatch, a list of batches, or a pandas DataFrame."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, list) and data and all(isinstance(b, pa.RecordBatch) for b in data):
        return pa.Table.from_batches(data)
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        return pa.Table.from_pandas(data, preserve_index=False)
    msg = (
        f"{what}: expected a pyarrow.Table, RecordBatch, list of RecordBatches or pandas.DataFrame, "
        f"got {type(data).__name__}"
    )
    raise SchemaError(msg)


def _compatible(source: pa.DataType, target: pa.DataType) -> bool:
    import pyarrow as pa

    if source.equals(target):
        return True
    if pa.types.is_null(source):
        return True
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    binaries = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
    for family in (strings, binaries):
        if any(f(source) for f in family) and any(f(target) for f in family):
            return True
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        return source.bit_width <= target.bit_width and (
            pa.types.is_signed_integer(target) or not pa.types.is_signed_integer(source)
        )
    if pa.types.is_integer(source) and pa.types.is_floating(target):
        return source.bit_width < target.bit_width
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        return source.bit_width <= target.bit_width
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        return (source.tz is None) == (target.tz is None)
    if pa.types.is_date(source) and pa.types.is_date(target):
        return True
    if pa.types.is_dictionary(source):
        return _compatible(source.value_type, target)
    if (pa.types.is_list(source) or pa.types.is_large_list(source)) and (
        pa.types.is_list(target) or pa.types.is_large_list(target)
    ):
        return _compatible(source.value_type, target.value_type)
    if pa.types.is_struct(source) and pa.types.is_struct(target):
        # matched by name (the cast is too): no unknown field, missing ones nullable
        names = [source.field(i).name for i in range(source.num_fields)]
        wanted = {target.field(i).name: target.field(i) for i in range(target.num_fields)}
        if len(set(names)) != len(names) or len(wanted) != target.num_fields:
            return False
        return all(n in wanted and _compatible(source.field(n).type, wanted[n].type) for n in names) and all(
            f.nullable for n, f in wanted.items() if n not in names
        )
    if pa.types.is_map(source) and pa.types.is_map(target):
        return _compatible(source.key_type, target.key_type) and _compatible(source.item_type, target.item_type)
    return False


def conform(data: Any, schema: pa.Schema, *, table: str, what: str = "write") -> pa.Table:
    """Check ``data`` against a table schema and cast it to exactly that schema.

    Columns may come in any order; nullable columns may be missing (they are written as
    nulls); types may widen safely (int32 → int64, float32 → float64, string ↔ large_string).
    Anything else raises :class:`SchemaError` before a byte is written.

    Example:
        >>> import pyarrow as pa
        >>> schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.float64())])
        >>> conform(pa.table({"id": pa.array([1], pa.int32())}), schema, table="t").to_pylist()
        [{'id': 1, 'v': None}]
    """
    import pyarrow as pa

    source = as_arrow_table(data, what=f"{what} to table {table}")
    problems: list[str] = []
    extra = [n for n in source.column_names if n not in schema.names]
    if extra:
        problems.append(f"unknown column(s) {extra} (the table has {schema.names})")
    if len(set(source.column_names)) != len(source.column_names):
        problems.append(f"duplicate column names in {source.column_names}")
    arrays: list[pa.ChunkedArray[Any]] = []
    for target in schema:
        if target.name not in source.column_names:
            if not target.nullable:
                problems.append(f"required column {target.name!r} ({target.type}) is missing")
            arrays.append(pa.chunked_array([pa.nulls(source.num_rows, target.type)]))
            continue
        column = source.column(target.name)
        if not _compatible(column.type, target.type):
            problems.append(f"column {target.name!r} is {column.type}, the table has {target.type}")
            arrays.append(column)
            continue
        if not target.nullable and column.null_count:
            problems.append(f"column {target.name!r} is required but has {column.null_count} null(s)")
        try:
            arrays.append(column.cast(target.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            problems.append(f"column {target.name!r} cannot be cast from {column.type} to {target.type}: {exc}")
            arrays.append(column)
    if problems:
        msg = f"{what} to table {table} does not fit its schema: " + "; ".join(problems) + "; nothing was written"
        raise SchemaError(msg)
    return pa.Table.from_arrays(arrays, schema=schema)


def normalize_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """Use the plain Arrow types (``string`` rather than ``large_string`` or ``string_view``)."""
    import pyarrow as pa

    from lakefeed.tables.planning import normalize_type

    return pa.schema([pa.field(f.name, normalize_type(f.type), f.nullable) for f in schema])


def parse_partition_field(text: str) -> tuple[str, str, int | None]:
    """Parse ``"country"``, ``"day(ts)"``, ``"bucket(16, id)"`` into (transform, column, param).

    Example:
        >>> parse_partition_field("bucket(16, user_id)")
        ('bucket', 'user_id', 16)
        >>> parse_partition_field("country")
        ('identity', 'country', None)
    """
    if re.fullmatch(r"\s*[\w.]+\s*", text):
        return "identity", text.strip(), None
    m = _PARTITION_RE.match(text)
    transforms = {"identity", "year", "month", "day", "hour", "bucket", "truncate"}
    if not m or m.group(1) not in transforms:
        msg = (
            f"partition field {text!r} is not understood; use a column name or one of "
            "year(c), month(c), day(c), hour(c), bucket(N, c), truncate(W, c)"
        )
        raise ConfigError(msg)
    name, param, column = m.group(1), m.group(2), m.group(3)
    if name in {"bucket", "truncate"} and param is None:
        msg = f"partition field {text!r}: {name} needs a width, e.g. {name}(16, {column})"
        raise ConfigError(msg)
    return name, column, int(param) if param is not None else None


def validate_keys_unique(data: pa.Table, keys: Sequence[str], table: str) -> None:
    """Raise :class:`SchemaError` if ``data`` holds a primary key twice."""
    import pyarrow.compute as pc

    if not keys or data.num_rows == 0:
        return
    dupes = data.group_by(list(keys)).aggregate([([], "count_all")]).filter(pc.field("count_all") > 1)
    if dupes.num_rows:
        msg = (
            f"table {table}: {dupes.num_rows} primary key value(s) of {list(keys)} appear more than once in the data, "
            f"e.g. {dupes.select(list(keys)).slice(0, 3).to_pylist()}; keep one row per key; nothing was written"
        )
        raise SchemaError(msg)


@dataclass(frozen=True)
class CreateSpec:
    """A table to create, checked: its schema, its first data (if any), key and partitions."""

    schema: pa.Schema
    data: pa.Table | None
    primary_key: list[str]
    partitions: list[tuple[str, str, int | None]]


def prepare_create(
    table: str,
    data_or_schema: Any,
    primary_key: Sequence[str] | None,
    partition_by: Sequence[str] | None,
    *,
    identity_only: str | None = None,
) -> CreateSpec:
    """Check a create request for any format before anything is written.

    The schema comes from a ``pyarrow.Schema`` or from the data; key columns must exist, may
    not be floating point or nested, and become required; partition fields are parsed and
    their columns must exist (``identity_only`` names a format that has no transforms); the
    data is conformed to the schema and may not repeat a key.

    Example:
        >>> import pyarrow as pa
        >>> spec = prepare_create("db.t", pa.table({"id": [1, 2]}), ["id"], ["bucket(4, id)"])
        >>> spec.schema.field("id").nullable, spec.partitions
        (False, [('bucket', 'id', 4)])
    """
    import pyarrow as pa

    what = f"create table {table}"
    data: pa.Table | None = None
    if isinstance(data_or_schema, pa.Schema):
        schema = data_or_schema
    else:
        data = as_arrow_table(data_or_schema, what=what)
        schema = data.schema
    if isinstance(primary_key, str) or isinstance(partition_by, str):
        msg = f"{what}: primary_key and partition_by take lists, e.g. primary_key=['id']"
        raise ConfigError(msg)
    schema = normalize_arrow_schema(pa.schema([f.remove_metadata() for f in schema]))
    keys = list(primary_key or [])
    for key in keys:
        if key not in schema.names:
            msg = f"{what}: primary key column {key!r} is not in the schema {schema.names}"
            raise SchemaError(msg)
        field = schema.field(key)
        if pa.types.is_floating(field.type) or pa.types.is_nested(field.type):
            msg = f"{what}: primary key column {key!r} is {field.type}; use an integer, string, date or timestamp"
            raise SchemaError(msg)
        schema = schema.set(schema.get_field_index(key), field.with_nullable(False))
    partitions = [parse_partition_field(p) for p in partition_by or []]
    for transform, column, _ in partitions:
        if identity_only is not None and transform != "identity":
            msg = (
                f"{identity_only} tables partition by plain columns only, not {transform}({column}); "
                "add a derived column instead"
            )
            raise UnsupportedOperationError(msg)
        if column not in schema.names:
            msg = f"{what}: partition column {column!r} is not in the schema {schema.names}"
            raise SchemaError(msg)
    if data is not None:
        data = conform(data, schema, table=table, what="create")
        validate_keys_unique(data, keys, table)
    return CreateSpec(schema, data, keys, partitions)
