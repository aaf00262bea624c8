"""Iceberg appends whose data files are written apart, in other processes, and committed together.

:class:`IcebergFileAppend` is made where the catalog is (the driver), pickles without the
catalog to the processes that hold the data (Ray workers), which :meth:`~IcebergFileAppend.write`
Parquet data files into the table's data location and send back :class:`WrittenFile` records;
the driver then commits all of them as one snapshot (:meth:`~IcebergFileAppend.commit`) or
deletes them (:meth:`~IcebergFileAppend.abort`). All files or none: whatever fails, the files are
deleted and the table keeps its previous snapshot. The new snapshot's summary records the append's id
under :data:`WRITE_ID_PROPERTY`.

pyiceberg writes the files (field ids, partition split, statistics and file naming as in its
own ``append``) and commits them; its exceptions are translated here into
:class:`~lakefeed.errors.CommitError` and :class:`~lakefeed.errors.CommitConflictError`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal

from lakefeed.errors import CommitConflictError, CommitError, ConfigError
from lakefeed.tables.schema import conform

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile

    from lakefeed.tables.iceberg import IcebergTable

__all__ = ["COMMIT_ATTEMPTS", "WRITE_ID_PROPERTY", "AppendState", "IcebergFileAppend", "WrittenFile"]

logger = logging.getLogger(__name__)

WRITE_ID_PROPERTY: Final = "lakefeed.write-id"
"""Snapshot summary property holding the id of the write that made the snapshot."""
COMMIT_ATTEMPTS: Final = 3
"""How often a commit is tried when other writers keep committing first."""

AppendState = Literal["writing", "committed", "unknown", "aborted"]
"""Where an :class:`IcebergFileAppend` stands; ``"unknown"``: the catalog did not confirm the commit."""


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """One data file written for an :class:`IcebergFileAppend`, not yet committed (it pickles).

    Attributes:
        path: The file's URI.
        data_file: pyiceberg's record of the file (partition, row count, column statistics),
            what the commit adds to the table.
    """

    path: str
    data_file: DataFile = dataclasses.field(repr=False)


class IcebergFileAppend:
    """One atomic append to an Iceberg table, of data files written apart and committed together.

    Make it where the table's catalog is; it pickles (without the catalog) to the processes
    that write the files with :meth:`write`. Give every file they wrote to :meth:`commit`, in
    the process that made it: one snapshot adds all of them, or, on failure, every file of the
    append is deleted and the table is unchanged. :meth:`abort` deletes them without committing.

    Args:
        table: The Iceberg table to append to; its schema and partitioning at this moment are
            the ones the files are written for.
        what: How messages name the write, e.g. ``"Ray write"``.
        snapshot_properties: Extra properties for the new snapshot's summary.
        attempts: Commits tried while other writers keep committing first (appends commute,
            so each retry adds the same files on top of the newer snapshot).

    Raises:
        ConfigError: ``attempts`` is less than 1.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, pickle, tempfile
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.files", pa.schema([("x", pa.int64())]))
        >>> append = IcebergFileAppend(t, what="backfill")
        >>> worker = pickle.loads(pickle.dumps(append))  # as another process gets it
        >>> files = worker.write([pa.table({"x": [1, 2]}), pa.table({"x": [3]})])
        >>> len(files), t.refresh().snapshot_id is None  # written, not yet visible
        (2, True)
        >>> append.commit(files) == t.refresh().snapshot_id, t.scan().count(), append.state
        (True, 3, 'committed')
    """

    def __init__(
        self,
        table: IcebergTable,
        *,
        what: str = "write",
        snapshot_properties: Mapping[str, str] | None = None,
        attempts: int = COMMIT_ATTEMPTS,
    ) -> None:
        if attempts < 1:
            msg = f"{what} to table {table.name}: attempts must be at least 1, got {attempts}"
            raise ConfigError(msg)
        ice = table.pyiceberg_table
        self._table: IcebergTable | None = table  # only where it was made: a catalog does not pickle
        self.table_name = table.name
        self.what = what
        self.write_id = uuid.uuid4()
        """The append's id: in its files' names and in its snapshot's summary (:data:`WRITE_ID_PROPERTY`)."""
        self.snapshot_id: int | None = None
        """The snapshot the append committed (None before, or when there was nothing to commit)."""
        self.schema: pa.Schema = table.schema
        """The table's schema (Arrow) that the data must fit."""
        self._attempts = attempts
        self._properties = {**(snapshot_properties or {}), WRITE_ID_PROPERTY: str(self.write_id)}
        self._metadata = ice.metadata
        self._io: FileIO = ice.io
        self._schema_id = ice.metadata.current_schema_id
        self._spec_id = ice.metadata.default_spec_id
        self._written: list[str] = []
        self._commit_ids: list[str] = []
        self._state: AppendState = "writing"

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    @property
    def state(self) -> AppendState:
        """``"writing"`` until :meth:`commit` or :meth:`abort`, then ``"committed"``, ``"aborted"`` or ``"unknown"``."""
        return self._state

    def check_schema(self, schema: pa.Schema) -> None:
        """Raise :class:`~lakefeed.errors.SchemaError` unless data of ``schema`` fits the table.

        Columns may come in any order and widen safely; nullable columns may be missing.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.check", pa.table({"x": [1]}))
            >>> IcebergFileAppend(t).check_schema(pa.schema([("x", pa.int32())]))  # int32 widens to int64
        """
        conform(schema.empty_table(), self.schema, table=self.table_name, what=self.what)

    def write(self, data: Iterable[pa.Table], *, first_file: int = 0) -> list[WrittenFile]:
        """Write each table of ``data`` as Parquet data files of the table (split by partition); commit nothing.

        Every table is checked against the table's schema before its files are written; empty
        tables are skipped. All or none: if a table does not fit, a write fails or ``data``
        itself raises, the files this call wrote are deleted and the error is raised again.

        Args:
            data: The rows to write, as Arrow tables (a generator is consumed as it goes).
            first_file: The number of the first file, for names unique across the processes
                writing for this append (pyiceberg names a file by the append's id and a counter).

        Returns:
            The files written, to pass to :meth:`commit`.

        Raises:
            SchemaError: A table does not fit the table's schema.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.write", pa.table({"x": [1]}))
            >>> [f.data_file.record_count for f in IcebergFileAppend(t).write([pa.table({"x": [2, 3]})])]
            [2]
        """
        written: list[WrittenFile] = []
        counter = itertools.count(first_file)
        try:
            for table in data:
                if table.num_rows == 0:
                    # nothing to write, but a column the table lacks is still an error (the types of
                    # columns with no values say nothing: they are often inferred)
                    if any(n not in self.schema.names for n in table.column_names):
                        conform(table, self.schema, table=self.table_name, what=self.what)  # raises, naming them
                    continue
                checked = conform(table, self.schema, table=self.table_name, what=self.what)
                written.extend(self._write_data_files(checked, counter))
        except BaseException:
            _delete_files(self._io, [f.path for f in written])
            raise
        return written

    def commit(self, files: Sequence[WrittenFile]) -> int | None:
        """Add ``files`` to the table in one snapshot; on failure delete every file of the append.

        Runs in the process that made the append (it needs the catalog). The table's schema and
        partitioning must be those the files were written for; when another writer commits
        first the commit is retried on the newer snapshot, up to ``attempts`` times.

        Args:
            files: Every file written for the append (by :meth:`write`, in any process).

        Returns:
            The new snapshot's id, or None when ``files`` is empty (nothing is committed).

        Raises:
            CommitConflictError: Other writers kept committing first, or changed the table's
                schema or partitioning (the files are deleted, the table is unchanged).
            CommitError: The catalog refused the commit (the files are deleted, the table is
                unchanged), or could not confirm it (the files are kept and :attr:`state` is
                ``"unknown"``), or the append was already committed or aborted.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.commit", pa.table({"x": [1]}))
            >>> append = IcebergFileAppend(t, snapshot_properties={"source": "doc"})
            >>> snapshot_id = append.commit(append.write([pa.table({"x": [2]})]))
            >>> summary = t.refresh().snapshots()[-1].summary
            >>> summary["source"], summary[WRITE_ID_PROPERTY] == str(append.write_id), t.scan().count()
            ('doc', True, 2)
        """
        if self._state != "writing":
            msg = f"{self.what} to table {self.table_name}: this append is already {self._state}; start a new one"
            raise CommitError(msg)
        self._written = [f.path for f in files]
        if not files:
            self._state = "committed"
            return None
        try:
            self._commit([f.data_file for f in files])
        except BaseException:
            self.abort()
            raise
        return self.snapshot_id

    def abort(self) -> None:
        """Delete every file of the append (the table was not changed); nothing when it was committed.

        Deletes the files given to :meth:`commit`, those of the append found in the table's data
        location (written by processes that finished before a failure: known only by the
        append's id in their names) and the manifests of commit attempts that did not land.
        Best effort: files that cannot be deleted are logged. With :attr:`state` ``"unknown"``
        the files are kept: they may belong to a snapshot.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile, pyarrow.fs as pafs
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("demo.abort", pa.table({"x": [1]}))
            >>> append = IcebergFileAppend(t)
            >>> path = append.write([pa.table({"x": [2]})])[0].path.removeprefix("file://")
            >>> append.abort()
            >>> pafs.LocalFileSystem().get_file_info(path).type == pafs.FileType.NotFound, append.state
            (True, 'aborted')
        """
        if self._state != "writing":
            return
        self._state = "aborted"
        data_path, _ = self._metadata_paths()
        doomed = list(self._written)
        try:
            # files of writers that finished before the failure are known only by their names
            doomed += _list_files(self._io, data_path, str(self.write_id))
        except Exception as exc:
            logger.warning(
                "%s %s to %s: cannot list files to clean up: %s", self.what, self.write_id, self.table_name, exc
            )
        left = _delete_files(self._io, doomed)
        if left:
            logger.warning("%s %s to %s left file(s) behind: %s", self.what, self.write_id, self.table_name, left[:5])
        self._delete_manifests(self._commit_ids)  # of commit attempts that did not land

    # -- internals --------------------------------------------------------------------------

    def _write_data_files(self, data: pa.Table, counter: itertools.count[int]) -> list[WrittenFile]:
        """Write ``data`` as Parquet data files of the table (split by partition), as ``Table.append`` does."""
        # pyiceberg's own writer: field ids, partition split, statistics and file naming as in its append
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        files = _dataframe_to_data_files(
            table_metadata=self._metadata, df=data, io=self._io, write_uuid=self.write_id, counter=counter
        )
        return [WrittenFile(str(f.file_path), f) for f in files]

    def _commit(self, files: list[DataFile]) -> None:
        from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

        table = self._table
        if table is None:
            msg = (
                f"{self.what} to table {self.table_name}: the commit runs in the process that made the append "
                "(a catalog does not pickle)"
            )
            raise CommitError(msg)
        for _ in range(self._attempts):
            ice = table.refresh().pyiceberg_table
            if (ice.metadata.current_schema_id, ice.metadata.default_spec_id) != (self._schema_id, self._spec_id):
                msg = (
                    f"{self.what} to table {self.table_name}: the table's schema or partitioning changed while the "
                    "data files were written; the files were deleted and the table is unchanged, retry the write"
                )
                raise CommitConflictError(msg)
            try:
                tx = ice.transaction()
                with tx.update_snapshot(snapshot_properties=self._properties).fast_append() as append:
                    for data_file in files:
                        append.append_data_file(data_file)
                self._commit_ids.append(str(append.commit_uuid))
                tx.commit_transaction()
            except CommitFailedException:
                continue  # another writer committed first: appends commute, redo on the new snapshot
            except CommitStateUnknownException as exc:
                self._state = "unknown"
                raise CommitError(self._unknown_message(exc)) from exc
            except Exception as exc:
                if self._committed_after_error(table):
                    break
                if self._state == "unknown":
                    raise CommitError(self._unknown_message(exc)) from exc
                msg = f"{self.what} to table {self.table_name} could not be committed ({exc}); the table is unchanged"
                raise CommitError(msg) from exc
            self._state = "committed"
            snapshot = ice.current_snapshot()
            self.snapshot_id = snapshot.snapshot_id if snapshot is not None else None
            break
        else:
            msg = (
                f"{self.what} to table {self.table_name}: other writers committed first {self._attempts} times; "
                "the data files were deleted and the table is unchanged, retry the write"
            )
            raise CommitConflictError(msg)
        # manifests written by attempts that lost to another writer belong to no snapshot
        self._delete_manifests(self._commit_ids[:-1])

    def _unknown_message(self, exc: Exception) -> str:
        return (
            f"{self.what} to table {self.table_name}: the catalog did not confirm the commit ({exc}); the data "
            f"files were kept: a snapshot whose summary has {WRITE_ID_PROPERTY}={self.write_id} in "
            "table.snapshots() means it was committed, otherwise the files can be deleted"
        )

    def _committed_after_error(self, table: IcebergTable) -> bool:
        """After an unexpected commit error: whether the snapshot landed anyway (sets the state either way)."""
        try:
            snapshots = table.refresh().snapshots()
        except Exception:  # the catalog cannot tell: the files must stay
            self._state = "unknown"
            return False
        ours = [s for s in snapshots if s.summary.get(WRITE_ID_PROPERTY) == str(self.write_id)]
        if not ours:
            return False
        self._state = "committed"
        self.snapshot_id = ours[-1].snapshot_id
        return True

    def _metadata_paths(self) -> tuple[str, str]:
        location = self._metadata.location.rstrip("/")
        properties = self._metadata.properties
        data_path = properties.get("write.data.path", f"{location}/data").rstrip("/")
        metadata_path = properties.get("write.metadata.path", f"{location}/metadata").rstrip("/")
        return data_path, metadata_path

    def _delete_manifests(self, commit_ids: Sequence[str]) -> None:
        _, metadata_path = self._metadata_paths()
        try:
            doomed = [p for commit_id in commit_ids for p in _list_files(self._io, metadata_path, commit_id)]
        except Exception as exc:
            logger.warning(
                "%s %s to %s: cannot list manifests to clean up: %s", self.what, self.write_id, self.table_name, exc
            )
            return
        _delete_files(self._io, doomed)


