"""The :class:`Loader`: shuffled, sharded, exactly resumable batches of numpy arrays from a table."""

from __future__ import annotations

import bisect
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np

from lakefeed.errors import ConfigError, NotFittedError, UnsupportedOperationError
from lakefeed.expr import Expr
from lakefeed.loader.convert import Batch, BatchSpec, Columns, batch_of, concat, take
from lakefeed.loader.handoff import BatchThread, RowIndex, split_batches
from lakefeed.loader.plan import EpochPlan, plan_epoch
from lakefeed.loader.reader import ROW_INDEX, Block, BlockReader
from lakefeed.loader.sampling import RowSampler, SamplingStrategy, check_column_type
from lakefeed.loader.support import (
    LoaderStats,
    OrdersAhead,
    ScanSource,
    check_state,
    decoder_count,
    detect_rank_world,
    dtype_name,
    fingerprint,
    lane_count,
    resolve_scan,
    spearman,
    to_disk,
    whole,
)
from lakefeed.samplers.strategies import Balanced, Stratified, Weighted
from lakefeed.tables.base import Scan, ScanTask, Table

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.frameworks.jax import JaxBatches
    from lakefeed.frameworks.torch import TorchBatches

__all__ = ["Loader", "LoaderStats"]

T = TypeVar("T")
STATE_VERSION = 1
DEFAULT_TASK_BYTES = 8 << 20
DEFAULT_BLOCK_BYTES = 32 << 20
DEFAULT_MEMORY_BUDGET = 512 << 20
QUALITY_SAMPLE = 64  # rows per sampled batch
QUALITY_EVERY = 4  # sample every 4th batch
QUALITY_BATCHES = 4096
CACHE_ROWS = "rows"  # iterate(rows_only=True): a batch's positions in the cache
CACHE_START = "start"  # ... and where they start in the epoch's cache_order()
GATHER_ROWS = 4096  # rows gathered from a shuffled block per numpy call


