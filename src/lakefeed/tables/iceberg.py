"""Apache Iceberg tables through pyiceberg (no JVM).

Reading: pyiceberg plans the snapshot's files (partition and metrics pruning); data files
without delete files are read row group by row group through ``pyarrow.dataset`` with
columns matched by Iceberg field id; files with position deletes are read through
pyiceberg's own ``ArrowScan``, which applies them. Writing: pyiceberg transactions, one
atomic catalog commit per write.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakefeed.errors import (
    CommitConflictError,
    CommitError,
    ConfigError,
    SchemaError,
    UnsupportedOperationError,
)
from lakefeed.expr import Expr
from lakefeed.tables.base import ReadPlan, Snapshot, Table, TablePart
from lakefeed.tables.iceberg_filter import to_iceberg_filter
from lakefeed.tables.parts import parquet_file_parts
from lakefeed.tables.schema import conform, normalize_arrow_schema, prepare_create, validate_keys_unique

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.schema import Schema as IcebergSchema
    from pyiceberg.table import FileScanTask
    from pyiceberg.table import Table as PyIcebergTable

__all__ = ["IcebergTable", "create_iceberg_table", "open_static_iceberg", "to_iceberg_filter"]

_MISSING = "\x00lakefeed-missing"
_PLAN_CACHE_SIZE = 64
_plan_cache: OrderedDict[tuple[Any, int, int, str], list[FileScanTask]] = OrderedDict()
_plan_cache_lock = threading.Lock()


# -- partitioning ---------------------------------------------------------------------------


def _transform(name: str, param: int | None) -> Any:
    from pyiceberg import transforms as tr

    simple = {
        "identity": tr.IdentityTransform,
        "year": tr.YearTransform,
        "month": tr.MonthTransform,
        "day": tr.DayTransform,
        "hour": tr.HourTransform,
    }
    if name in simple:
        return simple[name]()
    if name == "bucket":
        return tr.BucketTransform(num_buckets=param or 0)
    return tr.TruncateTransform(width=param or 0)


# -- table ----------------------------------------------------------------------------------


def _translate_write_errors(table: str, operation: str) -> Callable[[Exception], Exception]:
    def translate(exc: Exception) -> Exception:
        from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

        if isinstance(exc, CommitFailedException):
            return CommitConflictError(
                f"{operation} on table {table}: another writer committed first ({exc}); "
                "the table is unchanged, refresh and retry"
            )
        if isinstance(exc, CommitStateUnknownException):
            return CommitError(f"{operation} on table {table}: the catalog did not confirm the commit ({exc})")
        return exc

    return translate


class IcebergTable(Table):
    """An Iceberg table in a pyiceberg catalog. Get one from a :class:`~lakefeed.Warehouse`.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> wh = lf.Warehouse(tempfile.mkdtemp())
        >>> t = wh.create_table("shop.users", pa.table({"id": [1, 2], "name": ["a", "b"]}), primary_key=["id"])
        >>> t.upsert(pa.table({"id": [2, 3], "name": ["B", "c"]}))
        >>> sorted(t.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
        [{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'B'}, {'id': 3, 'name': 'c'}]
    """

    format = "iceberg"

    def __init__(self, table: PyIcebergTable, name: str) -> None:
        super().__init__(name)
        self._tbl = table

    @property
    def pyiceberg_table(self) -> PyIcebergTable:
        """The underlying ``pyiceberg.table.Table``."""
        return self._tbl

    @classmethod
    def from_metadata(cls, location: str, name: str, properties: dict[str, str] | None = None) -> IcebergTable:
        """A read-only table at one metadata file (no catalog): what another process reopens.

        Args:
            location: The table's metadata file (``pyiceberg_table.metadata_location``).
            name: The table's name in messages.
            properties: FileIO properties (credentials, endpoints) to read its files with.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.m", pa.table({"x": [1, 2]}))
            >>> again = IcebergTable.from_metadata(t.pyiceberg_table.metadata_location, t.name)
            >>> again.scan().to_arrow().column("x").to_pylist()
            [1, 2]
        """
        from pyiceberg.table import StaticTable

        return cls(StaticTable.from_metadata(location, properties=dict(properties or {})), name)

    @property
    def schema(self) -> pa.Schema:
        """The current schema as Arrow."""
        return self._arrow_schema(self._tbl.schema())

    @staticmethod
    def _arrow_schema(schema: IcebergSchema) -> pa.Schema:
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        return normalize_arrow_schema(schema_to_pyarrow(schema, include_field_ids=False))

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The primary-key columns (empty when the table has none)."""
        schema = self._tbl.schema()
        return tuple(schema.find_column_name(i) or "" for i in sorted(schema.identifier_field_ids))

    @property
    def partition_by(self) -> tuple[str, ...]:
        """Partition fields, e.g. ``("country", "day(ts)")``."""
        spec = self._tbl.spec()
        schema = self._tbl.schema()
        out: list[str] = []
        for f in spec.fields:
            source = schema.find_column_name(f.source_id) or str(f.source_id)
            name, _, param = str(f.transform).partition("[")
            if name == "identity":
                out.append(source)
            elif param:
                out.append(f"{name}({param.rstrip(']')}, {source})")
            else:
                out.append(f"{name}({source})")
        return tuple(out)

    @property
    def location(self) -> str:
        """Where the table's files live."""
        return self._tbl.location()

    @property
    def snapshot_id(self) -> int | None:
        """The current snapshot's id (None when empty)."""
        snap = self._tbl.current_snapshot()
        return snap.snapshot_id if snap is not None else None

    def snapshots(self) -> list[Snapshot]:
        """All snapshots, oldest first."""
        out = []
        for s in self._tbl.snapshots():
            summary = dict(s.summary.additional_properties) if s.summary is not None else {}
            operation = str(s.summary.operation.value) if s.summary is not None else None
            out.append(
                Snapshot(
                    snapshot_id=s.snapshot_id,
                    timestamp=datetime.fromtimestamp(s.timestamp_ms / 1000, tz=UTC),
                    operation=operation,
                    parent_id=s.parent_snapshot_id,
                    summary=summary,
                )
            )
        return sorted(out, key=lambda s: (s.timestamp, s.snapshot_id))

    def refresh(self) -> IcebergTable:
        """Reload metadata to see other writers' commits; returns ``self``."""
        self._tbl = self._tbl.refresh()
        return self

    def _iceberg_schema_at(self, snapshot_id: int | None) -> IcebergSchema:
        if snapshot_id is None:
            return self._tbl.schema()
        snap = self._tbl.snapshot_by_id(snapshot_id)
        if snap is not None and snap.schema_id is not None:
            for schema in self._tbl.schemas().values():
                if schema.schema_id == snap.schema_id:
                    return schema
        return self._tbl.schema()

    def _schema_at(self, snapshot_id: int | None) -> pa.Schema:
        return self._arrow_schema(self._iceberg_schema_at(snapshot_id))

    def _file_bytes(self, files: set[str]) -> int:
        if self.snapshot_id is None:
            return 0
        return sum(task.file.file_size_in_bytes for task in self._tbl.scan().plan_files())

    def _parts_planner(
        self, snapshot_id: int | None, *, current_schema: bool = True
    ) -> Callable[[ReadPlan], list[TablePart]]:
        # the schema the scan's column names and filter refer to, fixed now (planning is lazy)
        ice_schema = self._iceberg_schema_at(None if current_schema else snapshot_id)

        def plan_parts(plan: ReadPlan) -> list[TablePart]:
            if snapshot_id is None:
                return []
            return self._plan(plan, snapshot_id, ice_schema)

        return plan_parts

    def _plan(self, plan: ReadPlan, snapshot_id: int, ice_schema: IcebergSchema) -> list[TablePart]:
        from concurrent.futures import ThreadPoolExecutor

        from pyiceberg.manifest import FileFormat

        from lakefeed.tables.planning import ParquetFileInfo

        tbl = self._tbl  # one metadata version: pyiceberg binds the filter to its current schema
        row_filter = _to_current_names(to_iceberg_filter(plan.filter, plan.table_schema), ice_schema, tbl.schema())
        try:
            file_tasks = _file_tasks(tbl, snapshot_id, row_filter)
        except ValueError as exc:
            if "equality deletes" in str(exc):
                msg = (
                    f"table {self.name} has equality delete files (written by an engine such as Flink or Spark) "
                    "that lakefeed cannot apply yet; compact the table (rewrite_data_files) to fold them in"
                )
                raise UnsupportedOperationError(msg) from exc
            raise
        fs_cache: dict[str, Any] = {}

        def plan_one(task: FileScanTask) -> list[TablePart]:
            if task.delete_files or task.file.file_format != FileFormat.PARQUET:
                return [_IcebergFilePart(self, task, snapshot_id, ice_schema)]
            fs, path = self._filesystem(task.file.file_path, fs_cache)
            rename = _rename_by_field_id(path, fs, ice_schema, task.file.file_size_in_bytes)
            if rename is None:  # nested fields renamed or replaced since: pyiceberg matches them by id
                return [_IcebergFilePart(self, task, snapshot_id, ice_schema)]
            return parquet_file_parts(path, fs, plan, file_size=task.file.file_size_in_bytes, rename=rename)

        # Footers not yet cached are read in threads first (object stores have latency); planning
        # below then finds every footer in the cache.
        uncached = [
            t
            for t in file_tasks
            if t.file.file_format == FileFormat.PARQUET
            and not ParquetFileInfo.is_cached(t.file.file_path, t.file.file_size_in_bytes)
        ]

        def read_footer(task: FileScanTask) -> None:
            fs, path = self._filesystem(task.file.file_path, fs_cache)
            ParquetFileInfo.load(path, fs, file_size=task.file.file_size_in_bytes)

        if len(uncached) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(uncached)), thread_name_prefix="lakefeed-plan") as pool:
                list(pool.map(read_footer, uncached))
        return [p for task in file_tasks for p in plan_one(task)]

    def _filesystem(self, uri: str, cache: dict[str, Any]) -> tuple[Any, str]:
        from urllib.parse import urlparse

        from pyiceberg.io.pyarrow import PyArrowFileIO

        parsed = urlparse(uri)
        scheme = parsed.scheme or "file"
        key = f"{scheme}://{parsed.netloc}"
        io = self._tbl.io
        if key not in cache:
            if isinstance(io, PyArrowFileIO):
                cache[key] = io.fs_by_scheme(scheme, parsed.netloc)
            else:
                from lakefeed.io import filesystem_and_path

                cache[key] = filesystem_and_path(uri)[0]
        path = parsed.path if scheme == "file" else f"{parsed.netloc}{parsed.path}"
        return cache[key], path

    # -- writes -----------------------------------------------------------------------------

    def _conform(self, data: Any, what: str) -> pa.Table:
        return conform(data, self._write_schema(), table=self.name, what=what)

    def _write_schema(self) -> pa.Schema:
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        return schema_to_pyarrow(self._tbl.schema(), include_field_ids=False)

    def _commit(self, operation: str, action: Callable[[], None]) -> None:
        translate = _translate_write_errors(self.name, operation)
        try:
            action()
        except Exception as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def append(self, data: Any) -> None:
        """Add rows in one atomic commit.

        Raises:
            SchemaError: ``data`` does not fit the table's schema (nothing is written).
        """
        arrow = self._conform(data, "append")
        if arrow.num_rows == 0:
            return
        self._commit("append", lambda: self._tbl.append(arrow))

    def overwrite(self, data: Any, filter: Expr | None = None) -> None:
        """Replace all rows, or only those matching ``filter``, with ``data``, in one commit."""
        arrow = self._conform(data, "overwrite")
        row_filter = to_iceberg_filter(filter, self.schema, exact=True)
        self._commit("overwrite", lambda: self._tbl.overwrite(arrow, overwrite_filter=row_filter))

    def upsert(self, data: Any) -> None:
        """Insert rows, replacing those with the same primary key, in one atomic commit.

        Raises:
            SchemaError: No primary key, duplicate keys in ``data``, or a schema mismatch.
        """
        if not self.primary_key:
            msg = (
                f"upsert into table {self.name} needs a primary key; create the table with "
                "primary_key=[...] or use append"
            )
            raise SchemaError(msg)
        arrow = self._conform(data, "upsert")
        if arrow.num_rows == 0:
            return
        keys = list(self.primary_key)
        validate_keys_unique(arrow, keys, self.name)

        def run() -> None:
            self._tbl.upsert(arrow, join_cols=keys)

        self._commit("upsert", run)

    def delete(self, filter: Expr) -> None:
        """Delete the rows where ``filter`` is true, in one atomic commit."""
        if not isinstance(filter, Expr):
            msg = f"delete on table {self.name} needs a filter such as lf.col('id') == 3, got {filter!r}"
            raise ConfigError(msg)
        row_filter = to_iceberg_filter(filter, self.schema, exact=True)

        def run() -> None:
            with warnings.catch_warnings():  # deleting nothing is a normal no-op, not a warning
                warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                self._tbl.delete(delete_filter=row_filter)

        self._commit("delete", run)


