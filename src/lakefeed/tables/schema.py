"""Write-side schema checks: accept data in common shapes and conform it to a table's schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakefeed.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["as_arrow_table", "conform", "normalize_arrow_schema"]


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
