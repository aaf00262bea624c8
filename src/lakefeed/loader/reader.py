"""Reading an epoch plan: tasks decoded in threads, blocks assembled (and permuted) ahead of the consumer."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ConfigError
from lakefeed.loader.convert import FEATURES, Columns, Decoded, Ragged, concat_arrays
from lakefeed.loader.plan import EpochPlan

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.loader.loader import Loader

__all__ = ["ROW_INDEX", "Block", "BlockReader"]

FILL_ROWS = 16_384  # rows a fill helper transposes at a time
FILL_THREADS_PER = 4  # one fill helper per this many of the loader's threads (none below 8)
ROW_INDEX = "__lakefeed_row__"
"""The key of each row's position in the table (for the shuffle-quality statistic)."""
Block = tuple[Columns, "np.ndarray | None"]
"""A block's arrays and, when shuffled, the order to read its rows in."""


class ReaderClosedError(Exception):
    """Raised inside the loader's own threads when an iteration is closed early (never seen by users)."""


def _release_arrow_memory() -> None:
    """Hand memory Arrow freed back to the system, so the loader's RSS follows what it holds."""
    pa = sys.modules.get("pyarrow")  # not imported here: this also runs while the interpreter shuts down
    if pa is not None:
        pa.default_memory_pool().release_unused()