def _file_tasks(tbl: PyIcebergTable, snapshot_id: int, row_filter: BooleanExpression) -> list[FileScanTask]:
    """Pyiceberg's file plan for a snapshot and filter, cached: snapshots never change.

    Re-reading a snapshot (every epoch of a training run) then skips the manifest reads. The
    filter names columns of ``tbl``'s current schema (pyiceberg binds it there), so the key
    holds that schema's id: after a rename the same names mean other columns.
    """
    key = (tbl.metadata.table_uuid, snapshot_id, tbl.metadata.current_schema_id, repr(row_filter))
    with _plan_cache_lock:
        hit = _plan_cache.get(key)
        if hit is not None:
            _plan_cache.move_to_end(key)
            return hit
    scan = tbl.scan(row_filter=row_filter, snapshot_id=snapshot_id, case_sensitive=True)
    tasks = list(scan.plan_files())
    with _plan_cache_lock:
        _plan_cache[key] = tasks
        while len(_plan_cache) > _PLAN_CACHE_SIZE:
            _plan_cache.popitem(last=False)
    return tasks


def _to_current_names(expr: BooleanExpression, schema: IcebergSchema, current: IcebergSchema) -> BooleanExpression:
    """``expr`` (on ``schema``'s names) with each column named as in ``current``, by field id.

    A column dropped since cannot prune: its leaves become true (false under a negation),
    which selects a superset; the exact filter is applied to the rows read.
    """
    from pyiceberg import expressions as ie

    if schema.schema_id == current.schema_id:
        return expr

    def go(e: BooleanExpression, positive: bool) -> BooleanExpression:
        if isinstance(e, ie.And):
            return ie.And(go(e.left, positive), go(e.right, positive))
        if isinstance(e, ie.Or):
            return ie.Or(go(e.left, positive), go(e.right, positive))
        if isinstance(e, ie.Not):
            return ie.Not(go(e.child, not positive))
        if not isinstance(e, ie.UnboundPredicate) or not isinstance(e.term, ie.Reference):
            return e
        field = schema.find_field(e.term.name, case_sensitive=True)
        name = current.find_column_name(field.field_id)
        if name is None:
            dropped: BooleanExpression = ie.AlwaysTrue() if positive else ie.AlwaysFalse()
            return dropped
        ref = ie.Reference(name)
        renamed: BooleanExpression
        if isinstance(e, ie.LiteralPredicate):
            renamed = type(e)(ref, e.literal)
        elif isinstance(e, ie.SetPredicate):
            renamed = type(e)(ref, e.literals)
        else:
            renamed = type(e)(ref)
        return renamed

    return go(expr, True)


