"""Ray Data over lakefeed tables: a streaming :class:`LakefeedDatasource` and an atomic :class:`LakefeedDatasink`.

Reading: the driver pins the snapshot and plans the scan into :class:`~lakefeed.ScanTask`s of
about ``target_bytes`` of decoded (Arrow) data each, exactly as the loader does. Each scan task
becomes one Ray read task that runs anywhere in the cluster and yields its rows as blocks of
about ``target_bytes``, with deletes and merges applied: one block, or several where a row group
(the smallest piece a task plans) is larger than the target. Blocks are thus sized by memory,
not by compressed file size, and the object store holds about (read tasks running + blocks
waiting downstream) × ``target_bytes``.

Writing (Iceberg): where Ray knows the dataset's schema without running anything (a read,
``from_arrow``, ``select_columns``), the driver checks it before any task starts; every block is
checked again on its worker before its files are written. Workers write Parquet data files into
the table's data location and return their paths and statistics; the driver commits all of them
in one snapshot. If a block, a worker or the commit fails, the files are deleted and the table
stays at its previous snapshot. (Ray's ``on_write_start`` hook is not used for the check: when
Ray fuses the write with the map before it, the hook sees the map's input schema, not its output.)

This module imports Ray; without it, importing raises :class:`~lakefeed.errors.MissingDependencyError`
(``pip install 'lakefeed[ray]'``). ``lakefeed.ray`` re-exports it on first use.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakefeed._typing import SnapshotRef
from lakefeed.errors import (
    ColumnNotFoundError,
    ConfigError,
    DataFileNotFoundError,
    LakefeedError,
    MissingDependencyError,
    UnsupportedOperationError,
)
from lakefeed.expr import Expr
from lakefeed.tables.base import ReadPlan, Scan, ScanTask, Table
from lakefeed.tables.iceberg_files import WRITE_ID_PROPERTY, IcebergFileAppend, WrittenFile

try:
    import ray
    import ray.data
    from ray.data import Datasink, Datasource, ReadTask
    from ray.data.block import Block, BlockAccessor, BlockMetadata
except ImportError as _exc:  # pragma: no cover - exercised by simulating a missing Ray
    _msg = "lakefeed.ray needs Ray, which is not installed; install it with: pip install 'lakefeed[ray]'"
    raise MissingDependencyError(_msg) from _exc

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data.context import DataContext
    from ray.data.datasource.datasink import WriteResult

__all__ = ["RAY_TARGET_BYTES", "WRITE_ID_PROPERTY", "LakefeedDatasink", "LakefeedDatasource", "read", "write"]

RAY_TARGET_BYTES = 16 << 20
"""Default decoded size of a read task and of a block: a quarter of a table scan's default.

Measured on 2M rows x 100 floats in 50 MB row groups (``benchmarks/ray.py``): at 64 MiB the
blocks were whole row groups and the object store peaked above Ray's own readers' (10 MiB
blocks for ``read_iceberg``); at 16 MiB each row group is three blocks, the store peak is about
half of Ray's and the read rate the same."""

_FILES_PER_TASK = 1_000_000
"""Spacing of the file counters of write tasks, so that file names never collide."""


# -- reading ------------------------------------------------------------------------------------


