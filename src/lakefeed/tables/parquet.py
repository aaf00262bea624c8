"""Plain Parquet: a file, a folder (hive partitions understood) or a glob, read-only."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lakefeed.errors import TableNotFoundError, UnsupportedOperationError
from lakefeed.io import filesystem_and_path
from lakefeed.tables.base import ReadPlan, Table, TablePart
from lakefeed.tables.parts import excluded_by_constants, parquet_file_parts
from lakefeed.tables.schema import normalize_arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

__all__ = ["ParquetTable"]

_GLOB_CHARS = set("*?[")


class ParquetTable(Table):
    """Parquet files read as one table. Has no snapshots; a scan pins the file list it saw.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, pyarrow.parquet as pq, tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> pq.write_table(pa.table({"x": [1, 2, 3]}), os.path.join(d, "a.parquet"))
        >>> lf.open_table(f"parquet://{d}").scan(filter=lf.col("x") > 1).to_arrow().num_rows
        2
    """

    format = "parquet"

    def __init__(self, location: str | os.PathLike[str], *, name: str | None = None) -> None:
        text = os.fspath(location)
        super().__init__(name or text)
        self._location = text
        self._fs, self._path = filesystem_and_path(text)
        self._dataset = self._discover()

    def _discover(self) -> ds.Dataset:
        import pyarrow.dataset as ds
        import pyarrow.fs as pafs

        fs, path = self._fs, self._path
        base = path
        if _GLOB_CHARS & set(path):
            base = path[: min(path.index(c) for c in _GLOB_CHARS if c in path)].rsplit("/", 1)[0] or "/"
            listing = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            files = sorted(i.path for i in listing if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, path))
            if not files:
                msg = f"no Parquet files match {self._location!r}"
                raise TableNotFoundError(msg)
            return ds.dataset(files, filesystem=fs, format="parquet", partitioning="hive", partition_base_dir=base)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            msg = f"no Parquet file or folder at {self._location!r}"
            raise TableNotFoundError(msg)
        dataset = ds.dataset(
            path,
            filesystem=fs,
            format="parquet",
            partitioning="hive",
            exclude_invalid_files=False,
            ignore_prefixes=[".", "_"],
        )
        if not dataset.files:
            msg = f"the folder {self._location!r} holds no Parquet files"
            raise TableNotFoundError(msg)
        return dataset

    @property
    def schema(self) -> pa.Schema:
        """The current schema as Arrow."""
        return normalize_arrow_schema(self._dataset.schema)

    @property
    def location(self) -> str:
        """Where the table's files live."""
        return self._location

    @property
    def partition_by(self) -> tuple[str, ...]:
        """Partition fields, e.g. ``("country", "day(ts)")``."""
        part = getattr(self._dataset, "partitioning", None)
        return tuple(part.schema.names) if part is not None else ()

    def refresh(self) -> ParquetTable:
        """Reload metadata to see other writers' commits; returns ``self``."""
        self._dataset = self._discover()
        return self

    def _schema_at(self, snapshot_id: int | None) -> pa.Schema:
        return self.schema

    def _resolve_snapshot(self, snapshot: Any) -> int | None:
        if snapshot is not None:
            msg = f"plain Parquet table {self.name} has no snapshots to time-travel to; convert it to Iceberg or Delta"
            raise UnsupportedOperationError(msg)
        return None

    def _file_bytes(self, files: set[str]) -> int:
        return sum(i.size or 0 for i in self._fs.get_file_info(sorted(files)))

    def _parts_planner(
        self, snapshot_id: int | None, *, current_schema: bool = True
    ) -> Callable[[ReadPlan], list[TablePart]]:
        import pyarrow.dataset as ds

        fragments = [(f.path, ds.get_partition_keys(f.partition_expression)) for f in self._dataset.get_fragments()]
        fs: pafs.FileSystem = self._fs

        def plan_parts(plan: ReadPlan) -> list[TablePart]:
            parts: list[TablePart] = []
            for path, constants in fragments:
                if excluded_by_constants(plan, constants):
                    continue
                parts.extend(parquet_file_parts(path, fs, plan, constants=constants))
            return parts

        return plan_parts