def _list_files(io: FileIO, location: str, marker: str) -> list[str]:
    """URIs of the files under ``location`` whose names contain ``marker`` (a write or commit id)."""
    from urllib.parse import urlparse

    import pyarrow.fs as pafs

    parsed = urlparse(location)
    scheme = parsed.scheme or "file"
    fs_by_scheme = getattr(io, "fs_by_scheme", None)
    if fs_by_scheme is not None:  # pyiceberg's PyArrowFileIO: the filesystem with the catalog's credentials
        fs = fs_by_scheme(scheme, parsed.netloc)
        root = parsed.path if scheme == "file" else f"{parsed.netloc}{parsed.path}"
    else:
        from lakefeed.io import filesystem_and_path

        fs, root = filesystem_and_path(location)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    found = [i.path for i in infos if i.type == pafs.FileType.File and marker in i.base_name]
    prefix = "file://" if scheme == "file" else f"{scheme}://"
    return [prefix + p for p in found]


def _delete_files(io: FileIO, paths: Iterable[str]) -> list[str]:
    """Delete files, best effort; returns those that could not be deleted."""
    left: list[str] = []
    for path in dict.fromkeys(paths):
        try:
            io.delete(path)
        except FileNotFoundError:
            continue
        except Exception as exc:  # keep cleaning the others
            logger.warning("could not delete %s: %s", path, exc)
            left.append(path)
    return left
