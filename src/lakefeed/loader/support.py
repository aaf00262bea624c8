"""The loader's helpers: its statistics, where rank and world size come from, its source, its disk cache."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from lakefeed.errors import ConfigError
from lakefeed.expr import Expr
from lakefeed.loader.convert import Columns, Ragged
from lakefeed.loader.plan import pearson
from lakefeed.tables.base import Scan, Table

if TYPE_CHECKING:
    from lakefeed.loader.loader import Loader


@runtime_checkable
class ScanSource(Protocol):
    """A source that knows the exact scan to read, e.g. a feature store's snapshot-pinned ``TrainingDataset``."""

    def as_scan(self) -> Scan:
        """The scan to read (pinned to its snapshot)."""
        ...


__all__ = [
    "LoaderStats",
    "OrdersAhead",
    "ScanSource",
    "check_state",
    "decoder_count",
    "detect_rank_world",
    "dtype_name",
    "digest",
    "fingerprint",
    "lane_count",
    "resolve_scan",
    "spearman",
    "to_disk",
    "whole",
]


@dataclass
class LoaderStats:
    """What the loader did in the current epoch (rank-local)."""

    epoch: int = 0
    batches: int = 0
    rows: int = 0
    bytes_decoded: int = 0
    tasks_decoded: int = 0
    seconds_waiting_for_data: float = 0.0
    seconds_in_consumer: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    blocks_ready: int = 0
    shuffle_spearman: float | None = None

    @property
    def rows_per_second(self) -> float:
        """Rows yielded per second since the epoch started."""
        elapsed = time.perf_counter() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        """The statistics as plain numbers."""
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "rows": self.rows,
            "rows_per_second": round(self.rows_per_second, 1),
            "bytes_decoded": self.bytes_decoded,
            "tasks_decoded": self.tasks_decoded,
            "seconds_waiting_for_data": round(self.seconds_waiting_for_data, 4),
            "seconds_in_consumer": round(self.seconds_in_consumer, 4),
            "blocks_ready": self.blocks_ready,
            "shuffle_spearman": self.shuffle_spearman,
        }


def detect_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank and world size: as given, else from an initialized torch.distributed, else $RANK/$WORLD_SIZE, else 0/1."""
    import sys

    if rank is not None and world_size is not None:
        return rank, world_size
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        r = dist.get_rank() if rank is None else rank
        return r, (dist.get_world_size() if world_size is None else world_size)
    env_rank, env_world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    r = rank if rank is not None else int(env_rank) if env_rank else 0
    w = world_size if world_size is not None else int(env_world) if env_world else 1
    return r, w


def resolve_scan(
    source: Table | Scan | ScanSource | str, columns: list[str], filter: Expr | None, snapshot: int | None = None
) -> Scan:
    """The scan a loader reads, projected and filtered, names checked.

    ``source`` is a Table, Scan, URI, "ns.table" or anything with an ``as_scan()``.
    """
    from lakefeed.tables import Warehouse, open_table

    if isinstance(source, ScanSource):
        if filter is not None or snapshot is not None:
            msg = (
                f"a {type(source).__name__} is read whole, at the snapshot it was saved in: filter= and snapshot= "
                "do not apply to it (read its table with a filter instead)"
            )
            raise ConfigError(msg)
        source = source.as_scan()  # a pinned source, e.g. a feature store's TrainingDataset
    if isinstance(source, Scan):
        if filter is not None or (snapshot is not None and snapshot != source.snapshot_id):
            msg = "pass filter= and snapshot= when the loader builds the scan, not with a Scan (it has its own)"
            raise ConfigError(msg)
        missing = [c for c in columns if c not in source.columns]
        if missing:
            from lakefeed.errors import ColumnNotFoundError

            msg = f"the scan of {source.table.name} does not project {missing}; it has {source.columns}"
            raise ColumnNotFoundError(msg)
        return source
    if isinstance(source, str):
        source = open_table(source) if ("://" in source or "/" in source) else Warehouse().table(source)
    if not isinstance(source, Table):
        msg = (
            "Loader source must be a Table, Scan, TrainingDataset, URI or 'namespace.table', "
            f"got {type(source).__name__}"
        )
        raise ConfigError(msg)
    if snapshot is not None and snapshot != source.snapshot_id:  # an older snapshot, in its own schema
        return source.scan(columns=columns, filter=filter, snapshot=snapshot)
    schema = source.schema  # the current snapshot: current names (a rename makes no snapshot)
    from lakefeed.errors import ColumnNotFoundError

    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        msg = f"loader over {source.name}: no column(s) {unknown}; columns are {schema.names}"
        raise ColumnNotFoundError(msg)
    return source.scan(columns=columns, filter=filter)


def digest(text: str) -> str:
    """A short stable fingerprint of ``text`` (a transform spec in a loader state)."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation of ``a`` and ``b`` (None when it is undefined: fewer than 3 values or no spread)."""
    if len(a) < 3:
        return None
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return round(pearson(ra, rb), 4)


