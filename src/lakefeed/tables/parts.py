"""Parquet row groups as read units: :class:`ParquetPart`, built from a file's footer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from lakefeed.expr import Expr, columns_of
from lakefeed.tables.base import BATCH_ROWS, ReadPlan, TablePart, translate_missing_file

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

__all__ = ["ParquetPart", "excluded_by_constants", "parquet_file_parts"]

STREAM_ROWS = 16_384
"""Rows per batch when a part streams (unfiltered reads): small enough that a reader's first rows come early."""
STREAM_BUFFER = 1 << 16
"""Read buffer per column chunk when a part streams: without one a column chunk is read whole first."""


def _parquet_format() -> ds.ParquetFileFormat:
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=True))


@dataclass
class ParquetPart(TablePart):
    """Row groups of one Parquet file, read with ``pyarrow.dataset``.

    ``rename`` maps table column names to file column names where they differ, ``constants``
    gives values of columns not stored in the file (partition values), and table columns in
    neither are read as nulls (columns added after the file was written).
    """

    path: str
    filesystem: pafs.FileSystem
    row_groups: tuple[int, ...]
    num_rows: int
    estimated_bytes: int
    file_schema: pa.Schema
    rename: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    exact_rows: bool = True
    proven: Expr | None = None
    """The plan's filter (that object) when every row of these row groups satisfies it, by their
    statistics: a plan with that filter reads them without it."""

    def merge(self, other: TablePart) -> TablePart | None:
        """Join an adjacent part of the same file into one, or return None."""
        if (
            isinstance(other, ParquetPart)
            and other.path == self.path
            and other.rename == self.rename
            and other.constants == self.constants
        ):
            return ParquetPart(
                path=self.path,
                filesystem=self.filesystem,
                row_groups=self.row_groups + other.row_groups,
                num_rows=self.num_rows + other.num_rows,
                estimated_bytes=self.estimated_bytes + other.estimated_bytes,
                file_schema=self.file_schema,
                rename=self.rename,
                constants=self.constants,
                proven=self.proven if self.proven is other.proven else None,
            )
        return None

    def is_direct(self, plan: ReadPlan) -> bool:
        """Whether ``pyarrow.dataset`` can read the plan's columns as stored (no renames, casts or constants)."""
        file_names = set(self.file_schema.names)
        return (
            not self.rename
            and not self.constants
            and all(
                c in file_names and self.file_schema.field(c).type == plan.table_schema.field(c).type
                for c in plan.read_columns
            )
        )

    def direct_fragment(self, plan: ReadPlan) -> ds.FileFragment | None:
        """This part as a ``pyarrow.dataset`` fragment when it needs no renames, casts or constants."""
        return self.fragment() if self.is_direct(plan) else None

    def fragment(self) -> ds.FileFragment:
        """The ``pyarrow.dataset`` fragment of this part's row groups."""
        fragment = _parquet_format().make_fragment(
            self.path, filesystem=self.filesystem, row_groups=list(self.row_groups)
        )
        return cast("ds.FileFragment", fragment)

    def read(self, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Yield the part's rows, filtered and projected."""
        import pyarrow as pa

        fragment = self.fragment()
        wanted = plan.read_columns
        file_names = set(self.file_schema.names)
        direct = self.is_direct(plan)
        as_stored = not self.rename and not self.constants and all(c in file_names for c in wanted)
        unfiltered = plan.arrow_filter is None or (self.proven is not None and self.proven is plan.filter)
        if as_stored and unfiltered and plan.columns:
            # No filter (or one every row passes): the Parquet reader streams the row groups
            # page by page, so the first rows arrive before the whole row group is decoded (the
            # dataset scanner decodes a row group completely before it yields). Types that
            # differ from the table's only (e.g. large_string stored for string) are cast
            # batch by batch in ``finish``.
            import pyarrow.parquet as pq

            with self.filesystem.open_input_file(self.path) as source:
                reader = pq.ParquetFile(source, pre_buffer=False, buffer_size=STREAM_BUFFER)
                for batch in reader.iter_batches(
                    batch_size=STREAM_ROWS,
                    row_groups=list(self.row_groups),
                    columns=plan.columns,
                    use_threads=plan.use_threads,
                ):
                    if batch.num_rows:
                        yield plan.finish(batch, filtered=True)
            return
        if direct and plan.dataset_filter is None:
            for batch in fragment.to_batches(
                columns=plan.columns, filter=plan.arrow_filter, batch_size=BATCH_ROWS, use_threads=plan.use_threads
            ):
                if batch.num_rows:
                    yield plan.finish(batch, filtered=True)
            return
        if direct:  # row groups pruned with the NaN-safe superset; the exact filter applied here
            for batch in fragment.to_batches(
                columns=wanted, filter=plan.dataset_filter, batch_size=BATCH_ROWS, use_threads=plan.use_threads
            ):
                out = plan.finish(batch, filtered=False) if batch.num_rows else batch
                if out.num_rows:
                    yield out
            return
        stored_as = {c: self.rename.get(c, c) for c in wanted}
        stored = [c for c in wanted if stored_as[c] in file_names and c not in self.constants]
        for batch in fragment.to_batches(
            columns=[stored_as[c] for c in stored], batch_size=BATCH_ROWS, use_threads=plan.use_threads
        ):
            n = batch.num_rows
            if not n:
                continue
            arrays: list[pa.Array[Any]] = []
            for name in wanted:
                target = plan.table_schema.field(name).type
                if name in self.constants:
                    arrays.append(pa.array([self.constants[name]] * n, target))
                elif name in stored:
                    arrays.append(batch.column(stored.index(name)).cast(target))
                else:
                    arrays.append(pa.nulls(n, target))
            # no column at all (columns=[] and no filter) must still carry the row count
            full = pa.RecordBatch.from_arrays(arrays, names=wanted) if arrays else batch.select([])
            out = plan.finish(full, filtered=False)
            if out.num_rows:
                yield out


def parquet_file_parts(
    path: str,
    filesystem: pafs.FileSystem,
    plan: ReadPlan,
    *,
    file_size: int | None = None,
    rename: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
) -> list[TablePart]:
    """One :class:`ParquetPart` per row group of a Parquet file, sized for ``plan``'s columns."""
    from lakefeed.tables.planning import ParquetFileInfo
    from lakefeed.tables.pruning import all_match, provable_columns

    rename = rename or {}
    constants = constants or {}
    try:
        info = ParquetFileInfo.load(path, filesystem, file_size=file_size)
    except OSError as exc:
        import pyarrow as pa

        part = ParquetPart(path, filesystem, (), 0, 0, pa.schema([]))
        translated = translate_missing_file(exc, part, plan.table_name)
        if translated is None:
            raise
        raise translated from exc
    estimate_columns = [rename.get(c, c) for c in plan.columns if c not in constants]
    sizes = info.row_group_bytes(estimate_columns)
    # statistics under the table's names, of the columns all_match can use
    provable = provable_columns(plan) if plan.filter is not None and not rename and not constants else []
    parts: list[TablePart] = []
    for rg, (rows, size) in enumerate(zip(info.row_group_rows, sizes, strict=True)):
        if rows == 0:
            continue
        proven = None
        if provable:
            stats = info.row_group_stats(rg, provable)
            proven = plan.filter if all_match(plan.filter, stats, rows, plan.table_schema) else None
        parts.append(
            ParquetPart(
                path=path,
                filesystem=filesystem,
                row_groups=(rg,),
                num_rows=rows,
                estimated_bytes=size,
                file_schema=info.schema,
                rename=rename,
                constants=constants,
                proven=proven,
            )
        )
    return parts


def excluded_by_constants(plan: ReadPlan, constants: dict[str, Any]) -> bool:
    """Whether a part whose ``constants`` columns hold these values can have no matching row.

    Evaluates each top-level AND-term of the filter that uses only constant (partition)
    columns on a one-row table; a term that is false or null excludes the part exactly.
    """
    import pyarrow as pa

    from lakefeed.expr import conjuncts, to_pyarrow

    if plan.filter is None or not constants:
        return False
    row = None
    for term in conjuncts(plan.filter):
        used = columns_of(term)
        if not used or not all(c in constants for c in used):
            continue
        if row is None:
            row = pa.table({c: pa.array([v], plan.table_schema.field(c).type) for c, v in constants.items()})
        mask = row.filter(to_pyarrow(term, plan.table_schema))
        if mask.num_rows == 0:
            return True
    return False
