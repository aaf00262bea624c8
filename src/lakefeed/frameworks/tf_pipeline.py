"""tf.data pipelines: the optimizer, builder and benchmark of the Paimon ML proposal (seed 000).

Import them from :mod:`lakefeed.frameworks.tensorflow`, which re-exports this module's public
names; the seed's examples run with ``from lakefeed.frameworks.tensorflow import ...`` in
place of ``from pypaimon.ml.tensorflow.performance import ...``.

Unlike the seed, nothing here logs a failure and carries on: a bad argument raises
:class:`~lakefeed.errors.ConfigError` naming the argument, the value and the fix, and an error
TensorFlow raises is translated (``raise ... from exc``) into a
:class:`~lakefeed.errors.LakefeedError`.

``TensorFlowPipelineOptimizer.get_optimization_recommendations`` rests on these measurements
(``benchmarks/tf_pipeline.py``; x86_64, 2 cores, 23.5 GiB, TensorFlow 2.21, 100,000 rows of
32 float32 features and an int64 label, batch 256, median of 3 runs):

=========================================================  ==========================
Pipeline                                                    Rows/s
=========================================================  ==========================
Python generator source, batch (epoch 1 or 2)               10,300 - 11,300
same, cache before batch: epoch 2 (from the cache)          601,000 (58x)
same, cache, shuffle 10k, batch: epoch 2                    508,000
in-memory tensors, batch / cache, batch: epoch 2            1,260,000 / 1,227,000
per-row map before batch: sequential, 2 calls, AUTOTUNE     35,600 / 38,800 / 29,700
the same map on batches: sequential, 2 calls, AUTOTUNE      739,000 / 803,000 / 560,000
map then 2 ms step per batch: without / with prefetch       96,300 / 107,100
=========================================================  ==========================

Shuffle buffers fill at about 1.4 us a row before the first batch (1,000,000 rows: 1.42 s;
100,000: 0.15 s; 10,000: 0.03 s). An in-memory cache of unbatched ``(features, label)`` rows
took 496 bytes a row for 136 bytes of data (500,000 rows, RSS growth): about 180 bytes of
overhead per tensor per element; cached batches of 256 took 138 bytes a row. A file cache
(``cache_file``) read back at 855,000 rows/s once in the page cache. The monitor of
``enable_performance_monitoring`` costs 0.04-0.12 ms a batch (two runs: 5,240 → 4,410 and
4,760 → 2,990 batches/s on a pipeline doing nothing else).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict

from lakefeed._utils import import_optional
from lakefeed.errors import ConfigError, LakefeedError, NotFoundError, SchemaError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "AUTOTUNE",
    "BenchmarkResult",
    "PipelineMonitor",
    "Recommendations",
    "TensorFlowPipelineOptimizer",
    "is_batched",
]

AUTOTUNE: Final = -1
"""``tf.data.AUTOTUNE`` (its value), usable without importing TensorFlow."""

CACHE_OVERHEAD_PER_ROW: Final = 360
"""Bytes an in-memory ``cache()`` of unbatched rows holds per row beyond the row's own bytes: measured
for ``(features, label)`` rows (two tensors, about 180 bytes each)."""

MEMORY_SHARE: Final = 4
"""The cache may take at most 1/``MEMORY_SHARE`` of the machine's memory; the model, TensorFlow,
the shuffle buffers and the page cache of the table's files need the rest."""

SHUFFLE_ROWS_CAP: Final = 100_000
"""The largest shuffle buffer recommended: it fills in about 0.15 s (1.4 us a row, measured)
before each epoch's first batch; 1,000,000 rows would wait 1.4 s every epoch."""

DEFAULT_BYTES_PER_SAMPLE: Final = 1024
"""Row size assumed by ``get_optimization_recommendations`` when not given (the seed's 1 KB records)."""