class BlockReader:
    """Decodes tasks in threads and assembles (and permutes) blocks ahead of the consumer.

    A decoded task is kept while the next blocks need rows of it (and decoded again if a block
    much later does); the feature matrices of consumed shuffled blocks are reused for later blocks.
    """

    def __init__(self, loader: Loader, plan: EpochPlan, epoch: int, first_block: int, *, permute: bool = True) -> None:
        self.loader = loader
        self.plan = plan
        self.epoch = epoch
        self.first = first_block
        self.permute = permute and loader.shuffle
        self.decode_pool = ThreadPoolExecutor(loader.decoders, thread_name_prefix="lakefeed-decode")
        self.block_pool = ThreadPoolExecutor(1, thread_name_prefix="lakefeed-block")
        # With many cores the one assembling thread would limit the loader: it gets helpers
        fillers = loader.num_threads // FILL_THREADS_PER
        self.fill_pool = ThreadPoolExecutor(fillers, thread_name_prefix="lakefeed-fill") if fillers > 1 else None
        self.decoded: dict[int, Decoded] = {}
        # per task, the blocks still to read it, the next one last
        self.uses: dict[int, list[int]] = {}
        for b in range(len(plan.blocks) - 1, first_block - 1, -1):
            for s in plan.blocks[b]:
                uses = self.uses.setdefault(s.task, [])
                if not uses or uses[-1] != b:
                    uses.append(b)
        self.offsets = [0]
        for c in loader._task_counts():
            self.offsets.append(self.offsets[-1] + c)
        self._lock = threading.Lock()
        self._closed = False
        self._free: list[np.ndarray] = []  # feature matrices of consumed blocks, reused (no page faults)

    def _decode(self, task_index: int, into: Decoded) -> None:
        loader = self.loader
        task = loader._tasks[task_index]
        where = f"task {task_index} ({', '.join(task.files[:2])})"
        decoded_bytes = 0

        def counted(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            nonlocal decoded_bytes
            for batch in batches:
                if self._closed:
                    return
                decoded_bytes += batch.nbytes
                yield batch

        loader._spec.decode(counted(task.read()), where, rows=loader._task_counts()[task_index], into=into)
        with loader._stats_lock:
            loader._stats.bytes_decoded += decoded_bytes
            loader._stats.tasks_decoded += 1

    def _task(self, task_index: int) -> Decoded:
        """The task's rows, decoding (started now if it was not yet)."""
        with self._lock:
            decoded = self.decoded.get(task_index)
            if decoded is None:
                decoded = Decoded(self.loader._spec)
                self.decoded[task_index] = decoded
                self.decode_pool.submit(self._decode, task_index, decoded)
            return decoded

    def _assemble(self, b: int) -> Block:
        block = self.plan.blocks[b]
        tasks = [self._task(s.task) for s in block]
        spec = self.loader._spec
        n = sum(s.rows for s in block)
        data: Columns = {}
        if spec.features:
            # the one copy from Arrow: each slice is transposed straight into its rows of the block
            matrix = self._matrix(n, len(spec.features), np.dtype(spec.dtype))
            pieces: list[tuple[Decoded, int, int, int]] = []  # (task, start, stop, row in the block)
            pos = 0
            for s, task in zip(block, tasks, strict=True):
                step = FILL_ROWS if self.fill_pool is not None else max(1, s.rows)
                pieces.extend(
                    (task, lo, min(s.stop, lo + step), pos + lo - s.start) for lo in range(s.start, s.stop, step)
                )
                pos += s.rows

            def fill(piece: tuple[Decoded, int, int, int]) -> None:
                task, lo, hi, at = piece
                task.fill(matrix[at : at + hi - lo], lo, hi)

            if self.fill_pool is not None and len(pieces) > 1:
                list(self.fill_pool.map(fill, pieces))  # the transposition, in parallel on many cores
            else:
                for piece in pieces:
                    fill(piece)
            data[FEATURES] = matrix
        for key in tasks[0].keys:
            data[key] = concat_arrays([task.column(key, s.start, s.stop) for s, task in zip(block, tasks, strict=True)])
        data[ROW_INDEX] = np.concatenate(
            [np.arange(self.offsets[s.task] + s.start, self.offsets[s.task] + s.stop, dtype=np.int64) for s in block]
        )
        del tasks
        horizon = b + max(1, self.loader.prefetch) + 1
        with self._lock:
            for s in block:
                uses = self.uses.get(s.task, [])
                while uses and uses[-1] <= b:
                    uses.pop()
                if not uses or uses[-1] > horizon:
                    # Freed to Arrow's pool, which reuses the pages for the next tasks. A task
                    # needed again only much later (a lane that wraps around to the rows before
                    # its random start) is decoded again then: that costs less than holding it.
                    self.decoded.pop(s.task, None)
        if self.loader.transform is not None:
            row_index = data.pop(ROW_INDEX)
            data = dict(self.loader.transform(data))
            for key, value in data.items():
                if len(value) != len(row_index):
                    msg = (
                        f"the loader's transform returned {len(value)} rows for {key!r} from a block of "
                        f"{len(row_index)}; a transform must keep every row (drop rows with filter=, "
                        "draw them with sampling=)"
                    )
                    raise ConfigError(msg)
            data[ROW_INDEX] = row_index
        data = {k: v if isinstance(v, Ragged) else np.ascontiguousarray(v) for k, v in data.items()}
        if self.permute:
            # not permuted in memory (a second full copy): each batch gathers its rows by this order
            rng = np.random.default_rng([self.loader.seed, self.epoch, self.loader.rank, self.loader.world_size, b])
            sampler = self.loader._row_sampler
            if sampler is not None and self.plan.draws is not None:
                return data, sampler.draw(rng, data[ROW_INDEX], self.plan.draws[b])
            return data, rng.permutation(len(data[ROW_INDEX]))
        return data, None

    def _matrix(self, rows: int, width: int, dtype: np.dtype[Any]) -> np.ndarray:
        with self._lock:
            while self._free:
                spare = self._free.pop()
                if spare.shape[0] >= rows and spare.shape[1] == width and spare.dtype == dtype:
                    return spare[:rows]
        return np.empty((rows, width), dtype=dtype)

    def recycle(self, data: Columns) -> None:
        """Take back a consumed block's feature matrix for a later block (at most ``prefetch + 2`` are kept)."""
        matrix = data.get(FEATURES)
        if isinstance(matrix, np.ndarray) and self.loader.transform is None:
            full = matrix.base if isinstance(matrix.base, np.ndarray) and matrix.base.ndim == 2 else matrix
            with self._lock:
                if len(self._free) < self.loader.prefetch + 2:
                    self._free.append(full)

    def blocks(self) -> Iterator[Block]:
        """The plan's blocks from ``first_block`` on, ``prefetch`` of them assembled ahead."""
        n = len(self.plan.blocks)
        depth = max(1, self.loader.prefetch)
        pending: list[Future[Block]] = []
        nxt = self.first
        while nxt < n and len(pending) < depth:
            for s in self.plan.blocks[nxt]:
                self._task(s.task)
            pending.append(self.block_pool.submit(self._assemble, nxt))
            nxt += 1
        while pending:
            future = pending.pop(0)
            if nxt < n:
                for s in self.plan.blocks[nxt]:
                    self._task(s.task)
                pending.append(self.block_pool.submit(self._assemble, nxt))
                nxt += 1
            self.loader._stats.blocks_ready = sum(1 for f in pending if f.done())
            yield future.result()

    def close(self) -> None:
        """Stop the threads and drop what was decoded."""
        if not self._closed:
            self._closed = True  # running decodes stop at their next batch
            self.decode_pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                pending = list(self.decoded.values())
            for decoded in pending:  # an assembly waiting on a task that will not decode gives up
                decoded.finish(ReaderClosedError("the loader's iteration was closed"))
            self.block_pool.shutdown(wait=True, cancel_futures=True)
            if self.fill_pool is not None:
                self.fill_pool.shutdown(wait=True)
            self.decode_pool.shutdown(wait=True)
            self.decoded.clear()
            self._free.clear()
            _release_arrow_memory()  # the epoch is over: what Arrow holds goes back to the system