def _rename_by_field_id(path: str, fs: Any, schema: IcebergSchema, file_size: int) -> dict[str, str] | None:
    """Table column -> file column where the names differ, matched by field id.

    None when a nested field of the file is stored under another name or id than ``schema``
    gives it (renamed, or dropped and added again): by-name struct casts would misread it.
    """
    from lakefeed.tables.planning import ParquetFileInfo

    info = ParquetFileInfo.load(path, fs, file_size=file_size)
    by_id = info.field_ids()
    if not by_id:  # files imported without field ids: match by name (Iceberg name mapping)
        return {}
    rename: dict[str, str] = {}
    for f in schema.fields:
        stored = by_id.get(f.field_id)
        if stored is None:
            rename[f.name] = _MISSING
            continue
        if stored != f.name:
            rename[f.name] = stored
        if not _nested_ids_agree(f.field_type, info.schema.field(stored).type):
            return None
    return rename


def _nested_ids_agree(ice_type: Any, arrow_type: pa.DataType) -> bool:
    """Whether every nested field a file and the schema share sits at the same path under the same id."""
    from pyiceberg.types import ListType, MapType, NestedField, StructType

    def ice_paths(t: Any, prefix: str, out: dict[int, str]) -> dict[int, str]:
        children: list[tuple[NestedField, str]] = []
        if isinstance(t, StructType):
            children = [(c, f"{prefix}.{c.name}") for c in t.fields]
        elif isinstance(t, ListType):
            children = [(t.element_field, f"{prefix}.element[]")]
        elif isinstance(t, MapType):
            children = [(t.key_field, f"{prefix}.key[]"), (t.value_field, f"{prefix}.value[]")]
        for child, path in children:
            out[child.field_id] = path
            ice_paths(child.field_type, path, out)
        return out

    def file_paths(t: pa.DataType, prefix: str, out: dict[int, str]) -> dict[int, str]:
        import pyarrow as pa

        if pa.types.is_struct(t):
            children = [(t.field(i), f"{prefix}.{t.field(i).name}") for i in range(t.num_fields)]
        elif pa.types.is_map(t):
            children = [(t.key_field, f"{prefix}.key[]"), (t.item_field, f"{prefix}.value[]")]
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            children = [(t.value_field, f"{prefix}.element[]")]
        else:
            return out
        for child, path in children:
            raw = (child.metadata or {}).get(b"PARQUET:field_id")
            if raw is not None:
                out[int(raw)] = path
            file_paths(child.type, path, out)
        return out

    schema_paths = ice_paths(ice_type, "", {})
    stored = file_paths(arrow_type, "", {})
    if not schema_paths or not stored:
        return True  # a primitive column, or nested fields without ids (matched by name)
    stored_ids = {path: i for i, path in stored.items()}
    return all(schema_paths.get(i, path) == path for i, path in stored.items()) and all(
        stored_ids.get(path, i) == i for i, path in schema_paths.items()
    )


