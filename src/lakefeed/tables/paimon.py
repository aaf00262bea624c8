"""Apache Paimon tables through pypaimon (pure Python, no JVM).

Reading: pypaimon plans the snapshot's splits (partition, bucket and statistics pruning).
Splits of append tables whose files are plain Parquet in the current schema are read row
group by row group with ``pyarrow.dataset``; primary-key splits (which need merging),
splits with deletion vectors and files of older schemas are read by pypaimon, which
applies merges and deletions. Writing: pypaimon batch writes, one commit each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakefeed._utils import import_optional
from lakefeed.errors import (
    CommitError,
    ConfigError,
    SchemaError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
)
from lakefeed.expr import And, Between, Compare, Expr, IsIn, IsNull, Not, Or, negation_normal_form, validate
from lakefeed.expr_literals import normalize_literals
from lakefeed.io import filesystem_and_path
from lakefeed.tables.base import ReadPlan, Snapshot, Table, TablePart
from lakefeed.tables.parts import excluded_by_constants, parquet_file_parts
from lakefeed.tables.schema import as_arrow_table, conform, normalize_arrow_schema, prepare_create, validate_keys_unique

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PaimonTable", "create_paimon_table", "to_paimon_predicate"]


def _pypaimon() -> Any:
    return import_optional("pypaimon", extra="paimon", purpose="Paimon tables")


def _catalog(warehouse: str, options: dict[str, str] | None = None) -> Any:
    pypaimon = _pypaimon()
    return pypaimon.CatalogFactory.create({"warehouse": os.fspath(warehouse), **(options or {})})


def _pushable(value: Any, arrow_type: pa.DataType) -> bool:
    import pyarrow as pa

    if isinstance(value, bool):
        return bool(pa.types.is_boolean(arrow_type))
    if isinstance(value, int):
        return bool(pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type))
    if isinstance(value, float):
        return bool(pa.types.is_floating(arrow_type))
    if isinstance(value, str):
        return bool(pa.types.is_string(arrow_type))
    return False


def to_paimon_predicate(expr: Expr | None, builder: Any, schema: pa.Schema) -> Any:
    """Translate a filter into a pypaimon predicate selecting a superset of its rows (or None).

    Leaves pypaimon cannot express exactly are dropped (treated as true); lakefeed applies
    the exact filter to every batch afterwards.
    """
    import pyarrow as pa

    if expr is None:
        return None
    nan_columns = [f.name for f in schema if pa.types.is_floating(f.type)]
    # literals in their columns' terms first (as the exact filter has them), negations pushed down
    nnf = negation_normal_form(normalize_literals(expr, schema), nan_columns=nan_columns)

    def cast(column: str, value: Any) -> Any:
        return float(value) if pa.types.is_floating(schema.field(column).type) else value

    def go(e: Expr) -> Any:
        if isinstance(e, Compare):
            if not _pushable(e.value, schema.field(e.column).type):
                return None
            if e.op == "!=" and e.column in nan_columns:
                return None  # true on NaN, which min/max statistics leave out: a file could be skipped wrongly
            method = {
                "==": builder.equal,
                "!=": builder.not_equal,
                "<": builder.less_than,
                "<=": builder.less_or_equal,
                ">": builder.greater_than,
                ">=": builder.greater_or_equal,
            }[e.op]
            return method(e.column, cast(e.column, e.value))
        if isinstance(e, IsIn):
            if not e.values or not all(_pushable(v, schema.field(e.column).type) for v in e.values):
                return None
            return builder.is_in(e.column, [cast(e.column, v) for v in e.values])
        if isinstance(e, IsNull):
            return builder.is_null(e.column)
        if isinstance(e, Between):
            t = schema.field(e.column).type
            if not (_pushable(e.low, t) and _pushable(e.high, t)):
                return None
            return builder.between(e.column, cast(e.column, e.low), cast(e.column, e.high))
        if isinstance(e, Not):
            return builder.is_not_null(e.operand.column) if isinstance(e.operand, IsNull) else None
        if isinstance(e, And):
            parts = [p for p in (go(e.left), go(e.right)) if p is not None]
            return builder.and_predicates(parts) if len(parts) == 2 else (parts[0] if parts else None)
        if isinstance(e, Or):
            left, right = go(e.left), go(e.right)
            return None if left is None or right is None else builder.or_predicates([left, right])
        return None

    return go(nnf)


class PaimonTable(Table):
    """A Paimon table in a filesystem catalog. Open with ``lf.open_table("paimon://WAREHOUSE/db.table")``.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> wh = tempfile.mkdtemp()
        >>> data = pa.table({"id": [1, 2], "v": [1.0, 2.0]})
        >>> t = lf.create_table(f"paimon://{wh}/db.users", data, primary_key=["id"])
        >>> t.upsert(pa.table({"id": [2], "v": [20.0]}))
        >>> sorted(t.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
        [{'id': 1, 'v': 1.0}, {'id': 2, 'v': 20.0}]
    """

    format = "paimon"

    def __init__(self, warehouse: str | os.PathLike[str], name: str, *, options: dict[str, str] | None = None) -> None:
        super().__init__(name)
        self._warehouse = os.fspath(warehouse)
        self._catalog = _catalog(self._warehouse, options)
        self._tbl = self._load()

    def _load(self) -> Any:
        try:
            return self._catalog.get_table(self.name)
        except Exception as exc:
            if type(exc).__name__ in {"TableNotExistException", "DatabaseNotExistException", "FileNotFoundError"}:
                msg = f"Paimon table {self.name} not found in warehouse {self._warehouse!r}"
                raise TableNotFoundError(msg) from exc
            raise

    @property
    def paimon_table(self) -> Any:
        """The underlying pypaimon ``FileStoreTable``."""
        return self._tbl

    @property
    def schema(self) -> pa.Schema:
        """The current schema as Arrow."""
        return self._schema_at(None)

    def _schema_at(self, snapshot_id: int | None) -> pa.Schema:
        from pypaimon.schema.data_types import PyarrowFieldParser

        return normalize_arrow_schema(PyarrowFieldParser.from_paimon_schema(self._at(snapshot_id).fields))

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary-key columns (empty when the table has none)."""
        return tuple(self._tbl.primary_keys)

    @property
    def partition_by(self) -> tuple[str, ...]:
        """Partition fields, e.g. ``("country", "day(ts)")``."""
        return tuple(self._tbl.partition_keys)

    @property
    def location(self) -> str:
        """Where the table's files live."""
        return str(self._tbl.table_path)

    @property
    def snapshot_id(self) -> int | None:
        """The current snapshot's id (None when empty)."""
        latest = self._tbl.snapshot_manager().get_latest_snapshot()
        return int(latest.id) if latest is not None else None

    def snapshots(self) -> list[Snapshot]:
        """All snapshots, oldest first."""
        return [
            Snapshot(
                snapshot_id=int(s.id),
                timestamp=datetime.fromtimestamp(s.time_millis / 1000, tz=UTC),
                operation=str(s.commit_kind).lower(),
                parent_id=int(s.id) - 1 if s.id > 1 else None,
            )
            for s in self._tbl.snapshot_manager().list_snapshots()
        ]

    def refresh(self) -> PaimonTable:
        """Reload metadata to see other writers' commits; returns ``self``."""
        self._tbl = self._load()
        return self

    def _at(self, snapshot_id: int | None) -> Any:
        """The table pinned to a snapshot.

        Pinned explicitly even for the current snapshot: pypaimon plans lazily, so the live
        table would read whatever snapshot is latest then, not the one the scan named.
        """
        if snapshot_id is None:
            return self._tbl
        return self._tbl.copy({"scan.snapshot-id": str(snapshot_id)})

    def _file_bytes(self, files: set[str]) -> int:
        fs, _ = filesystem_and_path(self.location)
        return sum(i.size or 0 for i in fs.get_file_info([filesystem_and_path(f)[1] for f in sorted(files)]))

    def _parts_planner(
        self, snapshot_id: int | None, *, current_schema: bool = True
    ) -> Callable[[ReadPlan], list[TablePart]]:
        table = self._at(snapshot_id)
        pinned = snapshot_id

        def plan_parts(plan: ReadPlan) -> list[TablePart]:
            if pinned is None:
                return []
            builder = table.new_read_builder()
            predicate = to_paimon_predicate(plan.filter, builder.new_predicate_builder(), plan.table_schema)
            if predicate is not None:
                builder = builder.with_filter(predicate)
            parts: list[TablePart] = []
            schema_id = table.table_schema.id
            for split in builder.new_scan().plan().splits():
                files = list(split.files)
                plain = (
                    not table.is_primary_key_table
                    and not split.data_deletion_files
                    and all(
                        f.file_path
                        and str(f.file_path).endswith(".parquet")
                        and f.schema_id == schema_id
                        and not f.write_cols
                        and not f.external_path
                        for f in files
                    )
                )
                if plain:
                    for f in files:
                        fs, path = filesystem_and_path(str(f.file_path))
                        parts.extend(parquet_file_parts(path, fs, plan, file_size=int(f.file_size)))
                else:
                    part = _PaimonSplitPart(table, split, plan, predicate)
                    constants = dict(zip(table.partition_keys, _partition_values(split), strict=False))
                    if not excluded_by_constants(plan, constants):
                        parts.append(part)
            return parts

        return plan_parts

    # -- writes -----------------------------------------------------------------------------

    def _write(self, data: Any, what: str, *, overwrite: dict[str, Any] | None = None, full: bool = False) -> None:
        arrow = conform(data, self._write_schema(), table=self.name, what=what)
        if self.primary_key:
            validate_keys_unique(arrow, self.primary_key, self.name)
        builder = self._tbl.new_batch_write_builder()
        if full or overwrite is not None:
            builder = builder.overwrite(overwrite or None)
        writer = builder.new_write()
        committer = builder.new_commit()
        try:
            if arrow.num_rows:
                writer.write_arrow(arrow)
            messages = writer.prepare_commit()
            committer.commit(messages)
        except (ValueError, RuntimeError, OSError) as exc:
            msg = f"{what} on Paimon table {self.name} failed ({exc}); the table is at its previous snapshot"
            raise CommitError(msg) from exc
        finally:
            writer.close()
            committer.close()
        self.refresh()

    def _write_schema(self) -> pa.Schema:
        from pypaimon.schema.data_types import PyarrowFieldParser

        schema: pa.Schema = PyarrowFieldParser.from_paimon_schema(self._tbl.fields)
        return schema

    def append(self, data: Any) -> None:
        """Add rows in one commit (on a primary-key table, rows replace those with the same key)."""
        self._write(data, "append")

    def upsert(self, data: Any) -> None:
        """Insert rows, replacing those with the same primary key, in one commit."""
        if not self.primary_key:
            msg = f"upsert into Paimon table {self.name} needs a primary key; create it with primary_key=[...]"
            raise SchemaError(msg)
        self._write(data, "upsert")

    def overwrite(self, data: Any, filter: Expr | None = None) -> None:
        """Replace all rows, or one partition (``filter`` = equalities on every partition column)."""
        if filter is None:
            self._write(data, "overwrite", full=True)
            return
        validate(filter, self.schema, table=f"Paimon table {self.name}")
        partition = _static_partition(filter, self.partition_by)
        if partition is None:
            msg = (
                f"Paimon table {self.name} can overwrite only whole partitions: pass a filter of equalities on "
                f"every partition column {list(self.partition_by)}, e.g. "
                f"lf.col('{(self.partition_by or ('p',))[0]}') == 'x'"
            )
            raise UnsupportedOperationError(msg)
        arrow = as_arrow_table(data, what=f"overwrite of {self.name}")
        for column, value in partition.items():
            if column in arrow.column_names and any(v != value for v in arrow.column(column).to_pylist()):
                msg = (
                    f"overwrite of partition {partition} of Paimon table {self.name}: new rows must "
                    f"all have {column}={value!r}"
                )
                raise SchemaError(msg)
        self._write(arrow, "overwrite", overwrite=partition)

    def delete(self, filter: Expr) -> None:
        """Not available: pypaimon has no delete by filter."""
        raise self._unsupported(
            "delete by filter (pypaimon 2.1 cannot write deletes)",  # noqa: EM101 - the error's message
            "rewrite the affected partition with overwrite(data, filter=partition equalities)",
        )


def _static_partition(filter: Expr, partition_by: Sequence[str]) -> dict[str, Any] | None:
    from lakefeed.expr import conjuncts

    found: dict[str, Any] = {}
    for term in conjuncts(filter):
        if not (isinstance(term, Compare) and term.op == "==" and term.column in partition_by):
            return None
        found[term.column] = term.value
    return found if partition_by and set(found) == set(partition_by) else None


def _partition_values(split: Any) -> list[Any]:
    row = split.partition
    values = getattr(row, "values", None)
    if values is None:
        return []
    return list(values)


class _PaimonSplitPart(TablePart):
    """One pypaimon split, read by pypaimon (merges and deletion vectors applied)."""

    def __init__(self, table: Any, split: Any, plan: ReadPlan, predicate: Any) -> None:
        from lakefeed.tables.planning import ParquetFileInfo

        self._table = table
        self._split = split
        self._predicate = predicate
        files = list(split.files)
        self._files = tuple(str(f.file_path) for f in files)
        self.path = self._files[0] if files else "<empty split>"
        self.num_rows = int(split.row_count)
        # row counts add up only when pypaimon reads the files as stored: one file without
        # delete (-D/-U) records, or a split it reads raw; merges and deletion vectors drop rows
        single = len(files) <= 1 and all(not f.delete_row_count for f in files)
        self.exact_rows = (single or bool(getattr(split, "raw_convertible", False))) and not split.data_deletion_files
        total = 0
        for f in files:
            path = str(f.file_path)
            if path.endswith(".parquet"):
                fs, local = filesystem_and_path(path)
                info = ParquetFileInfo.load(local, fs, file_size=int(f.file_size))
                total += sum(info.row_group_bytes(plan.columns))
            else:
                total += int(f.file_size) * 3
        self.estimated_bytes = total

    @property
    def files(self) -> tuple[str, ...]:
        return self._files

    def read(self, plan: ReadPlan) -> Any:
        # with no column asked for, still read one (the key) so that batches carry row counts
        columns = plan.read_columns or list(self._table.primary_keys or plan.table_schema.names[:1])
        builder = self._table.new_read_builder().with_projection(columns)
        if self._predicate is not None:
            builder = builder.with_filter(self._predicate)
        reader = builder.new_read().to_arrow_batch_reader([self._split])
        try:
            for batch in reader:
                if batch.num_rows:
                    import pyarrow as pa

                    target = pa.schema([plan.table_schema.field(n) for n in batch.schema.names])
                    out = plan.finish(batch.cast(target), filtered=False)
                    if out.num_rows:
                        yield out
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()


def create_paimon_table(
    warehouse: str,
    name: str,
    data_or_schema: Any,
    *,
    primary_key: Sequence[str] | None = None,
    partition_by: Sequence[str] | None = None,
    options: dict[str, str] | None = None,
) -> PaimonTable:
    """Create a Paimon table (and write the data, if any).

    Raises:
        TableExistsError: The table exists.
        SchemaError: Key or partition columns are missing.
        UnsupportedOperationError: A partition transform other than identity.
    """
    pypaimon = _pypaimon()
    spec = prepare_create(name, data_or_schema, primary_key, partition_by, identity_only="Paimon")
    schema, data, keys = spec.schema, spec.data, spec.primary_key
    partitions = [column for _, column, _ in spec.partitions]
    if keys and partitions and not set(partitions) <= set(keys):
        msg = f"create Paimon table {name}: a primary key must include the partition columns {partitions}"
        raise SchemaError(msg)
    database, _, _ = name.rpartition(".")
    if not database:
        msg = f"Paimon table names are 'database.table', got {name!r}"
        raise ConfigError(msg)
    catalog = _catalog(warehouse)
    catalog.create_database(database, True)
    try:
        paimon_schema = pypaimon.Schema.from_pyarrow_schema(
            schema, partition_keys=partitions or None, primary_keys=keys or None, options=options or {}
        )
    except (ValueError, TypeError, KeyError) as exc:
        msg = f"create Paimon table {name}: pypaimon cannot store this schema ({exc}); nothing was created"
        raise SchemaError(msg) from exc
    try:
        catalog.create_table(name, paimon_schema, False)
    except Exception as exc:
        if type(exc).__name__ == "TableAlreadyExistException":
            msg = f"Paimon table {name} already exists in {warehouse!r}; open it with lf.open_table('paimon://{warehouse}/{name}')"
            raise TableExistsError(msg) from exc
        raise
    table = PaimonTable(warehouse, name)
    if data is not None and data.num_rows:
        try:
            table.append(data)
        except BaseException:
            catalog.drop_table(name, True)  # creating from data is all or nothing
            raise
    return table