def _data_context() -> None:
    """Create Ray Data's context quietly: Ray 2.60 emits its own DeprecationWarning while building it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.")
        ray.data.DataContext.get_current()


def _worker() -> str:
    """This process, as a message names it: host, pid and Ray node id."""
    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker, or an old runtime context
        node = "unknown"
    return f"{socket.gethostname()} (pid {os.getpid()}, Ray node {node})"


def _read_error(exc: Exception, path: str, table: str, snapshot_id: int | None, index: int) -> LakefeedError:
    """A lakefeed error naming the file, the table and the worker that could not read it."""
    cause = exc.__cause__ if isinstance(exc, DataFileNotFoundError) and exc.__cause__ is not None else exc
    reason = (str(cause).splitlines() or [type(cause).__name__])[0]
    snapshot = f" at snapshot {snapshot_id}" if snapshot_id is not None else ""
    text = reason.lower()
    missing = isinstance(exc, DataFileNotFoundError) or isinstance(cause, FileNotFoundError)
    denied = isinstance(cause, PermissionError) or "permission denied" in text or "access denied" in text
    what = "is missing" if missing else "is not readable (permission denied)" if denied else "cannot be read"
    msg = (
        f"Ray read task {index} of table {table}{snapshot}: data file {path!r} {what} on worker {_worker()} "
        f"({reason}); every Ray node must reach the warehouse's storage at the same path: keep the warehouse "
        "on object storage (s3://...) or on a filesystem mounted on all nodes, not on one machine's local disk"
    )
    if missing or denied:
        return DataFileNotFoundError(msg)
    return LakefeedError(msg)


FEATURES = "features"
LABEL = "label"


class _Stacked:
    """The block layout of ``read(features=...)``: one float32 tensor column ``features`` [N, F], ``label``.

    The layout of :class:`lakefeed.Loader`'s batches, made in the read task (on the workers, in
    parallel) instead of by the consumer: ``iter_torch_batches`` then converts one tensor column
    per batch, without copying it, instead of one array per feature. The column is pyarrow's
    canonical fixed-shape tensor type, which Ray Data turns into a ``[B, F]`` numpy array or
    tensor as it is. ``label`` and the pass-through ``columns`` keep their Arrow types.
    """

    def __init__(
        self, features: Sequence[str], label: str | None, columns: Sequence[str], fill_null: float | None
    ) -> None:
        self.features = tuple(features)
        self.label = label
        self.columns = tuple(columns)
        self.fill_null = fill_null

    @property
    def read_columns(self) -> list[str]:
        """The columns a read task needs, each once."""
        return list(dict.fromkeys([*self.features, *([self.label] if self.label else []), *self.columns]))

    def check(self, schema: pa.Schema, table: str) -> None:
        """Refuse missing and non-numeric features and a missing label before anything runs (on the driver)."""
        from lakefeed.loader.convert import BatchSpec

        if self.label is not None and self.label not in schema.names:
            msg = f"read(label={self.label!r}) of {table}: no such column; columns are {schema.names}"
            raise ColumnNotFoundError(msg)
        BatchSpec(self.features, None, (), fill_null=self.fill_null).validate(schema, table)

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of the blocks, given the schema of the scanned rows."""
        import pyarrow as pa

        fields = [pa.field(FEATURES, pa.fixed_shape_tensor(pa.float32(), [len(self.features)]))]
        if self.label:
            fields.append(schema.field(self.label).with_name(LABEL))
        fields.extend(schema.field(name) for name in self.columns)
        return pa.schema(fields)

    def block(self, batches: Sequence[pa.RecordBatch], schema: pa.Schema, where: str) -> pa.Table:
        """The rows of ``batches`` (of ``schema``) laid out as one block: the features stacked row-major."""
        import numpy as np
        import pyarrow as pa

        from lakefeed.loader.convert import BatchSpec

        spec = BatchSpec(self.features, None, (), fill_null=self.fill_null)
        matrix = spec.from_batches(batches, where)[FEATURES]  # float32, C order: a new array
        out = self.schema(schema)
        flat = pa.array(np.asarray(matrix).reshape(-1))  # a view of the matrix, no copy
        storage = pa.FixedSizeListArray.from_arrays(flat, len(self.features))
        columns: list[Any] = [pa.ExtensionArray.from_storage(out.field(FEATURES).type, storage)]
        rows = pa.Table.from_batches(batches, schema=schema)
        columns.extend(rows.column(name) for name in [*([self.label] if self.label else []), *self.columns])
        return pa.Table.from_arrays(columns, schema=out)


