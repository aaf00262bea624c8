"""Task planning by decoded (in-memory) size, not by compressed file size.

A Parquet file's footer gives each row group's row count and, per column chunk, the null
count and the uncompressed size. Fixed-width columns decode to exactly ``width × rows`` bytes
(plus a validity bitmap where there are nulls). Strings, binaries and nested columns do not:
their dictionary-encoded size says little about their Arrow size, so lakefeed reads a small
sample of each such column once per file and measures its width. Files in lakehouse tables
never change once written, so the measurement is cached by path and size.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from lakefeed.tables.pruning import ColumnStats

__all__ = ["ParquetFileInfo", "balanced_groups", "normalize_type"]

SAMPLE_ROWS = 2048
_SAMPLE_BUFFER = 1 << 16
"""Read buffer per column chunk when sampling: a sample reads its first pages, not whole chunks."""
_CACHE_SIZE = 4096

T = TypeVar("T")


class ParquetFileInfo:
    """A Parquet file's footer plus decoded-size estimates per row group, cached per file.

    Example:
        >>> import pyarrow as pa, pyarrow.parquet as pq, pyarrow.fs as pafs, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "f.parquet")
        >>> pq.write_table(pa.table({"x": pa.array(range(1000), pa.int64())}), p, row_group_size=500)
        >>> info = ParquetFileInfo.load(p, pafs.LocalFileSystem())
        >>> info.row_group_rows, info.row_group_bytes(["x"])
        ((500, 500), [4000, 4000])
    """

    def __init__(self, path: str, filesystem: pafs.FileSystem, metadata: pq.FileMetaData, schema: pa.Schema) -> None:
        self.path = path
        self.filesystem = filesystem
        self.metadata = metadata
        self.schema = schema
        self.row_group_rows: tuple[int, ...] = tuple(
            metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)
        )
        self._leaves: dict[str, list[int]] = {}
        for i in range(metadata.num_columns):
            top = metadata.schema.column(i).path.split(".")[0]
            self._leaves.setdefault(top, []).append(i)
        self._widths: dict[str, float] = {}
        self._per_column: dict[str, list[float]] = {}
        self._names = frozenset(schema.names)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str, filesystem: pafs.FileSystem, *, file_size: int | None = None) -> ParquetFileInfo:
        """Read (or take from the cache) the footer of the file at ``path``."""
        import pyarrow.parquet as pq

        if file_size is None:
            file_size = filesystem.get_file_info(path).size or 0
        key = (path, file_size)
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
        with filesystem.open_input_file(path) as handle:
            pf = pq.ParquetFile(handle)
            info = cls(path, filesystem, pf.metadata, pf.schema_arrow)
        with _cache_lock:
            _cache[key] = info
            if len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return info

    @staticmethod
    def is_cached(uri_or_path: str, file_size: int) -> bool:
        """Whether the footer of this file (by path or ``file://`` URI) is already cached."""
        from lakefeed.io import filesystem_and_path

        path = filesystem_and_path(uri_or_path)[1] if "://" in uri_or_path else uri_or_path
        with _cache_lock:
            return (path, file_size) in _cache

    @property
    def num_rows(self) -> int:
        """Rows in the file."""
        return int(self.metadata.num_rows)

    def field_ids(self) -> dict[int, str]:
        """Top-level Iceberg field id -> column name, where the file records ids."""
        out: dict[int, str] = {}
        for f in self.schema:
            raw = (f.metadata or {}).get(b"PARQUET:field_id")
            if raw is not None:
                out[int(raw)] = f.name
        return out

    def row_group_stats(self, rg: int, columns: Sequence[str]) -> dict[str, ColumnStats]:
        """Min, max and null count of top-level, single-leaf ``columns`` (file names) in row group ``rg``.

        Columns without complete statistics are left out.
        """
        from lakefeed.tables.pruning import ColumnStats

        group = self.metadata.row_group(rg)
        out: dict[str, ColumnStats] = {}
        for name in columns:
            leaves = self._leaves.get(name, [])
            if len(leaves) != 1 or self.metadata.schema.column(leaves[0]).path != name:
                continue
            stats = group.column(leaves[0]).statistics
            if stats is None or not stats.has_min_max or not getattr(stats, "has_null_count", False):
                continue
            try:
                out[name] = ColumnStats(min=stats.min, max=stats.max, null_count=stats.null_count)
            except (ArithmeticError, NotImplementedError, TypeError, ValueError):
                continue  # statistics pyarrow cannot convert (e.g. some decimals): left out
        return out

    def _measure(self, columns: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        todo = [c for c in columns if c not in self._widths]
        if not todo:
            return
        widths = dict.fromkeys(todo, 0.0)
        for rg, n in enumerate(self.row_group_rows):
            if n == 0:
                continue
            with self.filesystem.open_input_file(self.path) as handle:
                # streamed page by page: pre-buffering would read the columns' whole chunks for a sample
                pf = pq.ParquetFile(handle, metadata=self.metadata, pre_buffer=False, buffer_size=_SAMPLE_BUFFER)
                sample = next(pf.iter_batches(batch_size=SAMPLE_ROWS, row_groups=[rg], columns=todo), None)
            if sample is not None and sample.num_rows:
                for name in todo:
                    column = sample.column(name)
                    # measured as lakefeed returns it: a compact copy in the plain (not large/view) type
                    compact = pa.concat_arrays([column.cast(normalize_type(column.type))])
                    widths[name] = compact.nbytes / sample.num_rows
            break
        self._widths.update(widths)

    def _column_bytes(self, name: str) -> list[float]:
        """Estimated decoded bytes of one column in each row group (memoized)."""
        cached = self._per_column.get(name)
        if cached is not None:
            return cached
        width = _fixed_width_bytes(self.schema.field(name).type)
        if width is None:
            with self._lock:
                self._measure([name])
            per_row = self._widths.get(name, 0.0)
            out = [per_row * n for n in self.row_group_rows]
        else:
            leaves = self._leaves.get(name, [])
            out = []
            for rg, n in enumerate(self.row_group_rows):
                stats = self.metadata.row_group(rg).column(leaves[0]).statistics if leaves else None
                nulls = stats.null_count if stats is not None else None
                out.append(width * n + (n / 8 if nulls is None or nulls > 0 else 0.0))
        self._per_column[name] = out
        return out

    def row_group_bytes(self, columns: Sequence[str] | None) -> list[int]:
        """Estimated decoded Arrow size of each row group for ``columns`` (file names; all if None)."""
        names = list(self.schema.names) if columns is None else [c for c in columns if c in self._names]
        variable = [
            n for n in names if n not in self._per_column and _fixed_width_bytes(self.schema.field(n).type) is None
        ]
        if len(variable) > 1:
            with self._lock:
                self._measure(variable)  # one sample read for all variable-width columns
        totals = [0.0] * len(self.row_group_rows)
        for name in names:
            for rg, size in enumerate(self._column_bytes(name)):
                totals[rg] += size
        return [round(t) for t in totals]


_cache: OrderedDict[tuple[str, int], ParquetFileInfo] = OrderedDict()
_cache_lock = threading.Lock()


def normalize_type(t: pa.DataType) -> pa.DataType:
    """The plain Arrow type lakefeed returns: ``string`` for ``large_string``/``string_view``, etc.

    Example:
        >>> import pyarrow as pa
        >>> normalize_type(pa.large_list(pa.large_string()))
        ListType(list<item: string>)
    """
    import pyarrow as pa

    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t) or pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, normalize_type(t.value_type), t.value_field.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normalize_type(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        return pa.map_(normalize_type(t.key_type), normalize_type(t.item_type))
    return t


def _fixed_width_bytes(arrow_type: pa.DataType) -> float | None:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return 1 / 8
    if pa.types.is_dictionary(arrow_type):
        return None
    try:
        bits = arrow_type.bit_width
    except ValueError:
        return None
    return bits / 8 if bits > 0 else None


def _greedy_cuts(sizes: Sequence[int], target: int) -> list[int]:
    cuts = [0]
    current = 0
    for k, s in enumerate(sizes):
        if k > 0 and current + s > target:
            cuts.append(k)
            current = 0
        current += s
    cuts.append(len(sizes))
    return cuts


def _even_cuts(sizes: Sequence[int], n_groups: int) -> list[int]:
    import bisect

    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    share = prefix[-1] / n_groups
    cuts = [0]
    for k in range(1, n_groups):
        lo, hi = cuts[-1] + 1, len(sizes) - (n_groups - k)
        if lo > hi:
            break
        j = bisect.bisect_left(prefix, k * share, lo, hi + 1)
        candidates = [c for c in (j - 1, j) if lo <= c <= hi]
        cuts.append(min(candidates, key=lambda c: (abs(prefix[c] - k * share), c)))
    cuts.append(len(sizes))
    return cuts


def _spread(sizes: Sequence[int], cuts: Sequence[int]) -> tuple[float, float]:
    """Largest over smallest group, first with the last group aside, then with it."""
    totals = [sum(sizes[a:b]) for a, b in itertools.pairwise(cuts)]

    def ratio(values: list[int]) -> float:
        return max(values) / max(min(values), 1) if len(values) > 1 else 1.0

    return ratio(totals[:-1]), ratio(totals)


def balanced_groups(items: Sequence[T], size: Callable[[T], int], target: int) -> list[list[T]]:
    """Split ``items`` (in order) into contiguous groups of about ``target`` total size each.

    Two cuttings are compared and the more even one is kept (largest over smallest group,
    the last aside): a greedy one (a group closes when the next item would take it over the
    target) and one into the same number of groups cut at the item edges nearest to equal
    shares of the total, which evens out the remainders greedy leaves at file ends. Items
    stay in order, so a file's row groups stay together; an item larger than the target
    forms a group on its own.

    Example:
        >>> balanced_groups([1, 1, 1, 1, 1, 1, 4, 4], size=lambda x: x, target=4)
        [[1, 1, 1], [1, 1, 1], [4], [4]]
        >>> balanced_groups([2, 2, 2, 5, 5, 5, 5], size=lambda x: x, target=10)
        [[2, 2, 2], [5, 5], [5, 5]]
    """
    if target <= 0:
        msg = f"target size must be positive, got {target}"
        raise ValueError(msg)
    if not items:
        return []
    sizes = [max(size(i), 0) for i in items]
    greedy = _greedy_cuts(sizes, target)
    even = _even_cuts(sizes, len(greedy) - 1)
    cuts = even if _spread(sizes, even) < _spread(sizes, greedy) else greedy
    return [list(items[a:b]) for a, b in itertools.pairwise(cuts) if b > a]
