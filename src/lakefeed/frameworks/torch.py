"""PyTorch: batches as tensors (pinned, copied to a device without blocking)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed._utils import import_optional
from lakefeed.errors import ConfigError, ResumeStateError, UnsupportedOperationError

if TYPE_CHECKING:
    from lakefeed.expr import Expr
    from lakefeed.loader import Loader
    from lakefeed.tables.base import Table

__all__ = ["TorchBatches", "TorchDataset", "to_tensors", "torch_dataset", "torch_dataset_class"]

_EPOCH, _START, _PENDING = 0, 1, 2  # the slots of TorchDataset._shared
# A device cache gathers the rows of this many bytes of batches at once (at least one batch):
# one kernel per column every few batches, each batch a slice of it
GATHER_BYTES = 32 << 20


def _torch() -> Any:
    return import_optional("torch", extra="torch", purpose="loader.torch()")


def to_tensors(batch: dict[str, Any], *, device: Any = None, pin_memory: bool = False) -> dict[str, Any]:
    """Turn a numpy batch into tensors: shared memory, pinned if asked, then moved to ``device``.

    Arrays of Python objects (strings) stay numpy arrays; the ``(values, offsets)`` pair of a
    variable-length list column becomes a pair of tensors, ready for ``torch.nn.EmbeddingBag``.

    Example:
        >>> import numpy as np
        >>> out = to_tensors({"features": np.ones((2, 3), np.float32), "name": np.array(["a", "b"], object)})
        >>> tuple(out["features"].shape), type(out["name"]).__name__
        ((2, 3), 'ndarray')
    """
    torch = _torch()

    def convert(value: np.ndarray) -> Any:
        if value.dtype == object:
            return value
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if pin_memory:
            # torch's pinned-memory cache; numpy copies in (torch's own copy would wake its
            # OpenMP pool, whose spinning threads take cores from the decoding threads)
            pinned = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            np.copyto(pinned.numpy(), value, casting="no")
            tensor = pinned
        if device is not None:
            tensor = tensor.to(device, non_blocking=pin_memory)
        return tensor

    return {k: tuple(convert(a) for a in v) if isinstance(v, tuple) else convert(v) for k, v in batch.items()}


class TorchBatches:
    """Iterate a :class:`~lakefeed.Loader` as dicts of torch tensors.

    ``pin_memory`` defaults to True when ``device`` is a CUDA device; host-to-device copies
    are then asynchronous and overlap the model's work. ``cache_on_device=True`` (for a loader
    with ``cache="memory"`` or ``"disk"``) copies the cached rows to ``device`` once and gathers
    each batch there: the same batches, bit for bit, with no per-batch host work or copy.
    """

    def __init__(
        self, loader: Loader, *, device: Any = None, pin_memory: bool | None = None, cache_on_device: bool = False
    ) -> None:
        torch = _torch()
        self.loader = loader
        self.device = torch.device(device) if device is not None else None
        is_cuda = self.device is not None and self.device.type == "cuda"
        self.pin_memory = bool(is_cuda if pin_memory is None else pin_memory and torch.cuda.is_available())
        if cache_on_device and not loader.cache:
            msg = "cache_on_device=True needs a loader made with cache='memory' or 'disk' (it copies that cache)"
            raise ConfigError(msg)
        self.cache_on_device = cache_on_device

    def _device_cache(self) -> dict[str, Any]:
        """The loader's cache as tensors on the device (numbers), or as it is (strings, lists).

        Made once per loader and device (kept in ``loader.device_caches``), so every epoch and
        every ``loader.torch(...)`` reuses the copy.
        """
        where = str(self.device)
        found: dict[str, Any] | None = self.loader.device_caches.get(where)
        if found is None:
            import warnings

            from lakefeed.loader.convert import Ragged
            from lakefeed.loader.reader import ROW_INDEX

            torch = _torch()
            cached = {k: v for k, v in self.loader._load_cache().items() if k != ROW_INDEX}
            with warnings.catch_warnings():  # a disk cache is mapped read-only; it is only read
                warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
                found = {
                    k: v if isinstance(v, Ragged) or v.dtype == object else torch.from_numpy(v).to(self.device)
                    for k, v in cached.items()
                }
            self.loader.device_caches[where] = found
        return found

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.cache_on_device:
            yield from self._iter_device_cache()
            return
        if self.device is None or self.device.type != "cuda":
            for batch in self.loader:
                yield to_tensors(batch, device=self.device, pin_memory=self.pin_memory)
            return
        # CUDA: a thread of the loader's gathers each batch, copies it into pinned memory and
        # starts its copy to the GPU on a stream of its own, a few batches ahead, so all of that
        # overlaps the model's kernels for the batches before; the consumer's stream only waits
        # for the copy (an event on the GPU, never the host).
        torch = _torch()
        copies = torch.cuda.Stream(device=self.device)

        def finish(batch: dict[str, Any]) -> tuple[dict[str, Any], Any]:
            with torch.cuda.stream(copies):
                out = to_tensors(batch, device=self.device, pin_memory=self.pin_memory)
                return out, copies.record_event()

        yield from self._waited(self.loader.iterate(finish))

    def _iter_device_cache(self) -> Iterator[dict[str, Any]]:
        """Each batch gathered out of the device cache, on the consumer's thread and current stream.

        The epoch's order goes to the device once. The rows of several batches to come (about
        :data:`GATHER_BYTES`) are gathered at once, one kernel per column queued behind the
        model's work; a batch is then a slice of that gather: no copy, no thread, and per batch
        only the Python of two slices (a second thread would take the interpreter from the
        training loop while it launches the model's kernels, and a gather per batch would add
        its launch to every step and its kernel between every two). The batches are those of
        the host's cache, bit for bit; each is a view of its own rows of the gather, so changing
        one in place changes no other, but a batch kept (or saved, or sent to another process)
        keeps its whole gather: ``clone()`` what outlives the step. A batch taken under another
        stream than its gather's makes that stream wait for the gather. Variable-length lists
        and strings are gathered on the host.
        """
        from lakefeed.loader.convert import Ragged

        torch = _torch()
        cache = self._device_cache()
        on_device = [(k, v) for k, v in cache.items() if isinstance(v, torch.Tensor)]
        on_host = [(k, v) for k, v in cache.items() if not isinstance(v, torch.Tensor)]
        row_bytes = sum(v.element_size() * (v[0].numel() if len(v) else 1) for _, v in on_device)
        batch_size = self.loader.batch_size
        ahead = max(batch_size, GATHER_BYTES // max(row_bytes, 1) // batch_size * batch_size)
        epoch = self.loader.epoch  # the epoch iterate() reads (it starts at its first batch)
        order = None
        lo = hi = 0  # the rows of the order gathered last: order[lo:hi]
        gathered: list[tuple[str, Any]] = []
        cuda = self.device is not None and self.device.type == "cuda"
        made_on = None  # the stream the last gather was queued on (CUDA)
        for batch in self.loader.iterate(rows_only=True):
            rows, start = batch["rows"], batch["start"]
            if order is None:  # the first batch drew (or took) this epoch's order: one copy to the device
                positions = self.loader.cache_order(epoch).astype(np.int64)
                order = to_tensors({"order": positions}, device=self.device, pin_memory=self.pin_memory)["order"]
            end = start + len(rows)
            if start < lo or end > hi:  # the batches from this one on, up to GATHER_BYTES of them
                lo, hi = start, max(end, min(start + ahead, len(order)))
                index = order[lo:hi]
                gathered = [(k, v.index_select(0, index)) for k, v in on_device]
                made_on = torch.cuda.current_stream(self.device) if cuda else None
            elif made_on is not None:
                current = torch.cuda.current_stream(self.device)
                if current != made_on:  # the consumer changed streams within a gather
                    current.wait_stream(made_on)
                    for _, tensor in gathered:
                        tensor.record_stream(current)  # not reused before this stream is done with it
            out = {k: v[start - lo : end - lo] for k, v in gathered}
            for key, value in on_host:
                if isinstance(value, Ragged):
                    pair = to_tensors({key: value[rows].pair()}, device=self.device, pin_memory=self.pin_memory)
                    out.update(pair)
                else:  # strings
                    out[key] = value[rows]
            yield out

    def _waited(self, made: Iterator[tuple[dict[str, Any], Any]]) -> Iterator[dict[str, Any]]:
        """Each batch once the current stream has waited (on the GPU) for the event made with it."""
        torch = _torch()
        for out, ready in made:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(ready)
            for tensor in _tensors(out):
                tensor.record_stream(current)  # its memory is not reused before the model is done with it
            yield out

    def __len__(self) -> int:
        return len(self.loader)


def _tensors(batch: dict[str, Any]) -> Iterator[Any]:
    for value in batch.values():
        for item in value if isinstance(value, tuple) else (value,):
            if not isinstance(item, np.ndarray):
                yield item


class TorchDataset:
    """A ``torch.utils.data.IterableDataset`` of batches, sharded over ranks and DataLoader workers.

    Made by :func:`lakefeed.torch_dataset` (each is also a torch ``IterableDataset``);
    see there. Use it with ``DataLoader(dataset, batch_size=None, num_workers=k)`` (the dataset
    batches) or :meth:`dataloader`, whose DataLoader also has ``state_dict()``.

    The position an iteration starts from (epoch, batch) is kept in shared memory, made before
    any worker starts: :meth:`set_epoch`, :meth:`load_state_dict` and each iteration of
    :meth:`dataloader`'s DataLoader write it, and each worker reads it when an iteration starts,
    so persistent workers (``persistent_workers=True``) start where fresh ones would.

    Workers may be forked or spawned (``multiprocessing_context="spawn"``): the dataset pickles
    as a recipe that rebuilds its loader in the worker, over the same snapshot (see
    :meth:`__reduce__`); a worker being started also gets the shared position.

    Example:
        >>> import lakefeed as lf, pickle, pyarrow as pa, tempfile
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.tp", pa.table({"x": [float(i) for i in range(10)]}))
        >>> ds = lf.torch_dataset(t, batch_size=2, features=["x"], num_workers=2)
        >>> copy = pickle.loads(pickle.dumps(ds))  # what a spawned worker gets; it reopens the table
        >>> [b["features"].tolist() for b in copy] == [b["features"].tolist() for b in ds]
        True
    """

    def __init__(self, loader: Loader, *, num_workers: int = 0) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            msg = f"num_workers must be an int >= 0 (the DataLoader's), got {num_workers!r}"
            raise ConfigError(msg)
        self._loader: Loader | None = loader
        self._recipe: _LoaderRecipe | None = None  # made when the dataset is first pickled
        self.num_workers = num_workers
        # this process's position: batches (of the whole DataLoader stream) already yielded in the epoch
        self._epoch = loader.epoch
        self._start = 0
        # what iterations start from (workers read it), and whether a loaded state is still to be read
        self._shared: Any = multiprocessing.RawArray("q", 3)
        self._publish(pending=False)
        self._worker_loaders: dict[tuple[int, int], Loader] = {}

    @property
    def loader(self) -> Loader:
        """The loader whose batches the dataset yields (in a spawned worker: rebuilt on first use)."""
        if self._loader is None:
            if self._recipe is None:  # pragma: no cover - a dataset has one or the other
                msg = "internal: a torch_dataset with neither a loader nor a recipe"
                raise ConfigError(msg)
            self._loader = self._recipe.build()
        return self._loader

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle how to rebuild the dataset: for spawned (or forkserver) DataLoader workers.

        What is pickled is a recipe, not the loader: the table as something to reopen (an
        Iceberg table's metadata file, a Delta/Parquet location, a Paimon warehouse and name),
        the scan's columns, filter and pinned snapshot, and the loader's settings; a worker
        rebuilds the loader on first use, checks that it plans the same tasks and settings,
        and reads the same shards, batches and snapshot as a forked worker would. Sent to a
        worker being started, the position in shared memory goes along (persistent workers
        follow ``set_epoch`` and ``load_state_dict``); pickled otherwise, the copy gets a
        position of its own.

        Raises:
            UnsupportedOperationError: The source or the transform cannot be rebuilt in another
                process (a table lakefeed cannot reopen, a lambda or a local function).
        """
        if self._recipe is None:
            self._recipe = _recipe_of(self.loader)
        spawning = multiprocessing.context.get_spawning_popen() is not None
        shared = self._shared if spawning else None  # shared memory travels only to a process being started
        values = (int(self._shared[_EPOCH]), int(self._shared[_START]), int(self._shared[_PENDING]))
        return _restore_dataset, (self._recipe, self.num_workers, shared, values, (self._epoch, self._start))

    def _publish(self, *, pending: bool) -> None:
        """Make this process's position the one the next iteration (in any worker) starts from."""
        shared = self._shared
        shared[_EPOCH], shared[_START], shared[_PENDING] = self._epoch, self._start, int(pending)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration reads (call it each epoch when DataLoader workers are used).

        After :meth:`load_state_dict`, and before the next iteration, the epoch of the state
        keeps its position: the iteration resumes there.
        """
        epoch = int(epoch)
        self.loader.set_epoch(epoch)
        pending = epoch == self._epoch and bool(self._shared[_PENDING])
        if not pending:
            self._epoch, self._start = epoch, 0
        self._publish(pending=pending)

    def _shards(self) -> int:
        return max(1, self.num_workers)

    def __len__(self) -> int:
        """Batches per epoch on this rank, over all workers."""
        k = self._shards()
        if k == 1:
            return len(self.loader)
        return k * len(self._worker_loader(0, k))

    def _worker_loader(self, worker: int, k: int) -> Loader:
        key = (worker, k)
        if key not in self._worker_loaders:
            rank, world = self.loader.rank, self.loader.world_size
            self._worker_loaders[key] = self.loader.shard(rank * k + worker, world * k, share=k)
        return self._worker_loaders[key]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Shard s (of the rank's k) holds batches s, s + k, s + 2k, ... of the epoch's stream. The
        # DataLoader asks its workers in turn from worker 0, so after n batches worker w serves
        # shard (n + w) % k from that shard's batch (n + w) // k. The start is read here, when
        # the DataLoader makes the iterator, not at its first batch.
        info = _torch().utils.data.get_worker_info()
        if info is None:
            self._shared[_PENDING] = 0
            return self._in_process(self._epoch, self._start)
        if info.num_workers != self.num_workers:
            msg = (
                f"torch_dataset was made for num_workers={self.num_workers} but the DataLoader runs "
                f"{info.num_workers} workers; pass num_workers={info.num_workers} to lf.torch_dataset "
                "(it decides the shards and len())"
            )
            raise ConfigError(msg)
        shared, k = self._shared, info.num_workers
        epoch, n = int(shared[_EPOCH]), int(shared[_START])
        shared[_PENDING] = 0
        loader = self._worker_loader((n + info.id) % k, k)
        loader.load_position(epoch, (n + info.id) // k)
        return (to_tensors(batch) for batch in loader)

    def _in_process(self, epoch: int, start: int) -> Iterator[dict[str, Any]]:
        """The stream the DataLoader's workers would make, in this process: the k shards in turn."""
        k = self._shards()
        total = len(self)
        streams: list[Iterator[dict[str, Any]]] = []
        for w in range(k):
            loader = self.loader if k == 1 else self._worker_loader((start + w) % k, k)
            loader.load_position(epoch, (start + w) // k)
            streams.append(iter(loader))
        try:
            for n in range(start, total):
                batch = next(streams[(n - start) % k])
                self._start = n + 1
                yield to_tensors(batch)
        finally:
            for stream in streams:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        if self._epoch == epoch and self._start >= total:  # the epoch ran to its end
            self._epoch, self._start = epoch + 1, 0
            self.loader.set_epoch(epoch + 1)
            self._publish(pending=False)

    def state_dict(self) -> dict[str, Any]:
        """The position after the batches iterated so far in this process (no DataLoader workers)."""
        return self._state(self._start)

    def _state(self, batches: int) -> dict[str, Any]:
        state = self.loader.state_dict()
        state.update(epoch=self._epoch, batch=batches, num_workers=self.num_workers)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a state taken by :meth:`state_dict` or :meth:`TorchDataLoader.state_dict`.

        A plain :class:`~lakefeed.Loader`'s state (no ``num_workers``) counts as ``num_workers=0``.

        Raises:
            ResumeStateError: The state belongs to another table, configuration or number of workers.
        """
        if isinstance(state, dict):
            saved = state.get("num_workers", 0)
            if isinstance(saved, bool) or not isinstance(saved, int) or max(1, saved) != self._shards():
                taken = "a plain Loader (num_workers=0)" if "num_workers" not in state else f"num_workers={saved!r}"
                msg = (
                    f"cannot resume: the state was taken with {taken}, this dataset has num_workers="
                    f"{self.num_workers} (the worker count decides the shards and the order of the batches); "
                    f"make the dataset with num_workers={saved!r}"
                )
                raise ResumeStateError(msg)
        self.loader.load_state_dict({k: v for k, v in state.items() if k != "num_workers"})
        self._epoch, self._start = self.loader.epoch, self.loader.position
        self._publish(pending=True)

    def dataloader(self, **kwargs: Any) -> Any:
        """A ``torch.utils.data.DataLoader`` over this dataset that counts batches: it has ``state_dict()``.

        Keyword arguments go to ``DataLoader`` (``pin_memory=True``, ``persistent_workers`` ...);
        ``num_workers`` is the dataset's and ``batch_size`` is None (the dataset batches).
        """
        if kwargs.pop("num_workers", self.num_workers) != self.num_workers:
            msg = f"this dataset was made for num_workers={self.num_workers}; make another with lf.torch_dataset"
            raise ConfigError(msg)
        return _dataloader_class()(self, **kwargs)


def _restore_dataset(
    recipe: _LoaderRecipe,
    num_workers: int,
    shared: Any,
    values: tuple[int, int, int],
    position: tuple[int, int],
) -> TorchDataset:
    """A pickled :class:`TorchDataset` again; its loader is rebuilt from ``recipe`` on first use."""
    cls = torch_dataset_class()
    dataset: TorchDataset = cls.__new__(cls)
    dataset._loader = None
    dataset._recipe = recipe
    dataset.num_workers = num_workers
    dataset._epoch, dataset._start = position
    if shared is None:  # not sent to a process being started: a position of its own
        shared = multiprocessing.RawArray("q", 3)
        shared[_EPOCH], shared[_START], shared[_PENDING] = values
    dataset._shared = shared
    dataset._worker_loaders = {}
    return dataset


# -- rebuilding a loader in another process ----------------------------------------------------

_SPAWN_FIX = "or keep DataLoader workers forked (multiprocessing_context='fork')"


@dataclass(frozen=True)
class _TableRecipe:
    """How to open a table again in another process.

    ``location`` is an Iceberg table's metadata file (the exact metadata this process read),
    a Delta or Parquet table's location, or a Paimon warehouse; ``options`` are the Iceberg
    FileIO properties or the Paimon catalog options.
    """

    format: str
    location: str
    name: str
    options: tuple[tuple[str, str], ...] = ()

    def open(self) -> Table:
        if self.format == "iceberg":
            from lakefeed.tables.iceberg import IcebergTable

            return IcebergTable.from_metadata(self.location, self.name, dict(self.options))
        if self.format == "delta":
            from lakefeed.tables.delta import DeltaTable

            return DeltaTable(self.location, name=self.name)
        if self.format == "paimon":
            from lakefeed.tables.paimon import PaimonTable

            return PaimonTable(self.location, self.name, options=dict(self.options) or None)
        from lakefeed.tables.parquet import ParquetTable

        return ParquetTable(self.location, name=self.name)


def _table_recipe(table: Table) -> _TableRecipe:
    """What reopens ``table`` elsewhere (read-only, at the metadata this process read).

    Raises:
        UnsupportedOperationError: Not an Iceberg, Delta, Paimon or Parquet table on storage.
    """
    from lakefeed.tables.delta import DeltaTable
    from lakefeed.tables.iceberg import IcebergTable
    from lakefeed.tables.paimon import PaimonTable
    from lakefeed.tables.parquet import ParquetTable

    kind = type(table)
    if kind is IcebergTable and isinstance(table, IcebergTable):
        tbl = table.pyiceberg_table
        metadata = getattr(tbl, "metadata_location", None)
        if metadata:
            properties = tuple(sorted((str(k), str(v)) for k, v in tbl.io.properties.items()))
            return _TableRecipe("iceberg", str(metadata), table.name, properties)
    elif kind is DeltaTable or kind is ParquetTable:
        return _TableRecipe(table.format, table.location, table.name)
    elif kind is PaimonTable:
        warehouse = str(getattr(table, "_warehouse", ""))
        catalog_options: Any = getattr(getattr(table, "_catalog", None), "catalog_options", None)
        given: dict[str, Any] = catalog_options.to_map() if hasattr(catalog_options, "to_map") else {}
        options = tuple(sorted((str(k), str(v)) for k, v in given.items() if k != "warehouse"))
        return _TableRecipe("paimon", warehouse, table.name, options)
    msg = (
        f"cannot pickle this torch_dataset for a spawned DataLoader worker: its source {table.name!r} is a "
        f"{kind.__name__}, which lakefeed cannot reopen in another process (it reopens Iceberg, Delta, Paimon "
        "and Parquet tables on storage); write the data to a table (lf.Warehouse(...).create_table(...) or "
        f"lf.create_table('delta://...', data)) and pass that table or its URI, {_SPAWN_FIX}"
    )
    raise UnsupportedOperationError(msg)


@dataclass(frozen=True)
class _LoaderRecipe:
    """How to rebuild a :class:`~lakefeed.Loader` in another process, and what it must plan there."""

    table: _TableRecipe
    columns: tuple[str, ...]
    filter: Expr | None
    snapshot_id: int | None
    current: bool
    """Whether the scan read the table's current snapshot (in its current schema), not an older one."""
    arguments: dict[str, Any]
    """The loader's keyword arguments (its settings as resolved here: rank, threads, block rows)."""
    counts: tuple[int, ...]
    layout: str
    fingerprint: dict[str, Any]

    def build(self) -> Loader:
        """The loader again, over the same snapshot and tasks.

        Raises:
            ResumeStateError: The table reopened here plans other tasks or settings than the
                loader the dataset was made with (it changed on storage).
        """
        from lakefeed.loader import Loader

        table = self.table.open()
        columns = list(self.columns)
        if self.current and table.snapshot_id == self.snapshot_id:
            scan = table.scan(columns=columns, filter=self.filter)
        else:
            scan = table.scan(columns=columns, filter=self.filter, snapshot=self.snapshot_id)
        loader = Loader(scan, **self.arguments)
        changed = ["files, rows or schema"] if _layout(loader) != self.layout else []
        if not changed:
            if loader._counts is None:
                loader._counts = list(self.counts)  # the rows per task, counted once (a filter is not read again)
            fingerprint = loader._fingerprint()
            changed = [k for k in self.fingerprint if fingerprint.get(k) != self.fingerprint[k]]
        if changed:
            msg = (
                f"a DataLoader worker reopened table {self.table.name} ({self.table.format}) at snapshot "
                f"{self.snapshot_id} but its {', '.join(changed)} differ from what the dataset was made over: the "
                "table changed on storage since (plain Parquet has no snapshot to pin), and the worker would read "
                f"other rows; keep the table unchanged while training, {_SPAWN_FIX}"
            )
            raise ResumeStateError(msg)
        return loader


def _layout(loader: Loader) -> str:
    """A digest of the loader's planned tasks and schema: equal where the same rows are read alike."""
    from lakefeed.loader.support import digest

    tasks = [(t.files, t.num_rows, t.estimated_bytes) for t in loader._tasks]
    return digest(repr((tasks, str(loader.scan.plan.table_schema), str(loader.scan.schema))))


def _loader_arguments(loader: Loader) -> dict[str, Any]:
    spec = loader._spec
    return {
        "batch_size": loader.batch_size,
        "features": list(spec.features),
        "label": spec.label,
        "columns": list(spec.columns),
        "shuffle": loader.shuffle,
        "seed": loader.seed,
        "shuffle_buffer": loader.block_rows,
        "drop_last": loader.drop_last,
        "rank": loader.rank,
        "world_size": loader.world_size,
        "uneven": loader.uneven,
        "transform": loader.pipeline if loader.pipeline is not None else loader.transform,
        "sampling": loader.sampling,
        "cache": loader.cache,
        "cache_dir": loader._cache_dir,
        "num_threads": loader.num_threads,
        "prefetch": loader.prefetch,
        "dtype": spec.dtype,
        "fill_null": spec.fill_null,
        "dtypes": dict(spec.casts),
        "target_bytes": loader._target_bytes,
        "memory_budget": loader.memory_budget,
    }


def _check_picklable(what: str, value: Any) -> None:
    """Refuse, with the fix, a value a spawned worker could not unpickle.

    Raises:
        UnsupportedOperationError: ``value`` does not pickle, or is a function of an interactive session.
    """
    import pickle
    import sys

    name = getattr(value, "__qualname__", None) or type(value).__name__
    module = getattr(value, "__module__", None)
    if callable(value) and module == "__main__" and not hasattr(sys.modules.get("__main__"), "__file__"):
        msg = (
            f"cannot pickle this torch_dataset for a spawned DataLoader worker: the loader's {what} {name!r} is "
            "defined in an interactive session (a notebook or REPL), which a spawned worker cannot import; "
            f"define it in a module file and import it from there, {_SPAWN_FIX}"
        )
        raise UnsupportedOperationError(msg)
    try:
        pickle.dumps(value)
    except Exception as exc:
        fix = (
            "define the transform at module level (a lambda, or a function defined inside another, cannot be pickled)"
            if what == "transform"
            else f"pass a {what} that pickles"
        )
        msg = (
            f"cannot pickle this torch_dataset for a spawned DataLoader worker: the loader's {what} {name!r} "
            f"cannot be pickled ({type(exc).__name__}: {exc}); {fix}, {_SPAWN_FIX}"
        )
        raise UnsupportedOperationError(msg) from exc


def _recipe_of(loader: Loader) -> _LoaderRecipe:
    """How to rebuild ``loader`` in another process.

    Raises:
        UnsupportedOperationError: Its table cannot be reopened, or a setting does not pickle.
    """
    scan = loader.scan
    table = _table_recipe(scan.table)
    arguments = _loader_arguments(loader)
    for what in ("transform", "sampling"):
        if arguments[what] is not None:
            _check_picklable(what, arguments[what])
    if scan.filter is not None:
        _check_picklable("filter", scan.filter)
    return _LoaderRecipe(
        table=table,
        columns=tuple(scan.columns),
        filter=scan.filter,
        snapshot_id=scan.snapshot_id,
        # the table's current snapshot in its current schema (a schema change makes no snapshot)
        current=scan.snapshot_id == scan.table.snapshot_id and scan.plan.table_schema.equals(scan.table.schema),
        arguments=arguments,
        counts=tuple(loader._task_counts()),
        layout=_layout(loader),
        fingerprint=loader._fingerprint(),
    )


_CLASSES: dict[str, type] = {}


def torch_dataset_class() -> type[TorchDataset]:
    """:class:`TorchDataset` made a subclass of torch's ``IterableDataset`` (torch is imported here)."""
    if "dataset" not in _CLASSES:
        base = _torch().utils.data.IterableDataset
        _CLASSES["dataset"] = type("TorchDataset", (TorchDataset, base), {"__module__": __name__})
    return _CLASSES["dataset"]


def _dataloader_class() -> type:
    if "dataloader" not in _CLASSES:
        torch = _torch()

        class TorchDataLoader(torch.utils.data.DataLoader):  # type: ignore[name-defined,misc]
            """A DataLoader over a :class:`TorchDataset` that knows how many batches it yielded."""

            def __init__(self, dataset: TorchDataset, **kwargs: Any) -> None:
                super().__init__(dataset, batch_size=None, num_workers=dataset.num_workers, **kwargs)

            def __iter__(self) -> Iterator[Any]:
                ds: TorchDataset = self.dataset
                epoch, yielded, total = ds._epoch, ds._start, len(ds)
                ds._publish(pending=False)  # before the workers start (or, persistent, restart) their iteration
                for batch in super().__iter__():
                    yielded += 1
                    ds._epoch, ds._start = epoch, yielded
                    yield batch
                if yielded >= total:  # every worker has read the start: the next iteration reads the next epoch
                    ds._epoch, ds._start = epoch + 1, 0
                    ds.loader.set_epoch(epoch + 1)
                    ds._publish(pending=False)

            def state_dict(self) -> dict[str, Any]:
                """The position after the batches yielded so far (resume with :meth:`load_state_dict`)."""
                ds: TorchDataset = self.dataset
                return ds._state(ds._start)

            def load_state_dict(self, state: dict[str, Any]) -> None:
                """Continue right after the batch the state was taken at, on the next iteration."""
                self.dataset.load_state_dict(state)

        _CLASSES["dataloader"] = TorchDataLoader
    return _CLASSES["dataloader"]


def torch_dataset(
    source: Any,
    batch_size: int = 1024,
    features: Sequence[str] | None = None,
    label: str | None = None,
    *,
    num_workers: int = 0,
    **loader_kwargs: Any,
) -> TorchDataset:
    """A torch ``IterableDataset`` of batches (dicts of tensors), correct under ``DataLoader(num_workers=k)``.

    The rank's share of the table is split again over the ``num_workers`` DataLoader workers
    (worker ``w`` of rank ``r`` reads shard ``r * k + w`` of ``world_size * k``), so no row is read
    twice and none is lost; every worker yields the same number of batches, so the DataLoader's
    stream (worker 0, 1, ..., k-1, 0, ...) is fixed by (seed, epoch) and resumes exactly.
    ``num_workers`` must be the DataLoader's. Other arguments are :class:`~lakefeed.Loader`'s;
    each worker gets ``1/num_workers`` of its threads and memory budget.

    Epochs advance by themselves when the dataset is iterated in-process or through
    :meth:`TorchDataset.dataloader`; with your own multi-worker ``DataLoader`` call
    ``dataset.set_epoch(epoch)`` each epoch, as with ``DistributedSampler``.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> from torch.utils.data import DataLoader
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.td", pa.table({"x": [float(i) for i in range(10)]}))
        >>> ds = lf.torch_dataset(t, batch_size=2, features=["x"], num_workers=2)
        >>> dl = ds.dataloader()
        >>> rows = sorted(float(v) for b in dl for v in b["features"][:, 0])
        >>> rows == [float(i) for i in range(10)], len(dl)
        (True, 6)
    """
    from lakefeed.loader import Loader

    loader = Loader(source, batch_size, features, label, **loader_kwargs)
    dataset: TorchDataset = torch_dataset_class()(loader, num_workers=num_workers)
    return dataset
