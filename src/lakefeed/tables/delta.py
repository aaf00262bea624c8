"""Delta Lake tables through ``deltalake`` (delta-rs, no JVM).

Reading: the snapshot's add actions give each data file's path, row count and partition
values; files are read row group by row group with ``pyarrow.dataset`` (partition values
added as constants, partitions pruned exactly). Deleted rows are gone because deltalake's
deletes and merges rewrite files. Writing: ``write_deltalake`` and ``DeltaTable.merge``,
one Delta commit each. The primary key lives in the table description (Delta has none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lakefeed._utils import import_optional
from lakefeed.errors import (
    CommitConflictError,
    CommitError,
    ConfigError,
    SchemaError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
)
from lakefeed.expr import Between, Compare, Expr, IsIn, _sql_ident, _sql_literal, to_sql, validate
from lakefeed.expr_literals import is_nan, normalize_literals
from lakefeed.io import filesystem_and_path, is_uri
from lakefeed.tables.base import ReadPlan, Snapshot, Table, TablePart
from lakefeed.tables.parts import excluded_by_constants, parquet_file_parts
from lakefeed.tables.pruning import ColumnStats, may_match, usable_for_pruning
from lakefeed.tables.schema import conform, normalize_arrow_schema, prepare_create, validate_keys_unique

if TYPE_CHECKING:
    import deltalake
    import pyarrow as pa

__all__ = ["DeltaTable", "create_delta_table"]


def _deltalake() -> Any:
    return import_optional("deltalake", extra="delta", purpose="Delta Lake tables")


def _uri(location: str) -> str:
    return location if is_uri(location) else os.path.abspath(os.path.expanduser(location))


class DeltaTable(Table):
    """A Delta Lake table. Open with ``lf.open_table("delta://path")``.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> t = lf.create_table(f"delta://{tempfile.mkdtemp()}/users", pa.table({"id": [1, 2]}), primary_key=["id"])
        >>> t.upsert(pa.table({"id": [2, 3]}))
        >>> sorted(t.scan().to_arrow().column("id").to_pylist()), t.primary_key
        ([1, 2, 3], ('id',))
    """

    format = "delta"

    def __init__(self, location: str | os.PathLike[str], *, name: str | None = None) -> None:
        text = os.fspath(location)
        super().__init__(name or text)
        self._uri = _uri(text)
        self._versions: dict[int, deltalake.DeltaTable] = {}
        self._dt = self._load(None)

    def _load(self, version: int | None) -> deltalake.DeltaTable:
        dl = _deltalake()
        try:
            dt = dl.DeltaTable(self._uri, version=version)
        except dl.exceptions.TableNotFoundError as exc:
            msg = (
                f"no Delta table at {self._uri!r} (no _delta_log there); create one with "
                "lf.create_table('delta://...', data)"
            )
            raise TableNotFoundError(msg) from exc
        features = set(dt.protocol().reader_features or [])
        if "deletionVectors" in features:
            msg = (
                f"Delta table {self.name} uses reader features {sorted(features)} that lakefeed does not read yet; "
                "rewrite it without deletion vectors (e.g. OPTIMIZE + REORG ... APPLY (PURGE))"
            )
            raise UnsupportedOperationError(msg)
        _physical_names(dt, self.name)  # column mapping lakefeed cannot read is refused now
        loaded: deltalake.DeltaTable = dt
        return loaded

    def _at(self, version: int | None) -> deltalake.DeltaTable:
        if version is None or version == self._dt.version():
            return self._dt
        if version not in self._versions:
            self._versions[version] = self._load(version)
        return self._versions[version]

    @property
    def delta_table(self) -> deltalake.DeltaTable:
        """The underlying ``deltalake.DeltaTable`` (current version)."""
        return self._dt

    @property
    def schema(self) -> pa.Schema:
        """The current schema as Arrow."""
        return self._schema_at(None)

    def _schema_at(self, snapshot_id: int | None) -> pa.Schema:
        import pyarrow as pa

        arrow_schema: Any = self._at(snapshot_id).schema().to_arrow()  # an arro3 schema (Arrow C interface)
        return normalize_arrow_schema(pa.schema(arrow_schema))

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary-key columns (empty when the table has none)."""
        description = self._dt.metadata().description or ""
        try:
            meta = json.loads(description)
        except ValueError:
            return ()
        keys = meta.get("lakefeed", {}).get("primary_key", []) if isinstance(meta, dict) else []
        return tuple(str(k) for k in keys)

    @property
    def partition_by(self) -> tuple[str, ...]:
        """Partition fields, e.g. ``("country", "day(ts)")``."""
        return tuple(self._dt.metadata().partition_columns)

    @property
    def location(self) -> str:
        """Where the table's files live."""
        return self._uri

    @property
    def snapshot_id(self) -> int | None:
        """The current snapshot's id (None when empty)."""
        return int(self._dt.version())

    def snapshots(self) -> list[Snapshot]:
        """All snapshots, oldest first."""
        out = []
        for entry in self._dt.history():
            version = int(entry["version"])
            out.append(
                Snapshot(
                    snapshot_id=version,
                    timestamp=datetime.fromtimestamp(int(entry["timestamp"]) / 1000, tz=UTC),
                    operation=str(entry.get("operation", "")).lower() or None,
                    parent_id=version - 1 if version > 0 else None,
                    summary={k: str(v) for k, v in (entry.get("operationMetrics") or {}).items()},
                )
            )
        return sorted(out, key=lambda s: s.snapshot_id)

    def refresh(self) -> DeltaTable:
        """Reload metadata to see other writers' commits; returns ``self``."""
        self._dt = self._load(None)
        return self

    def _file_bytes(self, files: set[str]) -> int:
        import pyarrow as pa

        actions = pa.table(self._dt.get_add_actions(flatten=True))
        return int(pa.compute.sum(actions.column("size_bytes")).as_py() or 0) if actions.num_rows else 0

    def _parts_planner(
        self, snapshot_id: int | None, *, current_schema: bool = True
    ) -> Callable[[ReadPlan], list[TablePart]]:
        import pyarrow as pa

        dt = self._at(snapshot_id)
        actions = pa.table(dt.get_add_actions(flatten=True))
        schema = self._schema_at(snapshot_id)
        partition_columns = list(dt.metadata().partition_columns)
        fs, root = filesystem_and_path(self._uri)
        prunable = [f.name for f in schema if usable_for_pruning(f.type) and f.name not in partition_columns]
        # column mapping: files, statistics and partition values use the physical names
        physical = _physical_names(dt, self.name)
        rename = {c: p for c, p in physical.items() if p != c}
        stored = {c: physical.get(c, c) for c in schema.names}
        part_key = {
            c: f"partition.{stored[c]}" if f"partition.{stored[c]}" in actions.column_names else f"partition.{c}"
            for c in partition_columns
        }
        files: list[tuple[str, int, dict[str, Any], int, dict[str, ColumnStats]]] = []
        for row in actions.to_pylist():
            rel = str(row["path"])
            path = filesystem_and_path(rel)[1] if is_uri(rel) else f"{root.rstrip('/')}/{unquote(rel)}"
            constants = {c: _partition_value(row.get(part_key[c]), schema.field(c).type) for c in partition_columns}
            stats = {
                c: ColumnStats(
                    row.get(f"min.{stored[c]}"), row.get(f"max.{stored[c]}"), row.get(f"null_count.{stored[c]}")
                )
                for c in prunable
            }
            num_records = row.get("num_records")
            files.append(
                (path, int(row["size_bytes"]), constants, -1 if num_records is None else int(num_records), stats)
            )

        def plan_parts(plan: ReadPlan) -> list[TablePart]:
            parts: list[TablePart] = []
            for path, size, constants, num_rows, stats in files:
                if excluded_by_constants(plan, constants):
                    continue
                if num_rows >= 0 and not may_match(plan.filter, stats, num_rows, plan.table_schema):
                    continue  # the file's min/max/null counts rule every row out
                parts.extend(parquet_file_parts(path, fs, plan, file_size=size, rename=rename, constants=constants))
            return parts

        return plan_parts

    # -- writes -----------------------------------------------------------------------------

    def _write(self, operation: str, action: Callable[[], None]) -> None:
        if _physical_names(self._dt, self.name):
            msg = (
                f"{operation} on Delta table {self.name}: lakefeed does not write tables with column mapping "
                "(delta.columnMapping.mode); write with Spark or Delta Kernel"
            )
            raise UnsupportedOperationError(msg)
        dl = _deltalake()
        try:
            action()
        except dl.exceptions.CommitFailedError as exc:
            msg = (
                f"{operation} on Delta table {self.name}: another writer committed first ({exc}); "
                "the table is unchanged, retry"
            )
            raise CommitConflictError(msg) from exc
        except dl.exceptions.SchemaMismatchError as exc:
            msg = f"{operation} on Delta table {self.name}: {exc}; nothing was written"
            raise SchemaError(msg) from exc
        except dl.exceptions.DeltaError as exc:
            first = str(exc).splitlines()[0]
            msg = f"{operation} on Delta table {self.name} failed ({first}); the table is at its previous version"
            raise CommitError(msg) from exc
        self.refresh()

    def append(self, data: Any) -> None:
        """Add rows in one Delta commit."""
        arrow = conform(data, self._write_schema(), table=self.name, what="append")
        if arrow.num_rows:
            self._write("append", lambda: _deltalake().write_deltalake(self._uri, arrow, mode="append"))

    def overwrite(self, data: Any, filter: Expr | None = None) -> None:
        """Replace all rows, or those matching ``filter`` (every new row must match it too), in one commit."""
        arrow = conform(data, self._write_schema(), table=self.name, what="overwrite")
        predicate = self._predicate(filter) if filter is not None else None
        if predicate is not None and arrow.num_rows:
            self._replace_where(arrow, filter, predicate)
            return
        self._write(
            "overwrite",
            lambda: _deltalake().write_deltalake(self._uri, arrow, mode="overwrite", predicate=predicate),
        )

    def _replace_where(self, arrow: pa.Table, filter: Expr | None, predicate: str) -> None:
        from lakefeed.expr import to_pyarrow

        assert filter is not None
        matched = arrow.filter(to_pyarrow(filter, arrow.schema)).num_rows
        if matched != arrow.num_rows:
            msg = (
                f"overwrite of Delta table {self.name} where {filter}: {arrow.num_rows - matched} new row(s) do not "
                "match the filter; Delta replaces only the matching rows, so every new row must match it"
            )
            raise SchemaError(msg)
        self._write(
            "overwrite",
            lambda: _deltalake().write_deltalake(self._uri, arrow, mode="overwrite", predicate=predicate),
        )

    def upsert(self, data: Any) -> None:
        """Insert rows, replacing those with the same primary key, in one Delta MERGE commit."""
        keys = list(self.primary_key)
        if not keys:
            msg = f"upsert into Delta table {self.name} needs a primary key; create it with primary_key=[...]"
            raise SchemaError(msg)
        arrow = conform(data, self._write_schema(), table=self.name, what="upsert")
        validate_keys_unique(arrow, keys, self.name)
        if not arrow.num_rows:
            return
        on = " AND ".join(f't."{k}" = s."{k}"' for k in keys)

        def run() -> None:
            (
                self._dt.merge(arrow, predicate=on, source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )

        self._write("upsert", run)

    def delete(self, filter: Expr) -> None:
        """Delete the rows where ``filter`` is true, in one Delta commit."""
        if not isinstance(filter, Expr):
            msg = f"delete on Delta table {self.name} needs a filter such as lf.col('id') == 3, got {filter!r}"
            raise ConfigError(msg)
        predicate = self._predicate(filter)

        def run() -> None:
            self._dt.delete(predicate)

        self._write("delete", run)

    def _predicate(self, filter: Expr) -> str:
        validate(filter, self.schema, table=f"Delta table {self.name}")
        import pyarrow as pa

        floats = {f.name: f.type.bit_width for f in self.schema if pa.types.is_floating(f.type)}
        return to_sql(normalize_literals(filter, self.schema), leaf=lambda e: _ieee_leaf(e, floats))

    def _write_schema(self) -> pa.Schema:
        return self.schema


def _physical_names(dt: deltalake.DeltaTable, table: str) -> dict[str, str]:
    """Column -> physical (stored) name under column mapping; empty without it.

    Raises:
        UnsupportedOperationError: ``id`` mode, or nested fields stored under other names.
    """
    mode = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mode == "none":
        return {}
    key = "delta.columnMapping.physicalName"
    if mode != "name":
        msg = (
            f"Delta table {table} uses column mapping mode {mode!r}, which lakefeed does not read yet "
            "(mode 'name' it does); rewrite the table without column mapping or in name mode"
        )
        raise UnsupportedOperationError(msg)

    types = _deltalake().schema

    def nested_renamed(t: Any) -> bool:
        if isinstance(t, types.StructType):
            return any(str(f.metadata.get(key, f.name)) != f.name or nested_renamed(f.type) for f in t.fields)
        if isinstance(t, types.ArrayType):
            return nested_renamed(t.element_type)
        if isinstance(t, types.MapType):
            return nested_renamed(t.key_type) or nested_renamed(t.value_type)
        return False

    fields = dt.schema().fields
    renamed = [f.name for f in fields if nested_renamed(f.type)]
    if renamed:
        msg = (
            f"Delta table {table} uses column mapping (mode {mode!r}) with renamed nested fields in {renamed}, "
            "which lakefeed does not read yet; rewrite the table without column mapping"
        )
        raise UnsupportedOperationError(msg)
    return {f.name: str(f.metadata.get(key, f.name)) for f in fields}


def _partition_value(raw: Any, arrow_type: pa.DataType) -> Any:
    import pyarrow as pa

    if raw is None:
        return None
    return pa.array([raw]).cast(arrow_type)[0].as_py()


def create_delta_table(
    location: str,
    data_or_schema: Any,
    *,
    primary_key: Sequence[str] | None = None,
    partition_by: Sequence[str] | None = None,
) -> DeltaTable:
    """Create a Delta table (and write the data, if any) in one commit.

    Raises:
        TableExistsError: A Delta table is already there.
        UnsupportedOperationError: A partition transform other than identity.
    """
    dl = _deltalake()
    uri = _uri(location)
    try:
        dl.DeltaTable(uri)
    except dl.exceptions.TableNotFoundError:
        pass
    else:
        msg = f"a Delta table already exists at {uri!r}; open it with lf.open_table('delta://{location}')"
        raise TableExistsError(msg)
    spec = prepare_create(location, data_or_schema, primary_key, partition_by, identity_only="Delta")
    schema, data, keys = spec.schema, spec.data, spec.primary_key
    columns = [column for _, column, _ in spec.partitions]
    description = json.dumps({"lakefeed": {"primary_key": keys}})
    try:
        if data is not None:
            dl.write_deltalake(uri, data, mode="error", partition_by=columns or None, description=description)
        else:
            dl.DeltaTable.create(uri, schema=schema, partition_by=columns or None, description=description)
    except dl.exceptions.SchemaMismatchError as exc:
        msg = f"create Delta table {location}: {str(exc).splitlines()[0]}; nothing was created"
        raise SchemaError(msg) from exc
    except dl.exceptions.DeltaError as exc:
        msg = f"create Delta table {location} failed: {str(exc).splitlines()[0]}; nothing was created"
        raise CommitError(msg) from exc
    return DeltaTable(location)


def _ieee_leaf(e: Expr, floats: dict[str, int]) -> str | None:
    """A float column's comparison in SQL that Delta's engine evaluates as lakefeed's exact filter does.

    DataFusion compares floats by IEEE 754's total order (NaN above +inf, -0.0 below 0.0);
    lakefeed's filters compare as IEEE 754 operators do (NaN compares false, -0.0 equals 0.0),
    so deletes and overwrites remove exactly the rows a read with the same filter returns.
    Literals are compared at the column's width. Nulls stay null. None for anything else (the
    default translation). ``floats`` maps the float columns to their bit widths.
    """
    if isinstance(e, Between) and e.column in floats:
        low, high = (
            _ieee_leaf(Compare(e.column, ">=", e.low), floats),
            _ieee_leaf(Compare(e.column, "<=", e.high), floats),
        )
        return f"({low} AND {high})"
    if isinstance(e, IsIn) and e.column in floats and e.values:
        # membership as Arrow's is_in: a NaN in the list matches NaN, and -0.0 matches 0.0
        nan = any(is_nan(v) for v in e.values)
        tests = [str(_ieee_leaf(Compare(e.column, "==", v), floats)) for v in e.values if not is_nan(v)]
        if nan:
            tests.append(f"isnan({_sql_ident(e.column)})")
        return "(" + " OR ".join(tests) + ")"
    if not isinstance(e, Compare) or e.column not in floats or not isinstance(e.value, int | float):
        return None
    c, v = _sql_ident(e.column), float(e.value)
    if floats[e.column] == 32:  # compared at the column's width, as the exact filter does
        import numpy as np

        v = float(np.float32(v))
    kind = "FLOAT" if floats[e.column] == 32 else "DOUBLE"  # the column's own type: no mixed comparison

    def lit(x: float) -> str:
        return f"CAST({_sql_literal(x)} AS {kind})"

    op = {"==": "=", "!=": "<>"}.get(e.op, e.op)
    if v == 0.0:  # both zeros: in the total order -0.0 < 0.0
        pos, neg = lit(0.0), lit(-0.0)
        base = {
            "==": f"{c} = {pos} OR {c} = {neg}",
            "!=": f"{c} <> {pos} AND {c} <> {neg}",
            "<": f"{c} < {neg}",
            "<=": f"{c} <= {pos}",
            ">": f"{c} > {pos}",
            ">=": f"{c} >= {neg}",
        }[e.op]
    else:
        base = f"{c} {op} {lit(v)}"
    # Whether NaN passes, said outright: in the total order NaN is above every number, and the
    # engine skips files by min/max statistics, which leave NaN out (a file of 1.0s and a NaN
    # would be skipped for NOT (x < 2.0)); a test of isnan() cannot be decided from them.
    if e.op == "!=":
        return f"(({base}) OR isnan({c}))"
    return f"(({base}) AND NOT isnan({c}))"