class _ReadScanTask:
    """The body of one Ray read task: read one scan task on a worker, as blocks of ``block_rows`` rows."""

    def __init__(
        self,
        task: ScanTask,
        *,
        index: int,
        table: str,
        snapshot_id: int | None,
        stacked: _Stacked | None = None,
        block_rows: int | None = None,
    ) -> None:
        self.task = task
        self.index = index
        self.table = table
        self.snapshot_id = snapshot_id
        self.stacked = stacked
        self.block_rows = block_rows
        """Rows per block (the last may hold fewer); None: the task's rows in one block."""

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for part in self.task.parts:
            try:
                yield from ScanTask([part], self.task.plan).read()
            except (DataFileNotFoundError, OSError) as exc:
                raise _read_error(exc, part.path, self.table, self.snapshot_id, self.index) from exc

    def _block(self, batches: list[pa.RecordBatch]) -> pa.Table:
        import pyarrow as pa

        if self.stacked is not None:
            return self.stacked.block(batches, self.task.schema, f"Ray read task {self.index} of table {self.table}")
        return pa.Table.from_batches(batches, schema=self.task.schema)

    def __call__(self) -> Iterator[pa.Table]:
        # A block is yielded as soon as its rows are read, so the first rows move on (and the
        # object store holds one block, not the task) while the rest of the task still decodes.
        limit = self.block_rows
        pending: list[pa.RecordBatch] = []
        held = blocks = 0
        for batch in self._batches():
            while limit is not None and held + batch.num_rows >= limit:
                take = limit - held
                pending.append(batch.slice(0, take))
                yield self._block(pending)
                pending, held, batch, blocks = [], 0, batch.slice(take), blocks + 1
            if batch.num_rows:
                pending.append(batch)
                held += batch.num_rows
        if pending or not blocks:  # the rest, or the one (maybe empty) block of a task
            yield self._block(pending)