class _IcebergFilePart(TablePart):
    """A data file with delete files (or not Parquet): read by pyiceberg, deletes applied."""

    def __init__(self, table: IcebergTable, task: FileScanTask, snapshot_id: int, schema: IcebergSchema) -> None:
        # metadata and io, not the table: a part must pickle (Ray tasks), and a catalog does not
        self._metadata = table.pyiceberg_table.metadata
        self._io = table.pyiceberg_table.io
        self._task = task
        self._schema = schema
        self.path = task.file.file_path
        self.num_rows = task.file.record_count
        self.exact_rows = False
        self.estimated_bytes = 0
        self._estimate()

    def _estimate(self) -> None:
        sizes = self._task.file.column_sizes or {}
        self.estimated_bytes = int(sum(sizes.values()) * 2) if sizes else self._task.file.file_size_in_bytes * 3

    def read(self, plan: ReadPlan) -> Any:
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.io.pyarrow import ArrowScan

        columns = plan.read_columns or plan.table_schema.names[:1]  # keep row counts for columns=[]
        projected = self._schema.select(*columns, case_sensitive=True)
        arrow_scan = ArrowScan(self._metadata, self._io, projected, AlwaysTrue(), case_sensitive=True)
        for batch in arrow_scan.to_record_batches([self._task]):
            if batch.num_rows:
                casted = batch.cast(_target_schema(plan, batch.schema.names))
                out = plan.finish(casted, filtered=False)
                if out.num_rows:
                    yield out