class Loader:
    """Batches from a table for training: shuffled, sharded over ranks, exactly resumable.

    Each batch is a dict of numpy arrays: ``"features"`` (float32 ``[B, F]``, C-order) stacked
    from ``features``, ``"label"`` ``[B]``, and each name in ``columns`` as it is. The order is
    a pure function of (seed, epoch, rank, world_size); every rank yields the same number of
    batches; ``state_dict()`` after any batch resumes exactly after it.

    Args:
        source: A Table, a Scan, a URI (``delta://...``), ``"namespace.table"`` in the default
            warehouse, or a feature store's ``TrainingDataset`` (read at its pinned snapshot).
        batch_size: Rows per batch.
        features: Numeric columns stacked into ``"features"``.
        label: A column returned as ``"label"``.
        columns: Columns returned as they are (strings as object arrays).
        filter: A row filter, as for :meth:`Table.scan`.
        shuffle: Shuffle (task order, lanes, blocks); False reads in scan order.
        seed: Seed of every random choice; with the epoch it fixes the order.
        shuffle_buffer: Rows per shuffled block (default: about 32 MiB of rows).
        drop_last: Drop the last partial batch.
        rank: This process's rank (default: torch.distributed, else ``$RANK``, else 0).
        world_size: Number of ranks (default: torch.distributed, else ``$WORLD_SIZE``, else 1).
        uneven: ``"pad"`` repeats a few rows so every rank has as many (no row lost); ``"drop"`` cuts.
        transform: A fitted :class:`lakefeed.transforms.Pipeline` (applied to each Arrow batch as it
            is decoded, in the reading threads; ``features`` may then name its outputs, e.g.
            ``features=pipeline.output_columns``), or a function applied to each block's numpy arrays.
        sampling: Draw rows by a strategy instead of reading each once: ``lf.samplers.Weighted("w")``,
            ``Stratified("y", shares={...})`` or ``Balanced("y")`` (see :mod:`lakefeed.loader.sampling`).
            Streaming, resumable and sharded as without it; every batch is full.
        cache: ``"memory"`` or ``"disk"`` keep the decoded rows: later epochs are full permutations.
        cache_dir: Where ``cache="disk"`` puts its files (default: the temp folder).
        num_threads: Decoding threads (default: CPU count).
        prefetch: Blocks assembled ahead of the consumer.
        dtype: The features' dtype.
        fill_null: Value for nulls in numeric columns (default: nulls raise ``SchemaError``).
        dtypes: Casts of the label and pass-through columns, e.g. ``{"label": "float32"}``.
        target_bytes: Decoded size of one read task (default 8 MiB).
        memory_budget: Bytes the loader may hold decoded at once; decides the number of lanes.
        snapshot: The table snapshot to read (default: the current one).

    Raises:
        ColumnNotFoundError: A named column does not exist.
        SchemaError: A feature is not numeric.
        ConfigError: A bad argument (batch size, rank, ...).

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.t", pa.table({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}))
        >>> loader = lf.Loader(t, batch_size=2, features=["x"], label="y", seed=1)
        >>> [b["features"].shape for b in loader], len(loader)
        ([(2, 1), (1, 1)], 2)
    """

    def __init__(
        self,
        source: Table | Scan | ScanSource | str,
        batch_size: int = 1024,
        features: Sequence[str] | None = None,
        label: str | None = None,
        *,
        columns: Sequence[str] | None = None,
        filter: Expr | None = None,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_buffer: int | None = None,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        uneven: Literal["pad", "drop"] = "pad",
        transform: Any = None,
        sampling: SamplingStrategy | None = None,
        cache: Literal["memory", "disk"] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        num_threads: int | None = None,
        prefetch: int | None = None,
        dtype: str = "float32",
        fill_null: float | None = None,
        dtypes: dict[str, str] | None = None,
        target_bytes: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        snapshot: int | None = None,
    ) -> None:
        batch_size = whole(batch_size, "batch_size", minimum=1)
        seed = whole(seed, "seed", minimum=0)
        if num_threads is not None:
            num_threads = whole(num_threads, "num_threads", minimum=1)
        if prefetch is not None:
            prefetch = whole(prefetch, "prefetch", minimum=0)
        if rank is not None:
            rank = whole(rank, "rank", minimum=0)
        if world_size is not None:
            world_size = whole(world_size, "world_size", minimum=1)
        if isinstance(features, str) or isinstance(columns, str):
            msg = "features and columns take lists of names, e.g. features=['f0', 'f1']"
            raise ConfigError(msg)
        if uneven not in ("pad", "drop"):
            msg = f"uneven must be 'pad' (repeat rows, lose none) or 'drop', got {uneven!r}"
            raise ConfigError(msg)
        if cache not in (None, "memory", "disk"):
            msg = f"cache must be None, 'memory' or 'disk', got {cache!r}"
            raise ConfigError(msg)
        rank, world = detect_rank_world(rank, world_size)
        if world < 1 or not 0 <= rank < world:
            msg = f"rank must be in [0, world_size): got rank={rank}, world_size={world}"
            raise ConfigError(msg)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world
        self.uneven = uneven
        pipeline = transform if hasattr(transform, "transform_batch") and hasattr(transform, "output_schema") else None
        if transform is not None and pipeline is None and not callable(transform):
            msg = f"transform must be a fitted lakefeed Pipeline or a function of the block's arrays, got {transform!r}"
            raise ConfigError(msg)
        if pipeline is not None and not pipeline.is_fitted:
            msg = "the loader's transform pipeline is not fitted; call pipeline.fit(table) first"
            raise NotFittedError(msg)
        self.pipeline = pipeline
        self.transform: Callable[[Columns], Columns] | None = None if pipeline is not None else transform
        if sampling is not None:
            if not isinstance(sampling, Weighted | Stratified | Balanced):
                msg = f"sampling must be lf.samplers.Weighted, Stratified or Balanced, got {sampling!r}"
                raise ConfigError(msg)
            if not shuffle:
                msg = "sampling draws rows at random; it needs shuffle=True"
                raise ConfigError(msg)
            if isinstance(sampling, Weighted) and not sampling.replacement:
                msg = (
                    "the streaming loader samples with replacement; for weighted sampling without replacement use "
                    "lf.samplers.WeightedRandomSampler(..., replacement=False) with a torch DataLoader"
                )
                raise UnsupportedOperationError(msg)
        self.sampling = sampling
        self.cache = cache
        self._cache_dir = cache_dir
        self.num_threads = num_threads or max(2, os.cpu_count() or 2)
        self.prefetch = prefetch if prefetch is not None else 2
        feature_names = list(features or [])
        if not feature_names and label is None and not columns:
            msg = "the loader needs something to yield: features=[...], label=... or columns=[...]"
            raise ConfigError(msg)
        casts = tuple(sorted((k, dtype_name(v)) for k, v in (dtypes or {}).items()))  # names: a state is JSON
        self._spec = BatchSpec(
            tuple(feature_names),
            label,
            tuple(columns or []),
            dtype=dtype_name(dtype),
            fill_null=fill_null,
            casts=casts,
            arrow_transform=pipeline.transform_batch if pipeline is not None else None,
        )
        self._spec.check_outputs()
        read = self._spec.read_columns
        if pipeline is not None:
            made = set(pipeline.output_columns)
            read = list(dict.fromkeys([*pipeline.input_columns, *(c for c in read if c not in made)]))
        self.scan = resolve_scan(source, read, filter, snapshot)
        self.output_schema: pa.Schema = (
            pipeline.output_schema(self.scan.schema) if pipeline is not None else self.scan.schema
        )
        """The schema of the rows after the transform pipeline (the scan's schema without one)."""
        self._spec.validate(self.output_schema, self.scan.table.name)
        if sampling is not None:
            table_schema = self.scan.table.schema
            if sampling.column not in table_schema.names:
                from lakefeed.errors import ColumnNotFoundError

                msg = f"sampling column {sampling.column!r} is not in {self.scan.table.name}: {table_schema.names}"
                raise ColumnNotFoundError(msg)
            check_column_type(sampling, table_schema.field(sampling.column).type, self.scan.table.name)
        self._target_bytes = target_bytes or DEFAULT_TASK_BYTES
        # each task decodes in one of the loader's threads (Arrow's own pool would oversubscribe)
        self._tasks: list[ScanTask] = [
            ScanTask(t.parts, dataclasses.replace(t.plan, use_threads=False))
            for t in self.scan.tasks(self._target_bytes)
        ]
        row_bytes = max(1, self._row_bytes())
        default_block = max(batch_size, DEFAULT_BLOCK_BYTES // row_bytes)
        block = shuffle_buffer if shuffle_buffer is not None else default_block
        if block <= 0:
            msg = f"shuffle_buffer must be a positive number of rows, got {shuffle_buffer!r}"
            raise ConfigError(msg)
        self.block_rows = -(-block // batch_size) * batch_size
        # Each lane keeps one decoded task open: the budget decides how many lanes (how far
        # apart the rows of one block come from), next to the blocks in flight.
        if memory_budget <= 0:
            msg = f"memory_budget must be a positive number of bytes, got {memory_budget!r}"
            raise ConfigError(msg)
        self.memory_budget = memory_budget
        self.lanes = self._lanes()
        """Tasks each shuffled block mixes rows from (a function of the table and the settings, not of the machine)."""
        self.decoders = self._decoders()
        """Tasks decoded at once (at most ``num_threads``; fewer where the memory budget holds fewer)."""
        if min(self.lanes * 2, self.decoders) < self.num_threads:
            # fewer tasks decode at once than there are threads (large tasks, a small budget):
            # each task's columns decode in parallel in Arrow's pool instead
            self._tasks = [ScanTask(t.parts, dataclasses.replace(t.plan, use_threads=True)) for t in self._tasks]
        self._counts: list[int] | None = None
        self._epoch = 0
        self._start_batch = 0
        self._resume_pending = False
        self._generation = 0  # bumped by each iteration and position change: only the latest iteration moves it
        self._stats = LoaderStats()
        self._cached: Columns | None = None
        self._orders = OrdersAhead()  # this and the next epoch's cache order
        self.device_caches: dict[str, Any] = {}
        """Copies of the cache that framework adapters keep elsewhere, by device (see ``torch(cache_on_device=)``)."""
        self._lock = threading.Lock()  # guards the cache
        self._stats_lock = threading.Lock()
        self._row_sampler: RowSampler | None = self._build_sampler() if sampling is not None else None

    def _build_sampler(self) -> RowSampler:
        """Read the sampling column (only it) of every task, in the loader's task order."""
        import pyarrow as pa

        strategy = self.sampling
        if strategy is None:  # pragma: no cover - only called with a strategy
            msg = "internal: no sampling strategy"
            raise ConfigError(msg)
        narrow = self.scan.table.scan(
            columns=[strategy.column], filter=self.scan.filter, snapshot=self.scan.snapshot_id
        )

        def read(task: ScanTask) -> list[Any]:
            return [b.column(0) for b in ScanTask(task.parts, narrow.plan).read()]

        with ThreadPoolExecutor(self.num_threads, thread_name_prefix="lakefeed-sampling") as pool:
            parts = list(pool.map(read, self._tasks))
        if self._counts is None:
            self._counts = [sum(len(c) for c in p) for p in parts]
        values = pa.chunked_array([c for p in parts for c in p], type=narrow.schema.field(0).type)
        return RowSampler(strategy, values, self.batch_size, self.scan.table.name)

    # -- sizes ------------------------------------------------------------------------------

    def _lanes(self) -> int:
        if not self.shuffle:
            return 1
        task_bytes = [t.estimated_bytes for t in self._tasks]
        return lane_count(task_bytes, self.block_rows * max(1, self._row_bytes()), self.memory_budget)

    def _decoders(self) -> int:
        task_bytes = [t.estimated_bytes for t in self._tasks]
        block_bytes = self.block_rows * max(1, self._row_bytes())
        return decoder_count(self.num_threads, task_bytes, block_bytes, self.prefetch, self.lanes, self.memory_budget)

    def shard(self, rank: int, world_size: int, *, share: int = 1) -> Loader:
        """A loader over shard ``rank`` of ``world_size`` with this one's table, plan and settings.

        ``share`` divides this loader's memory budget and threads (a DataLoader worker gets
        ``1/num_workers`` of them). The copy shares the planned tasks and row counts; its
        epoch and position start where this loader's are.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.sh", pa.table({"x": [1.0, 2.0, 3.0, 4.0]}))
            >>> loader = lf.Loader(t, batch_size=1, features=["x"], shuffle=False)
            >>> [float(b["features"][0, 0]) for b in loader.shard(1, 2)]
            [3.0, 4.0]
        """
        import copy

        if world_size < 1 or not 0 <= rank < world_size or share < 1:
            msg = f"shard needs 0 <= rank < world_size and share >= 1: got {rank=}, {world_size=}, {share=}"
            raise ConfigError(msg)
        self._task_counts()
        other = copy.copy(self)
        other.rank, other.world_size = rank, world_size
        other.num_threads = max(1, self.num_threads // share)
        other.memory_budget = max(1, self.memory_budget // share)
        other.lanes = other._lanes()
        other.decoders = other._decoders()
        other._stats = LoaderStats()
        other._cached = None
        other._orders = OrdersAhead()
        other.device_caches = {}
        other._lock = threading.Lock()
        other._stats_lock = threading.Lock()
        return other

    def _row_bytes(self) -> int:
        rows = sum(t.num_rows for t in self._tasks)
        return int(sum(t.estimated_bytes for t in self._tasks) / rows) if rows else 1

    def _task_counts(self) -> list[int]:
        """Exact rows per task after deletes, merges and the filter (from metadata when possible)."""
        if self._counts is not None:
            return self._counts
        if self.scan.filter is None and all(t.exact_rows for t in self._tasks):
            self._counts = [t.num_rows for t in self._tasks]
            return self._counts
        narrow = self.scan.table.scan(columns=[], filter=self.scan.filter, snapshot=self.scan.snapshot_id)

        def count(task: ScanTask) -> int:
            return sum(b.num_rows for b in ScanTask(task.parts, narrow.plan).read())

        with ThreadPoolExecutor(self.num_threads, thread_name_prefix="lakefeed-count") as pool:
            counts = list(pool.map(count, self._tasks))
        self._counts = counts
        return counts

    def _plan(self, epoch: int) -> EpochPlan:
        plan = self._read_plan(epoch)
        if self._row_sampler is None:
            return plan
        offsets = [0]
        for c in self._task_counts():
            offsets.append(offsets[-1] + c)
        return dataclasses.replace(plan, draws=self._row_sampler.apportion(plan, offsets, len(self)))

    def _read_plan(self, epoch: int) -> EpochPlan:
        return plan_epoch(
            self._task_counts(),
            seed=self.seed,
            epoch=0 if self.cache else epoch,
            rank=self.rank,
            world_size=self.world_size,
            shuffle=self.shuffle,
            block_rows=self.block_rows,
            lanes=self.lanes,
            uneven=self.uneven,
        )

    def rows_per_epoch(self) -> int:
        """Rows this rank yields per epoch (the same on every rank)."""
        total = sum(self._task_counts())
        if self.uneven == "drop":
            return total // self.world_size
        return -(-total // self.world_size) if total else 0

    def __len__(self) -> int:
        rows = self.rows_per_epoch()
        return rows // self.batch_size if self.drop_last else -(-rows // self.batch_size)

    # -- epochs and state --------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch to read next (its order is drawn from (seed, epoch))."""
        if epoch < 0:
            msg = f"epoch must be >= 0, got {epoch}"
            raise ConfigError(msg)
        epoch = int(epoch)
        self._generation += 1
        if self._resume_pending and epoch == self._epoch:
            return  # the usual loop after load_state_dict(): the resumed epoch continues where it was
        self._epoch = epoch
        self._start_batch = 0
        self._resume_pending = False

    @property
    def resuming(self) -> bool:
        """Whether the next iteration continues a loaded state (the rest of its epoch) instead of starting one."""
        return self._resume_pending

    @property
    def position(self) -> int:
        """Batches of the current epoch already yielded (where a resumed iteration starts)."""
        return self._start_batch

    def load_position(self, epoch: int, batch: int) -> None:
        """Make the next iteration read ``epoch`` from its batch ``batch`` (no checks: see :meth:`load_state_dict`)."""
        self._epoch, self._start_batch, self._resume_pending = int(epoch), int(batch), True
        self._generation += 1

    def _fingerprint(self) -> dict[str, Any]:
        return fingerprint(self)

    def state_dict(self) -> dict[str, Any]:
        """Where the loader is: the epoch and how many of its batches were yielded, plus what it reads.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.s", pa.table({"x": [1.0, 2.0, 3.0]}))
            >>> loader = lf.Loader(t, batch_size=1, features=["x"], shuffle=False)
            >>> it = iter(loader); _ = next(it)
            >>> loader.state_dict()["batch"]
            1
        """
        return {
            "version": STATE_VERSION,
            "epoch": self._epoch,
            "batch": self._start_batch,
            "config": self._fingerprint(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` was taken: the next iteration yields the batches that would have followed.

        Raises:
            ResumeStateError: The state belongs to another table, snapshot or configuration.
        """
        check_state(state, STATE_VERSION, self._fingerprint())
        self.load_position(int(state["epoch"]), int(state["batch"]))

    def stats(self) -> dict[str, float | int | None]:
        """Rows/s, batches, bytes decoded, time waiting on data vs in the consumer, and shuffle quality."""
        return self._stats.as_dict()

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate()

    @overload
    def iterate(self, finish: None = None, *, ahead: int = 3, rows_only: bool = False) -> Iterator[Batch]: ...
    @overload
    def iterate(self, finish: Callable[[Batch], T], *, ahead: int = 3, rows_only: bool = False) -> Iterator[T]: ...
    def iterate(
        self, finish: Callable[[Batch], Any] | None = None, *, ahead: int = 3, rows_only: bool = False
    ) -> Iterator[Any]:
        """Iterate the batches, each passed through ``finish`` in a thread of its own, ``ahead`` batches early.

        What frameworks build on: ``finish`` turns a batch into what the consumer gets (the
        torch adapter copies it into pinned memory and starts its copy to the GPU there), so
        that work and the gather out of the shuffled block overlap the training step. Without
        ``finish`` this is ``iter(loader)``. The position (``state_dict()``) counts only the
        batches the consumer took, so resuming stays exact.

        With a cache, ``rows_only=True`` hands out each batch as ``{"rows": positions, "start":
        offset}``: the positions of its rows in :meth:`cached_columns` (in batch order), and where
        they start in the epoch's :meth:`cache_order`; for adapters that keep the cache elsewhere
        (the torch adapter's copy on a GPU) and gather there.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.it", pa.table({"x": [1.0, 2.0, 3.0]}))
            >>> loader = lf.Loader(t, batch_size=2, features=["x"], shuffle=False)
            >>> [len(b) for b in loader.iterate(lambda batch: batch["features"][:, 0].tolist())]
            [2, 1]
            >>> loader.state_dict()["epoch"]
            1
        """
        # A new iteration starts the current epoch from its first batch, unless a state was just
        # loaded: then it continues right after the batch the state was taken at.
        epoch = self._epoch
        start = self._start_batch if self._resume_pending else 0
        self._resume_pending = False
        self._generation += 1
        generation = self._generation
        n_batches = len(self)
        self._stats = LoaderStats(epoch=epoch)
        if rows_only and not self.cache:
            msg = "iterate(rows_only=True) hands out positions in the loader's cache: it needs cache='memory' or 'disk'"
            raise ConfigError(msg)
        batches = self._cached_batches(epoch, start, rows_only) if self.cache else self._streamed_batches(epoch, start)
        made: Iterable[tuple[Any, RowIndex, int]]
        if finish is None:
            made = split_batches(batches)
            closer: Any = batches
        else:
            closer = made = BatchThread(batches, finish, ahead)
        index = start
        sampled: list[tuple[int, int, np.ndarray]] = []  # (batch, step k, every k-th row's table position)
        stats = self._stats
        try:
            last = time.perf_counter()
            for batch, row_index, rows in made:
                if index >= n_batches:
                    break
                if row_index is not None and index % QUALITY_EVERY == 0 and len(sampled) < QUALITY_BATCHES:
                    if isinstance(row_index, tuple):  # (step, every step-th row's table position)
                        sampled.append((index, *row_index))
                    else:
                        step = max(1, len(row_index) // QUALITY_SAMPLE)
                        sampled.append((index, step, row_index[::step].copy()))  # not a view of a gathered group
                now = time.perf_counter()
                stats.seconds_waiting_for_data += now - last
                index += 1
                if self._generation == generation:  # set_epoch() or a newer iteration took over otherwise
                    if index >= n_batches:  # after the last batch, the next epoch is where a state resumes
                        self._epoch, self._start_batch = epoch + 1, 0
                    else:
                        self._start_batch = index
                stats.batches += 1
                stats.rows += rows
                yield batch
                last = time.perf_counter()
                stats.seconds_in_consumer += last - now
        finally:
            close = getattr(closer, "close", None)
            if close is not None:
                close()
            if sampled:
                stats.shuffle_spearman = self._quality(sampled)
        if index >= n_batches and self._generation == generation:  # an empty epoch yields nothing
            self._epoch = epoch + 1
            self._start_batch = 0

    def _quality(self, sampled: list[tuple[int, int, np.ndarray]]) -> float | None:
        b = self.batch_size
        positions = np.concatenate([i * b + np.arange(len(rows)) * step for i, step, rows in sampled])
        return spearman(positions, np.concatenate([rows for _, _, rows in sampled]))

    def _rebatch(
        self,
        blocks: Iterator[Block],
        skip_rows: int,
        first_batch: int,
        recycle: Callable[[Columns], None] | None = None,
    ) -> Iterator[Columns]:
        """Cut the stream of (permuted) blocks into batches of exactly ``batch_size`` rows.

        A shuffled block is not permuted in memory: each batch gathers its rows through the
        block's permutation, one C-order copy per array. The rows' table positions (for the
        shuffle-quality statistic) are gathered only for the batches that are sampled.
        """
        b = self.batch_size
        carry: Columns | None = None
        batch_no = first_batch
        for data, order in blocks:
            total = len(data[ROW_INDEX]) if order is None else len(order)
            lo = 0
            if skip_rows:
                if skip_rows >= total:
                    skip_rows -= total
                    continue
                lo, skip_rows = skip_rows, 0
            keys = [k for k in data if k != ROW_INDEX]

            def cut(
                i: int,
                j: int,
                index: bool,
                data: Columns = data,
                rows: np.ndarray | None = order,
                keys: list[str] = keys,
            ) -> Columns:
                names = [*keys, ROW_INDEX] if index else keys
                if rows is None:
                    return {k: data[k][i:j] for k in names}
                picked = rows[i:j]
                return {k: data[k][picked] for k in names}

            if carry is not None:
                need = min(b - len(carry[ROW_INDEX]), total - lo)
                carry = concat([carry, cut(lo, lo + need, True)])
                lo += need
                if len(carry[ROW_INDEX]) < b:
                    continue
                yield carry
                batch_no += 1
                carry = None
            if order is None:
                while lo + b <= total:
                    yield cut(lo, lo + b, batch_no % QUALITY_EVERY == 0)
                    batch_no += 1
                    lo += b
            else:
                # gather several batches with one numpy call per array (the calls, not the
                # copying, dominate at small batch sizes), then hand out row ranges of that
                group = max(1, GATHER_ROWS // b)
                while lo + b <= total:
                    n = min(group, (total - lo) // b)
                    gathered = cut(lo, lo + n * b, True)
                    for g in range(n):
                        part = {k: v[g * b : (g + 1) * b] for k, v in gathered.items()}
                        if batch_no % QUALITY_EVERY:
                            del part[ROW_INDEX]
                        yield part
                        batch_no += 1
                    lo += n * b
            if lo < total:
                carry = {k: v.copy() for k, v in cut(lo, total, True).items()}  # not a view of the block
            if recycle is not None and order is not None:
                # every batch of a shuffled block was gathered (copied) out of it: its memory
                # can take the next block's rows
                recycle(data)
        if carry is not None and not self.drop_last:
            yield carry

    def _streamed_batches(self, epoch: int, start_batch: int) -> Iterator[Columns]:
        plan = self._plan(epoch)
        sizes = [plan.block_output(i) for i in range(len(plan.blocks))]
        prefix = [0]
        for s in sizes:
            prefix.append(prefix[-1] + s)
        start_row = start_batch * self.batch_size
        first = max(0, bisect.bisect_right(prefix, start_row) - 1) if plan.blocks else 0
        reader = BlockReader(self, plan, epoch, first)
        try:
            skip = start_row - prefix[first] if plan.blocks else 0
            yield from self._rebatch(reader.blocks(), skip, start_batch, reader.recycle)
        finally:
            reader.close()

    def _cache_order(self, epoch: int, cached: Columns) -> np.ndarray:
        """The positions in ``cached`` in ``epoch``'s order: a function of (seed, epoch, shard) alone."""
        positions = cached.get(ROW_INDEX)
        n = 0 if positions is None else len(positions)
        rng = np.random.default_rng([self.seed, epoch, self.rank, self.world_size, 0xCAC])
        if self._row_sampler is not None:
            # from the whole cache: an exact global draw
            return self._row_sampler.draw(rng, positions, len(self) * self.batch_size) if n else np.arange(0)
        # int32 positions where they fit: the same draws as rng.permutation(n) (which shuffles an
        # int64 arange), in about 2/3 of the time
        order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        if self.shuffle:
            rng.shuffle(order)
        return order

    def _order_key(self) -> tuple[int, bool, int, int]:
        return (self.seed, self.shuffle, self.rank, self.world_size)

    def _cached_batches(self, epoch: int, start_batch: int, rows_only: bool = False) -> Iterator[dict[str, Any]]:
        cached = self._load_cache()
        if not cached:  # an empty table
            return
        positions = cached[ROW_INDEX]  # the rows' table positions
        assert isinstance(positions, np.ndarray)
        n = len(positions)
        # the draw gets the cache itself: the thread drawing ahead never takes the cache's lock
        order = self._orders.take(self._order_key(), epoch, lambda e: self._cache_order(e, cached))
        b = self.batch_size
        for i in range(start_batch * b, n, b):
            idx = order[i : i + b]
            if len(idx) < b and self.drop_last:
                return
            if not rows_only:
                yield take(cached, idx)
            elif (i // b) % QUALITY_EVERY == 0:  # table positions only of the rows the statistic samples
                step = max(1, len(idx) // QUALITY_SAMPLE)
                yield {CACHE_ROWS: idx, CACHE_START: i, ROW_INDEX: (step, positions[idx[::step]])}
            else:
                yield {CACHE_ROWS: idx, CACHE_START: i}

    def cache_order(self, epoch: int | None = None) -> np.ndarray:
        """Positions into :meth:`cached_columns` of ``epoch``'s rows on this rank, in the order batches take them.

        Batch ``k`` of the epoch holds ``order[k * batch_size : (k + 1) * batch_size]`` (the
        ``"rows"`` that ``iterate(rows_only=True)`` hands out, whose ``"start"`` is ``k *
        batch_size``). A function of (seed, epoch, rank, world size): for adapters that keep the
        cache elsewhere and gather there (the torch adapter copies it to the GPU once an epoch).
        Default: the current epoch.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.co", pa.table({"x": [1.0, 2.0, 3.0]}))
            >>> loader = lf.Loader(t, batch_size=2, features=["x"], cache="memory", seed=1)
            >>> sorted(loader.cache_order().tolist()), [b["rows"].tolist() for b in loader.iterate(rows_only=True)] == [
            ...     loader.cache_order(0)[:2].tolist(), loader.cache_order(0)[2:].tolist()]
            ([0, 1, 2], True)
        """
        if not self.cache:
            msg = "cache_order() needs a loader made with cache='memory' or 'disk'"
            raise ConfigError(msg)
        epoch = self._epoch if epoch is None else int(epoch)
        if epoch < 0:
            msg = f"epoch must be >= 0, got {epoch}"
            raise ConfigError(msg)
        cached = self._load_cache()
        return self._orders.peek(self._order_key(), epoch, lambda e: self._cache_order(e, cached))

    def cached_columns(self) -> dict[str, Any]:
        """The decoded rows a ``cache="memory"|"disk"`` loader keeps (read on first use), by output name.

        ``"features"`` is the float matrix, then the label and pass-through columns; variable-length
        lists are ``(values, starts)`` pairs. Batches are rows of these, in each epoch's order.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.cc", pa.table({"x": [1.0, 2.0], "y": [0, 1]}))
            >>> cols = lf.Loader(t, batch_size=2, features=["x"], label="y", cache="memory").cached_columns()
            >>> sorted(cols), cols["features"].shape
            (['features', 'label'], (2, 1))
        """
        if not self.cache:
            msg = "cached_columns() needs a loader made with cache='memory' or 'disk'"
            raise ConfigError(msg)
        return batch_of({k: v for k, v in self._load_cache().items() if k != ROW_INDEX})

    def _load_cache(self) -> Columns:
        with self._lock:
            if self._cached is None:
                plan = self._plan(0)
                reader = BlockReader(self, plan, 0, 0, permute=False)
                try:
                    blocks = [data for data, _ in reader.blocks()]
                finally:
                    reader.close()
                data = concat(blocks) if blocks else {}
                if self.cache == "disk" and data:
                    data = to_disk(data, self._cache_dir)
                self._cached = data
            return self._cached

    # -- frameworks --------------------------------------------------------------------------

    def torch(
        self, device: str | None = None, pin_memory: bool | None = None, *, cache_on_device: bool = False
    ) -> TorchBatches:
        """Iterate batches as dicts of torch tensors (pinned and copied to ``device`` if given).

        ``cache_on_device=True`` keeps this loader's cache (``cache="memory"|"disk"``) on ``device``
        and gathers each batch there; see :class:`~lakefeed.frameworks.torch.TorchBatches`.
        """
        from lakefeed.frameworks.torch import TorchBatches

        return TorchBatches(self, device=device, pin_memory=pin_memory, cache_on_device=cache_on_device)

    def jax(self, device: Any = None) -> JaxBatches:
        """Iterate batches as dicts of jax arrays on ``device`` (default: JAX's default device)."""
        from lakefeed.frameworks.jax import JaxBatches

        return JaxBatches(self, device=device)

    def progress(self, description: str | None = None, *, console: Any = None) -> Iterator[Batch]:
        """Iterate with a ``rich`` progress bar: batches, rows/s, the share of time waiting on data, blocks ready.

        See :func:`lakefeed.loader.progress.iterate_with_progress`.
        """
        from lakefeed.loader.progress import iterate_with_progress

        return iterate_with_progress(self, description=description, console=console)

    def tf(self, *, as_dict: bool = False, prefetch: bool = True) -> Any:
        """The batches as a ``tf.data.Dataset`` with a full ``element_spec``, ready for ``model.fit``.

        See :func:`lakefeed.frameworks.tensorflow.to_tf_dataset` for the element structure.
        """
        from lakefeed.frameworks.tensorflow import to_tf_dataset

        return to_tf_dataset(self, as_dict=as_dict, prefetch=prefetch)

    def __repr__(self) -> str:
        return (
            f"Loader({self.scan.table.name!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, seed={self.seed}, "
            f"rank={self.rank}/{self.world_size}, epoch={self._epoch})"
        )