def _block_rows(task: ScanTask, target_bytes: int) -> int | None:
    """Rows per block for a task estimated above 1.5× ``target_bytes``; None for one block.

    Ray gathers a read task's blocks until they pass its block size (the dataset's, set to
    ``target_bytes`` by :func:`read`) and cuts one of 1.5× or more into one of that size and the
    rest. Blocks of about 1.2× the target (equal row counts) pass through as they are.
    """
    if task.num_rows <= 1 or task.estimated_bytes <= 1.5 * target_bytes:
        return None
    blocks = round(task.estimated_bytes / (1.2 * target_bytes))
    return -(-task.num_rows // blocks) if blocks > 1 else None


def _block_metadata(*, num_rows: int | None, size_bytes: int, files: Sequence[str], schema: pa.Schema) -> BlockMetadata:
    fields = {f.name for f in dataclasses.fields(BlockMetadata)}
    kwargs: dict[str, Any] = {"num_rows": num_rows, "size_bytes": size_bytes, "input_files": list(files)}
    kwargs.update({"exec_stats": None} if "exec_stats" in fields else {})
    kwargs.update({"schema": schema} if "schema" in fields else {})  # older Ray kept the schema here
    return BlockMetadata(**kwargs)


def _read_task(read_fn: _ReadScanTask, metadata: BlockMetadata, schema: pa.Schema, row_limit: int | None) -> ReadTask:
    params = inspect.signature(ReadTask).parameters
    kwargs: dict[str, Any] = {}
    if "schema" in params:
        kwargs["schema"] = schema
    if "per_task_row_limit" in params and row_limit is not None:
        kwargs["per_task_row_limit"] = row_limit
    return ReadTask(read_fn, metadata, **kwargs)


class LakefeedDatasource(Datasource):
    """A Ray Data source over planned :class:`~lakefeed.ScanTask`s: one read task per scan task.

    Each read task carries the scan task's row count (where it is exact) and its estimated
    decoded size as ``BlockMetadata``, so Ray schedules by memory. Ray's ``parallelism`` is
    ignored: the tasks were already sized by ``target_bytes``. A read task yields one block,
    or blocks of about ``target_bytes`` where its row groups hold more than 1.5× that (a row
    group is the smallest piece a task plans). Usually made by :func:`read`; a dataset made with
    ``ray.data.read_datasource`` keeps those blocks only if its ``context.target_max_block_size``
    is ``target_bytes``, as :func:`read` sets it (Ray merges smaller ones up to its own size).

    Args:
        tasks: The scan tasks, planned on the driver (they pickle to the workers).
        schema: The schema of the rows the tasks read.
        table: The table's name, for messages.
        snapshot_id: The pinned snapshot (None for plain Parquet), for messages and lineage.
        stacked: The block layout of ``read(features=...)``; None for the rows as they are.
        target_bytes: The decoded size the tasks were planned for; a task estimated above 1.5×
            this yields blocks of about this size. None: one block per task.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.src", pa.table({"x": list(range(500))}))
        >>> t.append(pa.table({"x": list(range(500, 1000))}))
        >>> source = LakefeedDatasource.from_scan(t.scan(), target_bytes=4000)
        >>> [r.metadata.num_rows for r in source.get_read_tasks(1)], source.estimate_inmemory_data_size()
        ([500, 500], 8000)
    """

    def __init__(
        self,
        tasks: Sequence[ScanTask],
        *,
        schema: pa.Schema,
        table: str,
        snapshot_id: int | None = None,
        stacked: _Stacked | None = None,
        target_bytes: int | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Ray's __init__ is unannotated
        self.tasks: list[ScanTask] = list(tasks)
        self.schema = schema
        self.table = table
        self.snapshot_id = snapshot_id
        self.stacked = stacked
        self.target_bytes = target_bytes
        self.block_schema = stacked.schema(schema) if stacked is not None else schema
        """The schema of the blocks (the scanned rows' unless ``stacked``)."""

    @classmethod
    def from_scan(
        cls, scan: Scan, *, target_bytes: int = RAY_TARGET_BYTES, stacked: _Stacked | None = None
    ) -> LakefeedDatasource:
        """Plan ``scan`` on this machine into tasks of about ``target_bytes`` decoded bytes each."""
        tasks = scan.tasks(target_bytes)
        return cls(
            tasks,
            schema=scan.schema,
            table=scan.table.name,
            snapshot_id=scan.snapshot_id,
            stacked=stacked,
            target_bytes=target_bytes,
        )

    def get_name(self) -> str:
        """The name Ray shows for the read operator."""
        return "Lakefeed"

    def estimate_inmemory_data_size(self) -> int:
        """The decoded size of all tasks together, in bytes."""
        return sum(t.estimated_bytes for t in self.tasks)

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: DataContext | None = None,
    ) -> list[ReadTask]:
        """One Ray read task per scan task (``parallelism`` is ignored; the tasks are sized by memory)."""
        out: list[ReadTask] = []
        for index, task in enumerate(self.tasks):
            exact = task.exact_rows and task.plan.filter is None
            metadata = _block_metadata(
                num_rows=task.num_rows if exact else None,
                size_bytes=task.estimated_bytes,
                files=task.files,
                schema=self.block_schema,
            )
            read_fn = _ReadScanTask(
                task,
                index=index,
                table=self.table,
                snapshot_id=self.snapshot_id,
                stacked=self.stacked,
                block_rows=_block_rows(task, self.target_bytes) if self.target_bytes else None,
            )
            out.append(_read_task(read_fn, metadata, self.block_schema, per_task_row_limit))
        if not out:  # an empty scan still has a schema: one task yielding no rows
            empty = ScanTask([], _empty_plan(self.schema, self.table))
            metadata = _block_metadata(num_rows=0, size_bytes=0, files=[], schema=self.block_schema)
            read_fn = _ReadScanTask(empty, index=0, table=self.table, snapshot_id=None, stacked=self.stacked)
            out.append(_read_task(read_fn, metadata, self.block_schema, None))
        return out


def _empty_plan(schema: pa.Schema, table: str) -> ReadPlan:
    return ReadPlan(table, schema, schema, None, None)


def _as_scan(
    source: Table | Scan | str | os.PathLike[str],
    columns: Sequence[str] | None,
    filter: Expr | None,
    snapshot: SnapshotRef | None,
) -> Scan:
    if isinstance(source, Scan):
        given = [n for n, v in (("columns", columns), ("filter", filter), ("snapshot", snapshot)) if v is not None]
        if given:
            msg = f"read(scan, {'=..., '.join(given)}=...): a Scan already fixes them; pass them to table.scan(...)"
            raise ConfigError(msg)
        return source
    if isinstance(source, Table):
        return source.scan(columns=columns, filter=filter, snapshot=snapshot)
    if isinstance(source, (str, os.PathLike)):
        from lakefeed.tables import open_table

        return open_table(source).scan(columns=columns, filter=filter, snapshot=snapshot)
    msg = (
        "read() takes a lakefeed Table, a Scan or a table URI such as iceberg://HOME/ns.table, "
        f"got {type(source).__name__}"
    )
    raise ConfigError(msg)


def _stacking(
    columns: Sequence[str] | None, features: Sequence[str] | None, label: str | None, fill_null: float | None
) -> _Stacked | None:
    """The block layout ``read``'s arguments ask for: None for the rows as they are."""
    if features is None:
        if label is not None or fill_null is not None:
            msg = "read(label=..., fill_null=...) go with features=[...]: the columns to stack into 'features'"
            raise ConfigError(msg)
        return None
    if isinstance(features, str) or not features:
        msg = f"read(features=...) takes a non-empty list of column names, got {features!r}"
        raise ConfigError(msg)
    taken = [FEATURES, *([LABEL] if label else [])]
    clash = [name for name in columns or () if name in taken]
    if clash:
        msg = f"read(features=...) makes the columns {taken}; columns={list(columns or ())} may not also hold {clash}"
        raise ConfigError(msg)
    return _Stacked(features, label, columns or (), fill_null)


def read(
    source: Table | Scan | str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    filter: Expr | None = None,
    snapshot: SnapshotRef | None = None,
    target_bytes: int = RAY_TARGET_BYTES,
    concurrency: int | None = None,
    features: Sequence[str] | None = None,
    label: str | None = None,
    fill_null: float | None = None,
) -> ray.data.Dataset:
    """Read a table (Iceberg, Paimon, Delta or Parquet) as a streaming Ray Dataset.

    The driver resolves the snapshot and plans the scan; each planned task becomes one Ray
    read task yielding blocks of about ``target_bytes`` in memory (one block, unless a row group
    is larger than 1.5× the target), with deletes and merges applied. Nothing is read until the
    dataset is consumed, and the dataset reads the same snapshot however late that is. Starts a
    local Ray if none is running (as Ray Data does); call ``ray.init(...)`` first to choose the
    cluster.

    By default the blocks hold the table's columns as they are. With ``features=[...]`` they
    hold what a :class:`lakefeed.Loader` batch holds: ``"features"``, the named columns stacked
    into one ``float32`` tensor column of shape ``[N, F]`` (pyarrow's fixed-shape tensor type),
    ``"label"`` and the ``columns`` passed through. The stacking runs in the read tasks, on the
    workers; ``iter_torch_batches`` / ``iter_batches`` then hand out ``batch["features"]`` as
    one ``[B, F]`` tensor or array without copying it, instead of converting one array per
    feature and leaving the stacking to the consumer (at 100 features and small batches that
    conversion, not reading, limits the rate).

    Args:
        source: A table, a :class:`~lakefeed.Scan` (then leave ``columns``, ``filter`` and
            ``snapshot`` unset), or a URI as :func:`lakefeed.open_table` takes.
        columns: Columns to read, in that order; all when None. With ``features``: the
            columns passed through next to ``"features"`` and ``"label"`` (none when None).
        filter: A filter such as ``lf.col("a") > 3``; applied exactly, pushed down to files.
        snapshot: A snapshot id or a datetime; the current snapshot when None.
        target_bytes: Decoded (Arrow) size of one read task and of a block (default 16 MiB,
            :data:`RAY_TARGET_BYTES`; smaller blocks, less memory, more tasks). The object store
            holds about (read tasks running + blocks queued + blocks being consumed) ×
            ``target_bytes``. A task is at least one row group; one larger than 1.5× this is
            read as one task and handed out as blocks of about this size. The dataset's
            ``DataContext.target_max_block_size`` is set to this (Ray would otherwise merge or
            cut the blocks to its own size), and the operators after the read inherit it.
        concurrency: At most this many read tasks at once (Ray's default when None).
        features: Numeric columns to stack, in that order, into the ``"features"`` tensor
            column (cast to ``float32``); None keeps the rows as they are.
        label: With ``features``: a column handed out as ``"label"``, of its own type.
        fill_null: With ``features``: the value of null features; None makes a null an error.

    Returns:
        A ``ray.data.Dataset`` of the scan's rows.

    Raises:
        ConfigError: ``source`` is of another type, a Scan came with ``columns``/``filter``/``snapshot``,
            ``label``/``fill_null`` came without ``features``, or ``columns`` names ``"features"``/``"label"``.
        ColumnNotFoundError: A column of ``columns``, ``features``, ``label`` or the filter is not in the table.
        SchemaError: A feature is not a number (or boolean). When the dataset runs: a feature
            holds nulls and ``fill_null`` is None.
        SnapshotNotFoundError: ``snapshot`` names no snapshot of the table.
        DataFileNotFoundError: (when the dataset runs) a worker cannot find or may not read a
            data file; the message names the file and the worker.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, ray, tempfile
        >>> _ = ray.init(num_cpus=1, include_dashboard=False, object_store_memory=80 << 20, log_to_driver=False)
        >>> data = pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]})
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.r", data)
        >>> ds = lf.ray.read(t, columns=["y"], filter=lf.col("x") >= 2)
        >>> sorted(row["y"] for row in ds.iter_rows())
        ['b', 'c']
        >>> batch = lf.ray.read(t, features=["x"], label="y").take_batch(2)
        >>> batch["features"].shape, batch["features"].dtype, list(batch["label"])
        ((2, 1), dtype('float32'), ['a', 'b'])
        >>> ray.shutdown()
    """
    _data_context()
    stacked = _stacking(columns, features, label, fill_null)
    if stacked is not None and not isinstance(source, Scan):
        columns = stacked.read_columns  # the features, the label and the pass-through columns
    scan = _as_scan(source, columns, filter, snapshot)
    if stacked is not None:
        stacked.check(scan.schema, scan.table.name)
    datasource = LakefeedDatasource.from_scan(scan, target_bytes=target_bytes, stacked=stacked)
    # One read task per scan task: Ray would otherwise split each task's blocks to reach its own
    # default parallelism, undoing the sizing by memory.
    dataset: ray.data.Dataset = ray.data.read_datasource(
        datasource, override_num_blocks=max(1, len(datasource.tasks)), concurrency=concurrency
    )
    # Ray merges a read task's blocks up to its own block size (128 MiB by default) and slices
    # larger ones: the dataset's copy of the context gets ours, or the blocks of a large row
    # group would be merged back into one.
    dataset.context.target_max_block_size = target_bytes
    return dataset


# -- writing ------------------------------------------------------------------------------------


class _WrittenFiles:
    """What one Ray write task wrote: Iceberg data files (path, row count, column statistics)."""

    def __init__(self, data_files: list[WrittenFile]) -> None:
        self.data_files = data_files

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.data_files]