def _target_schema(plan: ReadPlan, names: Sequence[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([plan.table_schema.field(n) for n in names])


def create_iceberg_table(
    catalog: Any,
    identifier: str,
    data_or_schema: Any,
    *,
    primary_key: Sequence[str] | None,
    partition_by: Sequence[str] | None,
    properties: dict[str, str] | None,
) -> PyIcebergTable:
    """Create the table (and append the data, if any) in one catalog commit."""
    spec = prepare_create(identifier, data_or_schema, primary_key, partition_by)
    schema, data, keys, specs = spec.schema, spec.data, spec.primary_key, spec.partitions
    props = {"write.parquet.row-group-limit": "131072", **(properties or {})}
    tx = catalog.create_table_transaction(identifier, schema=schema, properties=props)
    if keys:
        with tx.update_schema() as update:
            update.set_identifier_fields(*keys)
    if specs:
        with tx.update_spec() as spec:
            for name, column, param in specs:
                spec.add_field(column, _transform(name, param), f"{column}_{name}" if name != "identity" else column)
    if data is not None and data.num_rows:
        tx.append(data)
    tx.commit_transaction()
    table: PyIcebergTable = catalog.load_table(identifier)
    return table


def open_static_iceberg(table_dir: str) -> IcebergTable:
    """Open an Iceberg table folder by its newest ``metadata/*.metadata.json`` (read-only)."""
    from pathlib import Path

    from pyiceberg.table import StaticTable

    from lakefeed.errors import TableNotFoundError

    candidates = sorted(Path(table_dir, "metadata").glob("*.metadata.json"), key=lambda p: (p.stat().st_mtime, p.name))
    if not candidates:
        msg = f"{table_dir!r} has a metadata folder but no *.metadata.json; it is not an Iceberg table"
        raise TableNotFoundError(msg)
    static = StaticTable.from_metadata(str(candidates[-1]))
    return IcebergTable(static, Path(table_dir).name)