def to_disk(data: Columns, folder: str | os.PathLike[str] | None) -> Columns:
    """The arrays written to ``.npy`` files under ``folder``, mapped back read-only (strings, lists stay in memory)."""
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="lakefeed-cache-", dir=folder)
    out: Columns = {}
    for i, (name, array) in enumerate(data.items()):
        if isinstance(array, Ragged) or array.dtype == object:  # kept in memory
            out[name] = array
            continue
        path = os.path.join(root, f"{i}.npy")
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
        mm[...] = array
        mm.flush()
        out[name] = np.load(path, mmap_mode="r")
    # The maps keep the data; the names go now, so no folder is left behind however the process
    # ends (where open files cannot be removed, what is left stays in the temp folder).
    shutil.rmtree(root, ignore_errors=True)
    return out


class OrdersAhead:
    """Epoch orders drawn one epoch ahead, in a thread: ``take(key, epoch, draw)`` starts drawing ``epoch + 1``.

    Shuffling millions of cache positions takes 50-130 ms (numpy releases the GIL meanwhile):
    drawn when an epoch starts, it would stall a GPU fed from the cache at every epoch. ``draw``
    must be a pure function of ``key`` (what decides orders: seed, shuffle, shard) and the
    epoch, so an order drawn ahead is the order drawn on demand; orders are kept under (key,
    epoch), read-only. The current epoch's order is kept too, for an iteration that starts it
    again (a resume, a ``break``). A draw that failed is forgotten (the next request draws
    again), and a forked process starts afresh (the thread drawing ahead is not in it).
    """

    def __init__(self) -> None:
        self._orders: dict[tuple[Any, int], Future[np.ndarray]] = {}
        self._pid = os.getpid()

    def _here(self) -> dict[tuple[Any, int], Future[np.ndarray]]:
        if self._pid != os.getpid():
            self._orders, self._pid = {}, os.getpid()
        return self._orders

    def _result(self, at: tuple[Any, int], drawn: Future[np.ndarray]) -> np.ndarray:
        try:
            return drawn.result()
        except BaseException:
            if self._orders.get(at) is drawn:
                del self._orders[at]
            raise

    def peek(self, key: Any, epoch: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
        """``epoch``'s order: the one drawn (or being drawn) already, else drawn now and not kept."""
        drawn = self._here().get((key, epoch))
        return self._result((key, epoch), drawn) if drawn is not None else _read_only(draw(epoch))

    def take(self, key: Any, epoch: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
        """``epoch``'s order, kept; the next epoch's is drawn in a thread meanwhile."""
        orders = self._here()
        for other in [at for at in orders if at not in ((key, epoch), (key, epoch + 1))]:
            del orders[other]
        if (key, epoch) not in orders:
            done: Future[np.ndarray] = Future()
            done.set_result(_read_only(draw(epoch)))  # kept only once drawn: a failed draw leaves nothing
            orders[key, epoch] = done
        if (key, epoch + 1) not in orders:
            ahead: Future[np.ndarray] = Future()

            def run() -> None:
                try:
                    ahead.set_result(_read_only(draw(epoch + 1)))
                except BaseException as error:  # raised by take() in the epoch that needs it, then forgotten
                    ahead.set_exception(error)

            thread = threading.Thread(target=run, name="lakefeed-order", daemon=True)
            thread.start()  # kept only once running: a thread that cannot start leaves nothing
            orders[key, epoch + 1] = ahead
        return self._result((key, epoch), orders[key, epoch])


def _read_only(order: np.ndarray) -> np.ndarray:
    order.flags.writeable = False  # handed out and kept: nobody may change it in place
    return order


def whole(value: Any, name: str, *, minimum: int) -> int:
    """``value`` as an int (numpy integers too) of at least ``minimum``, or a ConfigError naming it."""
    import operator

    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        msg = f"{name} must be {what}, got {value!r}"
        raise ConfigError(msg)
    return number


MAX_LANES = 16
NOMINAL_PREFETCH = 2  # what the lane count assumes, whatever prefetch and num_threads are
NOMINAL_DECODERS = 2


def lane_count(task_bytes: list[int], block_bytes: int, memory_budget: int) -> int:
    """How many lanes a shuffled block mixes: what ``memory_budget`` leaves for open tasks.

    The budget holds the blocks in flight, the tasks being decoded (Arrow's read buffers and its
    output: about twice the decoded size each) and, per lane, its open task and the next one.
    The order must not depend on the machine, so this assumes nominal prefetch and decoding
    threads, not the process's: a state saved on 8 cores resumes exactly on 64.
    """
    largest_task = max(task_bytes, default=0) or 1
    blocks = block_bytes * (NOMINAL_PREFETCH + 2)
    decoding = min(NOMINAL_DECODERS, len(task_bytes)) * 2 * largest_task
    room = max(0, memory_budget - blocks - decoding)
    return max(1, min(MAX_LANES, room // (2 * largest_task)))


def decoder_count(threads: int, task_bytes: list[int], block_bytes: int, prefetch: int, lanes: int, budget: int) -> int:
    """Tasks decoded at once: ``threads``, fewer where the budget left by blocks and lanes holds fewer."""
    largest_task = max(task_bytes, default=0) or 1
    spare = budget - block_bytes * (prefetch + 2) - lanes * 2 * largest_task
    return max(1, min(threads, max(NOMINAL_DECODERS, spare // (2 * largest_task))))


def fingerprint(loader: Loader) -> dict[str, Any]:
    """What a loader state must match to resume: the table, snapshot and every setting that shapes the batches."""
    return {
        "table": loader.scan.table.name,
        "format": loader.scan.table.format,
        "snapshot_id": loader.scan.snapshot_id,
        "filter": str(loader.scan.filter) if loader.scan.filter is not None else None,
        "features": list(loader._spec.features),
        "dtype": loader._spec.dtype,
        "dtypes": dict(loader._spec.casts),
        "label": loader._spec.label,
        "columns": list(loader._spec.columns),
        "batch_size": loader.batch_size,
        "shuffle": loader.shuffle,
        "seed": loader.seed,
        "block_rows": loader.block_rows,
        "drop_last": loader.drop_last,
        "rank": loader.rank,
        "world_size": loader.world_size,
        "uneven": loader.uneven,
        "target_bytes": loader._target_bytes,
        "lanes": loader.lanes,
        "cache": loader.cache,
        "rows": sum(loader._task_counts()),
        "sampling": repr(loader.sampling) if loader.sampling is not None else None,
        "transform": digest(loader.pipeline.to_json()) if loader.pipeline is not None else None,
    }


def dtype_name(dtype: Any) -> Any:
    """A numpy dtype given as a type or dtype object, as its name (``np.float32`` -> ``"float32"``).

    What is not a dtype is returned as it is, for the batch spec's check to name it.
    """
    try:
        return np.dtype(dtype).name
    except TypeError:
        return dtype


def check_state(state: Any, version: int, mine: dict[str, Any]) -> None:
    """Refuse a loader state that is not one, that belongs to DataLoader workers, or whose configuration differs.

    Raises:
        ResumeStateError: Saying what differs.
    """
    from lakefeed.errors import ResumeStateError

    if not isinstance(state, dict) or state.get("version") != version or "config" not in state:
        msg = f"not a lakefeed loader state (version {version}): {str(state)[:120]}"
        raise ResumeStateError(msg)
    workers = state.get("num_workers", 0)
    if workers not in (0, 1):  # its batch count indexes the interleaved stream of the workers' shards
        msg = (
            f"cannot resume a Loader from a state of lf.torch_dataset(..., num_workers={workers!r}); resume "
            "that dataset (dataset.load_state_dict(state), or its DataLoader's) instead"
        )
        raise ResumeStateError(msg)
    theirs = state["config"]
    diffs = [
        f"{k}: saved {theirs[k]!r}, here {mine[k]!r}" if k in theirs else f"{k} (saved by an older lakefeed)"
        for k in mine
        if theirs.get(k) != mine[k]
    ]
    if diffs:
        msg = "cannot resume this loader from that state; it differs in " + "; ".join(diffs)
        raise ResumeStateError(msg)