class LakefeedDatasink(Datasink[_WrittenFiles]):
    """A Ray Data sink appending a dataset to an Iceberg table in one atomic commit.

    Workers check each block against the table's schema and write Parquet data files into the
    table's data location; :meth:`on_write_complete` commits all of them as one snapshot whose
    summary records the write id (:data:`WRITE_ID_PROPERTY`). On any failure the files written
    so far are deleted and the table is unchanged. Usually made by :func:`write`.

    Args:
        table: The Iceberg table to append to.
        snapshot_properties: Extra properties for the new snapshot's summary.

    Raises:
        UnsupportedOperationError: The table is not an Iceberg table.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.sink", pa.table({"x": [1]}))
        >>> sink = LakefeedDatasink(t)
        >>> sink.validate_schema(pa.schema([("x", pa.int32())]))  # int32 widens to int64: fine
        >>> sink.validate_schema(pa.schema([("x", pa.string())]))
        Traceback (most recent call last):
        ...
        lakefeed.errors.SchemaError: Ray write to table demo.sink does not fit its schema: ...
    """

    def __init__(self, table: Table, *, snapshot_properties: Mapping[str, str] | None = None) -> None:
        from lakefeed.tables.iceberg import IcebergTable

        if not isinstance(table, IcebergTable):
            msg = (
                f"Ray writes commit to Iceberg tables; {table.format} table {table.name} is not one: "
                "append to it from the driver with table.append(...) per batch instead"
            )
            raise UnsupportedOperationError(msg)
        # the append pickles to the workers without the table's catalog; it commits on the driver
        self._append = IcebergFileAppend(table, what="Ray write", snapshot_properties=snapshot_properties)
        self.table_name = table.name
        self.write_id = self._append.write_id
        self.snapshot_id: int | None = None
        """The snapshot the write committed (None before, or when there was nothing to write)."""

    def get_name(self) -> str:
        """The name Ray shows for the write operator."""
        return "Lakefeed"

    def validate_schema(self, schema: pa.Schema) -> None:
        """Raise :class:`~lakefeed.errors.SchemaError` unless data of ``schema`` fits the table.

        Columns may come in any order and widen safely; nullable columns may be missing.
        """
        self._append.check_schema(schema)

    def write(self, blocks: Iterable[Block], ctx: Any) -> _WrittenFiles:
        """Write blocks as data files (on a worker); on failure delete them and re-raise."""
        first_file = int(getattr(ctx, "task_idx", 0)) * _FILES_PER_TASK
        tables = (BlockAccessor.for_block(block).to_arrow() for block in blocks)
        return _WrittenFiles(self._append.write(tables, first_file=first_file))

    def on_write_complete(self, write_result: WriteResult[_WrittenFiles]) -> None:
        """Commit every written file in one Iceberg snapshot (on the driver); clean up if that fails."""
        files = [f for r in write_result.write_returns if r is not None for f in r.data_files]
        self.snapshot_id = self._append.commit(files)

    def on_write_failed(self, error: Exception) -> None:
        """Delete every file this write made (the table was not changed)."""
        self._append.abort()