class BenchmarkResult(TypedDict):
    """What :meth:`TensorFlowPipelineOptimizer.benchmark` and :meth:`PipelineMonitor.stats` return."""

    batch_count: int
    total_samples: int
    elapsed_time: float
    throughput: float
    samples_per_sec: float
    latency_per_batch_ms: float


class Recommendations(TypedDict):
    """What :meth:`TensorFlowPipelineOptimizer.get_optimization_recommendations` returns.

    The first five keys are keyword arguments of :meth:`TensorFlowPipelineOptimizer.optimize`.
    """

    enable_cache: bool
    shuffle_buffer_size: int
    prefetch_buffer_size: int
    parallel_map_calls: int
    num_workers: int
    estimated_cache_bytes: int
    memory_budget_bytes: int
    reasons: list[str]


def _tf() -> Any:
    return import_optional("tensorflow", extra="tf", purpose="the tf.data pipeline tools")


_AUTO_FIX = "or pass None for tf.data.AUTOTUNE"


def _check_int(where: str, name: str, value: object, *, minimum: int, fix: str, autotune: bool = False) -> None:
    """Raise ConfigError unless ``value`` is an int >= ``minimum`` (or ``AUTOTUNE`` where allowed)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= minimum or (autotune and value == -1))
    if not ok:
        allowed = f"an int >= {minimum}" + (" or tf.data.AUTOTUNE" if autotune else "")
        msg = f"{where}: {name} must be {allowed}, got {value!r}; {fix}"
        raise ConfigError(msg)


def _check_dataset(tf: Any, dataset: object, where: str) -> None:
    if not isinstance(dataset, tf.data.Dataset):
        msg = (
            f"{where}: dataset must be a tf.data.Dataset, got {type(dataset).__name__}; build one with "
            "tf.data.Dataset.from_tensor_slices(...) or lakefeed's loader.tf()"
        )
        raise ConfigError(msg)


def _check_cache_file(cache_file: str | os.PathLike[str], where: str) -> str:
    path = Path(cache_file)
    if not str(cache_file) or path.is_dir() or not path.parent.is_dir():
        msg = (
            f"{where}: cache_file {str(cache_file)!r} must be a file name in an existing directory "
            "(TensorFlow writes <name>.index and <name>.data-* there); create the directory or pass another name"
        )
        raise ConfigError(msg)
    return str(path)


def _check_finite(tf: Any, dataset: Any, where: str) -> None:
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        msg = (
            f"{where}: the dataset is infinite (repeat() without a count), so a cache would never be "
            "complete and would grow without bound; cache before repeat()"
        )
        raise ConfigError(msg)


def is_batched(element_spec: Any) -> bool:
    """Whether a dataset's ``element_spec`` looks batched: every tensor has a leading dimension of unknown size.

    That is the spec of ``dataset.batch(n)`` (without ``drop_remainder``) and of lakefeed's
    ``loader.tf()``. A spec with a scalar, or with a tensor whose leading size is known, is taken
    as unbatched rows. A spec alone cannot always tell: ``batch(n, drop_remainder=True)`` gives
    known sizes, so it reads as unbatched (pass ``batch_size=None`` to
    :meth:`TensorFlowPipelineOptimizer.optimize` for it), and rows made only of variable-length
    tensors (``[None]``) read as batched (batch them with ``ragged_batch`` or ``padded_batch``,
    which they need anyway).

    Args:
        element_spec: A ``tf.data.Dataset.element_spec``: a spec or a nest of specs.

    Returns:
        True when every spec has rank >= 1 and an unknown leading dimension.

    Example:
        >>> import tensorflow as tf
        >>> ds = tf.data.Dataset.from_tensor_slices(({"x": [[1.0, 2.0]] * 4}, [0, 1, 0, 1]))
        >>> is_batched(ds.element_spec), is_batched(ds.batch(2).element_spec)
        (False, True)
    """
    tf = _tf()
    leaves = tf.nest.flatten(element_spec)
    if not leaves:
        return False
    for leaf in leaves:
        shape = getattr(leaf, "shape", None)
        if shape is None or shape.rank is None or shape.rank == 0 or shape[0] is not None:
            return False
    return True


def _rows_of(tf: Any, element: Any, fallback: int) -> int:
    """Rows in an eager element: the leading size its tensors share; 1 for an unbatched row."""
    dims: list[int | None] = []
    for leaf in tf.nest.flatten(element):
        shape = getattr(leaf, "shape", None)
        if shape is None or shape.rank is None:
            return fallback
        if shape.rank == 0:
            return 1
        dims.append(shape[0])
    if not dims:
        return fallback
    first = dims[0]
    return int(first) if first is not None and all(d == first for d in dims) else 1


def _rows_in_graph(tf: Any, element: Any) -> Any:
    """As :func:`_rows_of`, as an int64 tensor inside a ``tf.data`` function."""
    dims = []
    for leaf in tf.nest.flatten(element):
        if isinstance(leaf, tf.RaggedTensor):
            dims.append(leaf.nrows(out_type=tf.int64))
        elif isinstance(leaf, tf.SparseTensor):
            dims.append(leaf.dense_shape[0])
        elif leaf.shape.rank is None or leaf.shape.rank == 0:
            return tf.constant(1, tf.int64)
        else:
            dims.append(tf.shape(leaf, out_type=tf.int64)[0])
    if not dims:
        return tf.constant(1, tf.int64)
    stacked = tf.stack(dims)
    return tf.where(tf.reduce_all(tf.equal(stacked, stacked[0])), stacked[0], tf.constant(1, tf.int64))


def _translate(tf: Any, exc: Exception, where: str) -> LakefeedError:
    """A TensorFlow error as the matching lakefeed error (the caller raises it ``from exc``)."""
    text = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, tf.errors.NotFoundError):
        return NotFoundError(f"{where}: TensorFlow could not find a file: {text}")
    if isinstance(exc, (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, TypeError, ValueError)):
        return SchemaError(f"{where}: the elements do not fit the pipeline: {text}")
    return LakefeedError(f"{where}: TensorFlow failed: {text}")


def _result(batches: int, samples: int, elapsed: float) -> BenchmarkResult:
    return BenchmarkResult(
        batch_count=batches,
        total_samples=samples,
        elapsed_time=elapsed,
        throughput=batches / elapsed if batches and elapsed > 0 else 0.0,
        samples_per_sec=samples / elapsed if samples and elapsed > 0 else 0.0,
        latency_per_batch_ms=1000.0 * elapsed / batches if batches else 0.0,
    )


class PipelineMonitor:
    """Counts what a monitored pipeline hands to its consumer: elements, rows and time.

    :meth:`TensorFlowPipelineOptimizer.optimize` with ``enable_performance_monitoring=True``
    ends the pipeline with a sequential map that updates four ``tf.Variable`` counters per
    element (per batch); ``optimizer.monitor`` is the monitor. The counters add up over every
    iteration (every Keras epoch) until :meth:`reset`. The map runs after ``prefetch`` in the
    consumer's thread, so it counts what the consumer received, at the moment it received it;
    it cost 0.04-0.12 ms per element (measured on 2 cores), little next to a training step.
    The counters are ``tf.Variable``s captured by the dataset: build a monitored pipeline
    outside any ``tf.distribute`` strategy scope.

    Example:
        >>> import tensorflow as tf
        >>> monitor = PipelineMonitor()
        >>> ds = monitor.wrap(tf.data.Dataset.range(10).batch(4))
        >>> _ = list(ds)
        >>> stats = monitor.stats()
        >>> stats["batch_count"], stats["total_samples"]
        (3, 10)
    """

    def __init__(self) -> None:
        tf = _tf()
        if tf.distribute.has_strategy():
            msg = (
                "performance monitoring keeps its counters in tf.Variables, which a tf.distribute strategy "
                "scope would mirror; build the monitored pipeline outside `with strategy.scope():`"
            )
            raise ConfigError(msg)
        with tf.init_scope():
            self._batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="lakefeed_batches")
            self._rows = tf.Variable(0, dtype=tf.int64, trainable=False, name="lakefeed_rows")
            self._first_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="lakefeed_first")
            self._last_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="lakefeed_last")

    def wrap(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """The dataset with the counting map at its end; its elements are unchanged.

        Args:
            dataset: The pipeline to monitor.

        Returns:
            The same elements, counted as they are handed out.

        Raises:
            ConfigError: ``dataset`` is not a ``tf.data.Dataset``.

        Example:
            >>> import tensorflow as tf
            >>> [int(x) for x in PipelineMonitor().wrap(tf.data.Dataset.range(3))]
            [0, 1, 2]
        """
        tf = _tf()
        _check_dataset(tf, dataset, "PipelineMonitor.wrap")
        unpacked = type(dataset.element_spec) is tuple  # tf.data passes a plain tuple's parts as arguments

        def count(*element: Any) -> Any:
            now = tf.timestamp()
            first = tf.equal(self._batches, 0)
            self._first_time.assign(tf.where(first, now, self._first_time))
            self._last_time.assign(now)
            self._rows.assign_add(_rows_in_graph(tf, element))
            self._batches.assign_add(1)
            return element if unpacked else element[0]

        return dataset.map(count)

    def stats(self) -> BenchmarkResult:
        """The figures so far, under :meth:`TensorFlowPipelineOptimizer.benchmark`'s keys.

        ``elapsed_time`` runs from the first element handed out to the last, so it leaves out
        the wait for the first one (warm-up, shuffle buffer fill); ``throughput`` is
        ``batch_count / elapsed_time`` as in ``benchmark``. Under ``model.fit`` the time
        includes the training steps: the figures are the rate the model consumed data at.

        Returns:
            The counts and rates; rates are 0.0 before two elements were handed out.

        Example:
            >>> PipelineMonitor().stats()["batch_count"]
            0
        """
        batches = int(self._batches.numpy())
        elapsed = float(self._last_time.numpy() - self._first_time.numpy()) if batches else 0.0
        return _result(batches, int(self._rows.numpy()), elapsed)

    def reset(self) -> None:
        """Set the counters back to zero (e.g. between epochs, from a Keras callback).

        Example:
            >>> monitor = PipelineMonitor()
            >>> monitor.reset()
            >>> monitor.stats()["total_samples"]
            0
        """
        for variable in (self._batches, self._rows):
            variable.assign(0)
        for variable in (self._first_time, self._last_time):
            variable.assign(0.0)


def _memory_bytes() -> int | None:
    """The memory this process may use: physical memory, or the cgroup limit when lower; None if unknown."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            limit = Path(path).read_text().strip()
        except OSError:
            continue
        return min(physical, int(limit)) if limit.isdigit() else physical
    return physical


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class TensorFlowPipelineOptimizer:
    """Applies cache, shuffle, batch, map and prefetch to a ``tf.data.Dataset`` in the right order.

    The seed's API; see :meth:`optimize`, :meth:`benchmark` and
    :meth:`get_optimization_recommendations`. After :meth:`optimize`, ``steps`` lists what was
    applied (a batch skipped on an already batched dataset shows there) and ``monitor`` is the
    :class:`PipelineMonitor` of a monitored pipeline (None otherwise).

    Example:
        >>> import tensorflow as tf
        >>> from lakefeed.frameworks.tensorflow import TensorFlowPipelineOptimizer
        >>> optimizer = TensorFlowPipelineOptimizer()
        >>> ds = optimizer.optimize(tf.data.Dataset.range(100), shuffle_buffer_size=100, batch_size=32)
        >>> sorted(int(v) for b in ds for v in b) == list(range(100)), optimizer.steps
        (True, ('cache', 'shuffle(100)', 'batch(32)', 'prefetch(AUTOTUNE)'))
    """

    def __init__(self) -> None:
        self.steps: tuple[str, ...] = ()
        self.monitor: PipelineMonitor | None = None

    def optimize(
        self,
        dataset: tf.data.Dataset,
        num_workers: int | None = None,
        *,
        prefetch_buffer_size: int | None = None,
        enable_cache: bool = True,
        cache_file: str | os.PathLike[str] | None = None,
        parallel_map_calls: int | None = None,
        enable_performance_monitoring: bool = False,
        shuffle_buffer_size: int = 10_000,
        batch_size: int | None = 32,
        map_func: Callable[..., Any] | None = None,
    ) -> tf.data.Dataset:
        """Build the pipeline: cache → shuffle → batch → map → prefetch.

        The order matters. The cache comes first so that shuffling happens after it and every
        epoch has a new order (``reshuffle_each_iteration=True``); a cache after the shuffle
        would replay the first epoch's order forever. Batching before the map lets the map
        work on whole batches (20x faster than per row, measured), and prefetch comes last so
        that the whole pipeline runs ahead of the model.

        A dataset that is already batched (:func:`is_batched`: every tensor has an unknown
        leading dimension, as ``loader.tf()`` and ``dataset.batch(n)`` give) is not batched
        again: ``batch_size`` is skipped, ``steps`` says so, and the cache and shuffle then
        work on whole batches (a shuffle reorders batches, the rows of a batch stay together).
        Pass ``batch_size=None`` to skip batching for a dataset batched with
        ``drop_remainder=True``, whose spec reads as unbatched. Each iteration of
        ``loader.tf()`` is a new loader epoch with its own row order; cached, it is read once,
        and later epochs only reorder its batches: pass ``enable_cache=False`` to keep the
        loader's row-level shuffle.

        Args:
            dataset: The input pipeline: unbatched rows, or batches.
            num_workers: Input pipelines sharing this machine's cores (e.g. one per GPU
                process); this one gets a private thread pool of ``cores // num_workers``
                threads so the pipelines do not oversubscribe the CPU. None: TensorFlow's
                shared pool.
            prefetch_buffer_size: Elements (batches) to prepare ahead; None: ``tf.data.AUTOTUNE``;
                0: no prefetch.
            enable_cache: Cache the elements (in memory, or in ``cache_file``) after the first
                pass. Only for datasets that fit: see :meth:`get_optimization_recommendations`.
            cache_file: Cache in this file rather than in memory; needs ``enable_cache``.
            parallel_map_calls: Parallel calls of ``map_func`` and of batching; None:
                ``tf.data.AUTOTUNE``. On 2 cores, 2 calls beat AUTOTUNE by 30-43% (measured).
            enable_performance_monitoring: End the pipeline with a :class:`PipelineMonitor`,
                available as ``self.monitor``; its ``stats()`` gives the rows and batches the
                consumer received and their rate.
            shuffle_buffer_size: Elements in the shuffle buffer; 0: no shuffle.
            batch_size: Rows per batch; None: no batching.
            map_func: Applied to each batch (each element when not batching), in parallel and in
                order; it receives a batch, so write it for a leading batch dimension.

        Returns:
            The optimized dataset.

        Raises:
            ConfigError: An argument is out of range or contradicts another, ``cache_file``'s
                directory does not exist, or the dataset is infinite and ``enable_cache`` is set.
            SchemaError: ``map_func`` does not fit the elements.

        Example:
            >>> import tensorflow as tf
            >>> from lakefeed.frameworks.tensorflow import TensorFlowPipelineOptimizer
            >>> optimizer = TensorFlowPipelineOptimizer()
            >>> batched = tf.data.Dataset.range(10).batch(5)
            >>> ds = optimizer.optimize(batched, enable_cache=False, shuffle_buffer_size=0, batch_size=32)
            >>> [b.numpy().tolist() for b in ds], optimizer.steps
            ([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], ('batch(32) skipped: already batched', 'prefetch(AUTOTUNE)'))
        """
        tf = _tf()
        where = "TensorFlowPipelineOptimizer.optimize"
        _check_dataset(tf, dataset, where)
        if num_workers is not None:
            _check_int(where, "num_workers", num_workers, minimum=1, fix="pass the pipelines on this machine, or None")
        if prefetch_buffer_size is not None:
            _check_int(where, "prefetch_buffer_size", prefetch_buffer_size, minimum=0, fix=_AUTO_FIX, autotune=True)
        if parallel_map_calls is not None:
            _check_int(where, "parallel_map_calls", parallel_map_calls, minimum=1, fix=_AUTO_FIX, autotune=True)
        _check_int(where, "shuffle_buffer_size", shuffle_buffer_size, minimum=0, fix="pass 0 for no shuffle")
        if batch_size is not None:
            _check_int(where, "batch_size", batch_size, minimum=1, fix="pass None for no batching")
        if not isinstance(enable_cache, bool) or not isinstance(enable_performance_monitoring, bool):
            msg = f"{where}: enable_cache and enable_performance_monitoring must be True or False"
            raise ConfigError(msg)
        if cache_file is not None and not enable_cache:
            msg = f"{where}: cache_file={str(cache_file)!r} needs enable_cache=True; pass one or the other"
            raise ConfigError(msg)
        if map_func is not None and not callable(map_func):
            msg = f"{where}: map_func must be callable, got {type(map_func).__name__}"
            raise ConfigError(msg)
        calls = AUTOTUNE if parallel_map_calls is None else parallel_map_calls
        steps: list[str] = []
        out = dataset
        if enable_cache:
            _check_finite(tf, out, where)
            out = out.cache("" if cache_file is None else _check_cache_file(cache_file, where))
            steps.append("cache" if cache_file is None else f"cache({str(cache_file)!r})")
        if shuffle_buffer_size:
            out = out.shuffle(shuffle_buffer_size, reshuffle_each_iteration=True)
            steps.append(f"shuffle({shuffle_buffer_size})")
        if batch_size is not None:
            if is_batched(dataset.element_spec):
                steps.append(f"batch({batch_size}) skipped: already batched")
            else:
                out = out.batch(batch_size, num_parallel_calls=calls, deterministic=True)
                steps.append(f"batch({batch_size})")
        if map_func is not None:
            try:
                out = out.map(map_func, num_parallel_calls=calls, deterministic=True)
            except (TypeError, ValueError, tf.errors.OpError) as exc:
                raise _translate(tf, exc, f"{where}: map_func") from exc
            steps.append("map")
        if prefetch_buffer_size != 0:
            size = AUTOTUNE if prefetch_buffer_size is None else prefetch_buffer_size
            out = out.prefetch(size)
            steps.append("prefetch(AUTOTUNE)" if size == AUTOTUNE else f"prefetch({size})")
        self.monitor = None
        if enable_performance_monitoring:
            self.monitor = PipelineMonitor()
            out = self.monitor.wrap(out)
            steps.append("monitor")
        if num_workers is not None:
            options = tf.data.Options()
            options.threading.private_threadpool_size = max(1, _cores() // num_workers)
            out = out.with_options(options)
        self.steps = tuple(steps)
        return out

    @staticmethod
    def benchmark(
        dataset: tf.data.Dataset, num_batches: int | None = None, *, batch_size: int = 32, verbose: bool = True
    ) -> BenchmarkResult:
        """Iterate the dataset and time it: batches, rows, seconds and rates.

        Rows are counted from the elements themselves: an element's rows are the leading size
        its tensors share (the real size of a last, partial batch too); an element with a
        scalar tensor is one row. ``batch_size`` is used only for elements with no shape
        (nested datasets). ``elapsed_time`` runs from creating the iterator to the last
        element, so it includes the pipeline's warm-up; ``throughput`` is
        ``batch_count / elapsed_time`` (batches/s).

        Args:
            dataset: The pipeline to measure.
            num_batches: Stop after this many elements; None: the whole dataset (which must
                then be finite). A dataset that ends sooner is measured to its end.
            batch_size: Rows of an element that has no shape.
            verbose: Print a one-line summary.

        Returns:
            ``batch_count``, ``total_samples``, ``elapsed_time`` (s), ``throughput`` (batches/s),
            ``samples_per_sec`` and ``latency_per_batch_ms``. An empty dataset gives zero rates.

        Raises:
            ConfigError: ``num_batches`` or ``batch_size`` is not positive, or the dataset is
                infinite and ``num_batches`` is None.
            SchemaError: TensorFlow refused an element (shape or type errors in the pipeline).
            LakefeedError: TensorFlow failed otherwise while iterating.

        Example:
            >>> import tensorflow as tf
            >>> from lakefeed.frameworks.tensorflow import TensorFlowPipelineOptimizer
            >>> ds = tf.data.Dataset.range(100).batch(32)
            >>> m = TensorFlowPipelineOptimizer.benchmark(ds, num_batches=10, verbose=False)
            >>> m["batch_count"], m["total_samples"], m["throughput"] == m["batch_count"] / m["elapsed_time"]
            (4, 100, True)
        """
        tf = _tf()
        where = "TensorFlowPipelineOptimizer.benchmark"
        _check_dataset(tf, dataset, where)
        if num_batches is not None:
            _check_int(where, "num_batches", num_batches, minimum=1, fix="pass None to measure the whole dataset")
        _check_int(where, "batch_size", batch_size, minimum=1, fix="it counts the rows of elements without a shape")
        if num_batches is None and int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            msg = f"{where}: the dataset is infinite (repeat()); pass num_batches to measure a part of it"
            raise ConfigError(msg)
        batches = samples = 0
        start = time.perf_counter()
        try:
            for element in dataset if num_batches is None else dataset.take(num_batches):
                batches += 1
                samples += _rows_of(tf, element, batch_size)
        except tf.errors.OpError as exc:
            raise _translate(tf, exc, f"{where}: after {batches} batches") from exc
        result = _result(batches, samples, time.perf_counter() - start)
        if verbose:
            short = (
                "" if num_batches is None or batches == num_batches else f" (the dataset ended before {num_batches})"
            )
            print(
                f"{batches} batches{short}, {samples} samples in {result['elapsed_time']:.3f} s: "
                f"{result['throughput']:.2f} batches/s, {result['samples_per_sec']:.1f} samples/s, "
                f"{result['latency_per_batch_ms']:.3f} ms/batch"
            )
        return result

    @staticmethod
    def get_optimization_recommendations(
        dataset_size: int, num_workers: int = 1, *, bytes_per_sample: int = DEFAULT_BYTES_PER_SAMPLE
    ) -> Recommendations:
        """Settings for :meth:`optimize` from the dataset's size and this machine, with reasons.

        The rules, from the measurements in this module's docstring:

        - ``enable_cache`` when the cache fits in 1/``MEMORY_SHARE`` of this machine's memory
          (physical memory from ``os.sysconf``, or the cgroup limit when lower). A cached row
          costs ``bytes_per_sample + CACHE_OVERHEAD_PER_ROW`` bytes. From a slow source the
          second epoch then ran 58x faster; from tensors already in memory a cache gains nothing.
        - ``shuffle_buffer_size``: a worker's whole share of the rows, up to ``SHUFFLE_ROWS_CAP``
          rows (a buffer fills at 1.4 us a row before each epoch's first batch) and up to a
          quarter of the cache budget per worker.
        - ``prefetch_buffer_size``: ``tf.data.AUTOTUNE`` (prefetch gained 11% with a 2 ms step).
        - ``parallel_map_calls``: this machine's cores divided among ``num_workers``; on 2
          cores 2 calls were 9% faster than sequential and AUTOTUNE 24% slower.

        Args:
            dataset_size: Rows (samples) in the dataset, over all workers.
            num_workers: Input pipelines on this machine that split the rows and the cores
                (one per GPU process, or per replica).
            bytes_per_sample: A row's decoded size in bytes (features, label and columns).

        Returns:
            The settings (``enable_cache``, ``shuffle_buffer_size``, ``prefetch_buffer_size``,
            ``parallel_map_calls``, ``num_workers``: keyword arguments of :meth:`optimize`),
            ``estimated_cache_bytes``, ``memory_budget_bytes`` and ``reasons``.

        Raises:
            ConfigError: ``dataset_size``, ``num_workers`` or ``bytes_per_sample`` is not positive.

        Example:
            >>> from lakefeed.frameworks.tensorflow import TensorFlowPipelineOptimizer
            >>> rec = TensorFlowPipelineOptimizer.get_optimization_recommendations(50_000, bytes_per_sample=136)
            >>> rec["enable_cache"], rec["shuffle_buffer_size"], rec["prefetch_buffer_size"]
            (True, 50000, -1)
        """
        where = "TensorFlowPipelineOptimizer.get_optimization_recommendations"
        _check_int(where, "dataset_size", dataset_size, minimum=1, fix="pass the number of rows (samples)")
        _check_int(where, "num_workers", num_workers, minimum=1, fix="pass the input pipelines on this machine")
        _check_int(where, "bytes_per_sample", bytes_per_sample, minimum=1, fix="pass a row's decoded size in bytes")
        reasons: list[str] = []
        memory = _memory_bytes()
        if memory is None:
            memory = 8 * 2**30
            reasons.append("this machine's memory is unknown (no os.sysconf); assumed 8 GiB")
        budget = memory // MEMORY_SHARE
        per_row = bytes_per_sample + CACHE_OVERHEAD_PER_ROW
        estimated = dataset_size * per_row
        enable_cache = estimated <= budget
        gib = 2**30
        if enable_cache:
            reasons.append(
                f"cache: {dataset_size:,} rows x {per_row:,} B = {estimated / gib:.2f} GiB fits in 1/{MEMORY_SHARE} "
                f"of memory ({budget / gib:.2f} GiB); from a slow source the next epochs read the cache "
                "(58x faster measured)"
            )
        else:
            reasons.append(
                f"no cache: {dataset_size:,} rows x {per_row:,} B = {estimated / gib:.2f} GiB exceeds 1/{MEMORY_SHARE} "
                f"of memory ({budget / gib:.2f} GiB); a cache_file on local disk (read back at 855,000 "
                "rows/s, measured) helps a source slower than that"
            )
        rows_per_worker = math.ceil(dataset_size / num_workers)
        by_memory = max(1, budget // (4 * num_workers * per_row))
        shuffle = min(rows_per_worker, SHUFFLE_ROWS_CAP, by_memory)
        if shuffle == rows_per_worker:
            reasons.append(f"shuffle: all {rows_per_worker:,} rows of a worker (a full shuffle)")
        else:
            reasons.append(
                f"shuffle: {shuffle:,} of a worker's {rows_per_worker:,} rows; a buffer fills at 1.4 us a row before "
                f"each epoch's first batch, and takes at most a quarter of the cache budget"
            )
        cores = _cores()
        calls = max(1, cores // num_workers)
        reasons.append(
            f"parallel_map_calls: {cores} core(s) / {num_workers} worker(s) = {calls}; each worker's AUTOTUNE "
            "would assume every core is its own (on 2 cores AUTOTUNE was 30% slower than 2 calls)"
        )
        reasons.append("prefetch: AUTOTUNE, so the pipeline runs ahead of the model (11% faster measured)")
        return Recommendations(
            enable_cache=enable_cache,
            shuffle_buffer_size=shuffle,
            prefetch_buffer_size=AUTOTUNE,
            parallel_map_calls=calls,
            num_workers=num_workers,
            estimated_cache_bytes=estimated,
            memory_budget_bytes=budget,
            reasons=reasons,
        )