def _writable(table: Table | str | os.PathLike[str]) -> Table:
    if isinstance(table, Table):
        return table
    if isinstance(table, (str, os.PathLike)):
        from lakefeed.tables import open_table

        return open_table(table)
    msg = f"write() takes a lakefeed Table or a table URI such as iceberg://HOME/ns.table, got {type(table).__name__}"
    raise ConfigError(msg)


def write(
    dataset: ray.data.Dataset,
    table: Table | str | os.PathLike[str],
    *,
    snapshot_properties: Mapping[str, str] | None = None,
    concurrency: int | None = None,
) -> int | None:
    """Append a Ray Dataset to an Iceberg table in one atomic commit: all blocks or none.

    The dataset's schema is checked against the table on the driver before anything runs where
    Ray knows it up front, and every block again on its worker before its files are written.
    Workers write Parquet data files into the table's data location; the driver commits them as
    one snapshot. If a block, a worker or the commit fails, the files are deleted and the table
    keeps its previous snapshot.

    Args:
        dataset: The rows to append; columns may come in any order and widen safely.
        table: An Iceberg table, or a URI such as ``iceberg://HOME/ns.table``.
        snapshot_properties: Extra properties for the new snapshot's summary.
        concurrency: At most this many write tasks at once (Ray's default when None).

    Returns:
        The id of the new snapshot, or None when the dataset had no rows (nothing is committed).

    Raises:
        SchemaError: The dataset does not fit the table's schema (nothing is written).
        UnsupportedOperationError: The table is not an Iceberg table.
        CommitConflictError: Other writers kept committing first, or changed the table's schema.
        CommitError: The catalog refused the commit (the table is unchanged) or could not confirm it.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, ray, tempfile
        >>> _ = ray.init(num_cpus=1, include_dashboard=False, object_store_memory=80 << 20, log_to_driver=False)
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.w", pa.schema([("x", pa.int64())]))
        >>> snapshot_id = lf.ray.write(ray.data.range(100).map_batches(lambda b: {"x": b["id"] * 2}), t)
        >>> t.refresh().snapshot_id == snapshot_id, t.scan().count()
        (True, 100)
        >>> ray.shutdown()
    """
    import pyarrow as pa

    _data_context()
    target = _writable(table)
    sink = LakefeedDatasink(target, snapshot_properties=snapshot_properties)
    known = dataset.schema(fetch_if_missing=False)
    base = getattr(known, "base_schema", None)
    if isinstance(base, pa.Schema):
        sink.validate_schema(base)  # before any task runs
    # All blocks or none: Ray skips up to max_errored_blocks failed tasks and still completes the
    # write, which would commit the other blocks; no block may fail here, whatever the context says.
    contexts = {id(c): c for c in (getattr(dataset, "context", None), ray.data.DataContext.get_current()) if c}
    tolerated = {key: c.max_errored_blocks for key, c in contexts.items()}
    try:
        for c in contexts.values():
            c.max_errored_blocks = 0
        dataset.write_datasink(sink, concurrency=concurrency)
    finally:
        for key, c in contexts.items():
            c.max_errored_blocks = tolerated[key]
    if sink.snapshot_id is None and not isinstance(base, pa.Schema):
        # no rows, so no task checked a block: the schema must still fit
        fetched = getattr(dataset.schema(), "base_schema", None)
        if isinstance(fetched, pa.Schema):
            sink.validate_schema(fetched)
    target.refresh()
    return sink.snapshot_id
