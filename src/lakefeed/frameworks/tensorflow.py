"""TensorFlow: the loader as a ``tf.data.Dataset`` with a full ``element_spec``, and ``tf.distribute`` input.

The spec is computed from the scan's Arrow schema before anything is read, so Keras and
``tf.function`` see fixed dtypes and feature widths from the first step. Each iteration of the
dataset (each Keras epoch) iterates the loader once, which moves it to its next epoch: every
epoch has its own order.

Elements, by default, are what ``model.fit`` expects:

========================================  ==========================================
The loader yields                          An element is
========================================  ==========================================
``features`` and ``label``                 ``(features, label)``
``features``, ``columns`` and ``label``    ``({"features": ..., name: ...}, label)``
no ``label``                               ``features``, or the dict without a label
========================================  ==========================================

``as_dict=True`` gives the loader's own dict (``"features"``, ``"label"``, each column).

The tf.data pipeline tools of the Paimon ML proposal (:class:`TensorFlowPipelineOptimizer`,
:class:`DatasetPipelineBuilder`) live in :mod:`lakefeed.frameworks.tf_pipeline` and
:mod:`lakefeed.frameworks.tf_builder` and are
re-exported here; so are its ``tf.distribute`` tools (:class:`DistributedDatasetBuilder`,
:class:`DistributedStrategy`) from :mod:`lakefeed.frameworks.tf_distributed`, on first use.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from lakefeed._utils import import_optional
from lakefeed.errors import ConfigError, SchemaError, UnsupportedOperationError
from lakefeed.frameworks.tf_builder import DatasetPipelineBuilder
from lakefeed.frameworks.tf_pipeline import (
    AUTOTUNE,
    BenchmarkResult,
    PipelineMonitor,
    Recommendations,
    TensorFlowPipelineOptimizer,
    is_batched,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import tensorflow as tf

    from lakefeed.frameworks.tf_distributed import (
        DistributedDatasetBuilder,
        DistributedPaimonDatasetBuilder,
        DistributedStrategy,
    )
    from lakefeed.loader import Loader

__all__ = [
    "AUTOTUNE",
    "BenchmarkResult",
    "DatasetPipelineBuilder",
    "DistributedDatasetBuilder",
    "DistributedPaimonDatasetBuilder",
    "DistributedStrategy",
    "LoaderFactory",
    "PipelineMonitor",
    "Recommendations",
    "TensorFlowPipelineOptimizer",
    "distributed_dataset",
    "element_spec",
    "is_batched",
    "to_tf_dataset",
]

FEATURES = "features"
LABEL = "label"

# tf_distributed builds on to_tf_dataset below: its names are loaded on first use (PEP 562)
_DISTRIBUTED = frozenset({"DistributedDatasetBuilder", "DistributedPaimonDatasetBuilder", "DistributedStrategy"})


def __getattr__(name: str) -> Any:
    if name in _DISTRIBUTED:
        from lakefeed.frameworks import tf_distributed

        value = getattr(tf_distributed, name)
        globals()[name] = value
        return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


class LoaderFactory(Protocol):
    """Builds one input pipeline's loader; ``functools.partial(lf.Loader, table, ...)`` is one.

    :func:`distributed_dataset` also passes ``uneven="drop"`` to one that takes an ``uneven`` keyword.
    """

    def __call__(self, *, rank: int, world_size: int, batch_size: int) -> Loader:
        """The loader of pipeline ``rank`` of ``world_size``, with ``batch_size`` rows per batch."""
        ...


def _tf() -> Any:
    return import_optional("tensorflow", extra="tf", purpose="loader.tf()")


def _arrow_to_tf(tf: Any, name: str, t: pa.DataType, batch: int | None, table: str, cast: str | None = None) -> Any:
    """The spec of a label or pass-through column of Arrow type ``t`` (cast to ``cast`` if given)."""
    import pyarrow as pa

    def scalar(t: pa.DataType) -> Any:
        if cast is not None and (pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)):
            return tf.as_dtype(np.dtype(cast))
        if pa.types.is_boolean(t):
            return tf.bool
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return tf.as_dtype(np.dtype(t.to_pandas_dtype()))
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
            return tf.string
        if pa.types.is_large_binary(t) or pa.types.is_string_view(t) or pa.types.is_binary_view(t):
            return tf.string
        return None

    dtype = scalar(t)
    if dtype is not None:
        return tf.TensorSpec((batch,), dtype, name=name)
    if pa.types.is_fixed_size_list(t) and scalar(t.value_type) is not None:
        return tf.TensorSpec((batch, t.list_size), scalar(t.value_type), name=name)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and scalar(t.value_type) is not None:
        # the loader hands a variable-length list out as (values, row starts): a ragged tensor here
        return tf.RaggedTensorSpec((batch, None), scalar(t.value_type), ragged_rank=1, row_splits_dtype=tf.int64)
    msg = (
        f"loader over {table}: column {name!r} is {t}, which has no TensorFlow dtype; cast it to a number "
        "or string in the table, or leave it out of the loader's columns"
    )
    raise UnsupportedOperationError(msg)


def _full_spec(tf: Any, loader: Loader) -> dict[str, Any]:
    """The spec of every key of the loader's batches, in the loader's order, from the scan's schema."""
    spec = loader._spec
    schema = loader.scan.schema
    table = loader.scan.table.name
    batch = loader.batch_size if loader.drop_last else None
    out: dict[str, Any] = {}
    if spec.features:
        out[FEATURES] = tf.TensorSpec((batch, len(spec.features)), tf.as_dtype(np.dtype(spec.dtype)), name=FEATURES)
    casts = dict(spec.casts)
    if spec.label is not None:
        out[LABEL] = _arrow_to_tf(tf, LABEL, schema.field(spec.label).type, batch, table, casts.get(LABEL))
    for name in spec.columns:
        out[name] = _arrow_to_tf(tf, name, schema.field(name).type, batch, table, casts.get(name))
    return out


def _structure(full: dict[str, Any], *, as_dict: bool) -> Any:
    """Arrange a dict (of specs or of arrays) as an element: the dict, ``(x, y)``, or ``x``."""
    if as_dict:
        return full
    inputs = {k: v for k, v in full.items() if k != LABEL}
    if not inputs:
        return full
    x = inputs[FEATURES] if list(inputs) == [FEATURES] else inputs
    return (x, full[LABEL]) if LABEL in full else x


def element_spec(loader: Loader, *, as_dict: bool = False) -> Any:
    """The ``element_spec`` of ``to_tf_dataset(loader, as_dict=as_dict)``, from the schema alone.

    Args:
        loader: The loader the dataset would iterate.
        as_dict: The loader's dict instead of ``(x, y)``.

    Returns:
        A ``tf.TensorSpec``, a dict of them, or an ``(x, y)`` pair. The batch dimension is
        ``None``, or ``batch_size`` when the loader drops the last partial batch.

    Raises:
        UnsupportedOperationError: A label or column has a type TensorFlow cannot hold (timestamps, decimals).

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> from lakefeed.frameworks.tensorflow import element_spec
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.e", pa.table({"x": [1.0, 2.0], "y": [0, 1]}))
        >>> x, y = element_spec(lf.Loader(t, batch_size=2, features=["x"], label="y"))
        >>> x.shape.as_list(), x.dtype.name, y.shape.as_list(), y.dtype.name
        ([None, 1], 'float32', [None], 'int64')
    """
    return _structure(_full_spec(_tf(), loader), as_dict=as_dict)


def _convert(tf: Any, batch: dict[str, Any], full: dict[str, Any], table: str) -> dict[str, Any]:
    """Check a batch against the spec (a transform may have changed it) and make ragged tensors of lists."""
    if set(batch) != set(full):
        msg = f"loader over {table}: a batch has keys {sorted(batch)}, the dataset's element_spec {sorted(full)}"
        raise SchemaError(msg)
    out: dict[str, Any] = {}
    rows = next((len(v) for v in batch.values() if not isinstance(v, tuple)), None)
    for key, value in batch.items():
        spec = full[key]
        if isinstance(spec, tf.RaggedTensorSpec):
            if not isinstance(value, tuple):
                msg = f"loader over {table}: {key!r} should be a (values, offsets) pair, got {type(value).__name__}"
                raise SchemaError(msg)
            values, offsets = value[0], np.asarray(value[1], np.int64)
            if rows is not None and len(offsets) == rows + 1:  # n + 1 row splits rather than n row starts
                out[key] = tf.RaggedTensor.from_row_splits(values, offsets, validate=False)
            else:
                out[key] = tf.RaggedTensor.from_row_starts(values, offsets, validate=False)
            continue
        expected = spec.shape.as_list()
        shape = getattr(value, "shape", None)
        if (
            shape is None
            or len(shape) != len(expected)
            or any(e not in (None, n) for e, n in zip(expected, shape, strict=True))
        ):
            msg = (
                f"loader over {table}: {key!r} has shape {shape}, the element_spec {tuple(expected)}; "
                "a transform must keep the columns' shapes"
            )
            raise SchemaError(msg)
        if value.dtype == object and any(v is None for v in value.flat):
            msg = f"loader over {table}: column {key!r} has nulls, which tf.string cannot hold; fill them first"
            raise SchemaError(msg)
        out[key] = value
    return out


def to_tf_dataset(loader: Loader, *, as_dict: bool = False, prefetch: bool = True) -> tf.data.Dataset:
    """The loader's batches as a ``tf.data.Dataset`` with a full ``element_spec`` and a known cardinality.

    ``loader.tf()`` is ``to_tf_dataset(loader)``. Every iteration of the dataset (every Keras
    epoch) iterates the loader once, moving it to its next epoch, so each epoch has its own
    order. The cardinality is ``len(loader)``, so Keras knows the steps per epoch (unknown for a
    dataset made right after ``loader.load_state_dict()``: its first epoch is the rest of the
    saved one, shorter than the next ones). Pass
    ``shuffle=False`` to ``model.fit`` (the loader shuffles; Keras warns about its default).

    Args:
        loader: The loader to iterate.
        as_dict: Yield the loader's dict (``"features"``, ``"label"``, each column) instead of
            ``(x, y)`` for ``model.fit``: ``x`` is the features tensor when the loader has no
            ``columns``, else a dict of ``"features"`` and the columns; without a label the
            element is ``x`` alone.
        prefetch: Let tf.data prepare batches ahead (``tf.data.AUTOTUNE``). The loader then runs
            a few batches ahead of the model, and its ``state_dict()`` counts those too; pass
            False for an exact resume point (tf.data's own injected prefetch is turned off too).

    Returns:
        The dataset. Strings are ``tf.string``, booleans ``tf.bool``, fixed-size lists ``[B, size]``,
        variable-length lists ``tf.RaggedTensor`` ``[B, None]``.

    Raises:
        UnsupportedOperationError: A label or column has a type TensorFlow cannot hold.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> from lakefeed.frameworks.tensorflow import to_tf_dataset
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.f", pa.table({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}))
        >>> ds = to_tf_dataset(lf.Loader(t, batch_size=2, features=["x"], label="y", shuffle=False))
        >>> [(tuple(x.shape), y.numpy().tolist()) for x, y in ds], int(ds.cardinality())
        ([((2, 1), [0, 1]), ((1, 1), [0])], 2)
    """
    tf = _tf()
    full = _full_spec(tf, loader)
    table = loader.scan.table.name

    def generate() -> Iterator[Any]:
        for batch in loader:  # one loader epoch per iteration of the dataset
            yield _structure(_convert(tf, batch, full, table), as_dict=as_dict)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=_structure(full, as_dict=as_dict))
    if not loader.resuming:  # a resumed epoch is shorter than the next ones: cardinality unknown
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(loader)))
    options = tf.data.Options()
    # the loader shards itself (rank, world_size): tf.distribute must not shard it again
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    if not prefetch:
        # tf.data adds a prefetch of its own by default, which would run the loader ahead too
        options.experimental_optimization.inject_prefetch = False
    dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    make_loader: LoaderFactory,
    global_batch_size: int,
    *,
    replication: Literal["worker", "replica"] = "worker",
    as_dict: bool = False,
) -> tf.distribute.DistributedDataset:
    """Input for ``tf.distribute``: one loader shard per input pipeline, each row once per epoch, every replica fed.

    Built with ``strategy.distribute_datasets_from_function``, as
    :class:`~lakefeed.frameworks.tf_distributed.DistributedDatasetBuilder` is. Input pipeline
    ``i`` of ``n`` (``num_input_pipelines``) builds its loader with ``make_loader(rank=i,
    world_size=n, batch_size=global_batch_size // n)``, plus ``uneven="drop"`` (below). One
    loader batch is that pipeline's part of one step: it is cut into consecutive slices of
    ``global_batch_size / num_replicas_in_sync`` rows, one for each replica the pipeline
    feeds. With ``"worker"`` there is one pipeline per worker (host), feeding the worker's
    replicas; with ``"replica"`` each replica has a pipeline, and a loader shard, of its own.

    The shards are disjoint and equal, so every worker runs the same number of steps, and
    every step gives each replica ``global_batch_size / num_replicas_in_sync`` rows, except
    the last one, whose rows are split as evenly as possible (a replica gets an empty batch
    only when its pipeline has fewer rows left than replicas to feed). Each row is read
    exactly once per epoch, with one exception: with ``n > 1`` pipelines, the ``R % n`` rows
    left over when the epoch's ``R`` rows are cut into ``n`` equal shards (fewer than ``n``;
    other rows each shuffled epoch) are left out, since a longer shard could need one step
    more than the others.

    The loader ``make_loader`` returns is checked, and ``ConfigError`` raised, so that these
    guarantees hold:

    * It must have the ``rank``, ``world_size`` and ``batch_size`` it was given.
    * With several pipelines it must have ``uneven="drop"``: ``"pad"``, the loader's default,
      repeats rows to even out the shards. A ``make_loader`` that takes an ``uneven`` keyword
      (``functools.partial(lf.Loader, ...)`` does) is given ``uneven="drop"``, unless the
      partial sets ``uneven`` itself; any other must pass ``uneven="drop"`` to its loader.
    * ``drop_last=True`` (static batch shapes, e.g. for TPUs) only where it drops nothing:
      each pipeline's rows must fill whole steps (``R // n`` a multiple of
      ``global_batch_size // n``). To leave the rows of a last partial step out instead, use
      ``DistributedDatasetBuilder(strategy).build(..., drop_remainder=True)``. (A loader with
      ``sampling=`` draws rows rather than reading each once; this rule does not apply to it.)

    Args:
        strategy: A ``tf.distribute`` strategy (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``).
        make_loader: Builds a pipeline's loader from ``rank``, ``world_size`` and ``batch_size``,
            e.g. ``functools.partial(lf.Loader, table, features=[...], label="y", seed=0)``.
        global_batch_size: Rows per step over all replicas; a multiple of the number of replicas.
        replication: ``"worker"`` (one pipeline per host) or ``"replica"`` (one per replica).
        as_dict: As for :func:`to_tf_dataset`.

    Returns:
        A distributed dataset, for ``model.fit`` or a custom loop over ``strategy.run``.

    Raises:
        ConfigError: ``global_batch_size`` is not a positive multiple of the number of replicas,
            a bad ``replication``, or a loader that breaks the rules above.

    Example:
        >>> import functools, lakefeed as lf, pyarrow as pa, tempfile, tensorflow as tf
        >>> from lakefeed.frameworks.tensorflow import distributed_dataset
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.g", pa.table({"x": [1.0, 2.0, 3.0, 4.0]}))
        >>> strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        >>> ds = distributed_dataset(strategy, functools.partial(lf.Loader, t, features=["x"]), 2)
        >>> sorted(float(v) for x in ds for v in tf.reshape(x, [-1]))
        [1.0, 2.0, 3.0, 4.0]
    """
    tf = _tf()
    where = "distributed_dataset"
    if replication not in ("worker", "replica"):
        msg = (
            f"{where}: replication must be 'worker' (one loader per host) or 'replica' (one per replica), "
            f"got {replication!r}"
        )
        raise ConfigError(msg)
    _check_global_batch(where, global_batch_size, int(strategy.num_replicas_in_sync))

    def dataset_fn(context: Any) -> Any:
        rank, pipelines, per_replica, share = _pipeline_geometry(context, global_batch_size)
        loader = _pipeline_loader(where, make_loader, rank=rank, world_size=pipelines, batch_size=per_replica * share)
        return _replica_slices(tf, loader, per_replica=per_replica, share=share, as_dict=as_dict, even=True)

    modes = tf.distribute.InputReplicationMode
    options = tf.distribute.InputOptions(
        experimental_replication_mode=modes.PER_WORKER if replication == "worker" else modes.PER_REPLICA,
        experimental_fetch_to_device=replication == "worker",
    )
    return strategy.distribute_datasets_from_function(dataset_fn, options)


# -- shared with tf_distributed.DistributedDatasetBuilder -------------------------------------------


def _check_global_batch(where: str, global_batch_size: object, replicas: int) -> None:
    """Raise ConfigError unless ``global_batch_size`` is a positive int that splits evenly over the replicas."""
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size <= 0:
        msg = (
            f"{where}: global_batch_size must be a positive int (rows per step over all replicas), "
            f"got {global_batch_size!r}"
        )
        raise ConfigError(msg)
    if global_batch_size % replicas:
        lower = global_batch_size // replicas * replicas
        upper = lower + replicas
        nearest = f"{lower} or {upper}" if lower else str(upper)
        msg = (
            f"{where}: global_batch_size {global_batch_size} does not split evenly over the strategy's {replicas} "
            f"replicas (num_replicas_in_sync); pass a multiple of {replicas}, e.g. {nearest}"
        )
        raise ConfigError(msg)


def _pipeline_geometry(context: Any, global_batch_size: int) -> tuple[int, int, int, int]:
    """(pipeline id, pipelines, rows per replica per step, replicas this pipeline feeds) of an input pipeline.

    The pipeline reads ``per_replica * share`` rows (``global_batch_size / pipelines``) per step.
    """
    pipelines = int(context.num_input_pipelines)
    per_replica = int(context.get_per_replica_batch_size(global_batch_size))
    share = max(1, int(context.num_replicas_in_sync) // pipelines)
    return int(context.input_pipeline_id), pipelines, per_replica, share


def _replica_slices(tf: Any, loader: Loader, *, per_replica: int, share: int, as_dict: bool, even: bool) -> Any:
    """One input pipeline's dataset: each loader batch (one step of the pipeline) cut into its replicas' slices.

    The loader must read ``per_replica * share`` rows a batch; the slices are consecutive, in
    replica order, ``per_replica`` rows each. A last partial batch (``drop_last=False``) is cut
    into ``share`` slices as even as possible when ``even``, so every replica gets rows in the
    last step too; else into slices of ``per_replica`` rows and a remainder, and the replicas
    past them get empty batches in that step.
    """
    dataset = to_tf_dataset(loader, as_dict=as_dict, prefetch=False)
    if share > 1:
        if loader.drop_last or not even:
            dataset = dataset.rebatch(per_replica, drop_remainder=loader.drop_last)  # static shape if drop_last
            rows = loader.rows_per_epoch()
            slices = len(loader) * share if loader.drop_last else -(-rows // per_replica)
        else:

            def split(*element: Any) -> Any:
                whole = element[0] if len(element) == 1 else element
                first = tf.nest.flatten(whole)[0]
                n = first.nrows() if isinstance(first, tf.RaggedTensor) else tf.shape(first, out_type=tf.int64)[0]

                def part(j: Any) -> Any:
                    lo, hi = n * j // share, n * (j + 1) // share
                    return tf.nest.map_structure(lambda t: t[lo:hi], whole)

                return tf.data.Dataset.range(share).map(part)

            dataset = dataset.flat_map(split)
            slices = len(loader) * share
        if not loader.resuming:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(slices))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _takes_uneven(make_loader: Any) -> bool:
    """Whether ``make_loader`` takes an ``uneven`` keyword that it does not already set itself."""
    if isinstance(make_loader, functools.partial) and "uneven" in make_loader.keywords:
        return False  # the caller's choice; the loader is checked
    try:
        parameters = inspect.signature(make_loader).parameters.values()
    except (TypeError, ValueError):  # no signature (some builtins)
        return False
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any((p.name == "uneven" and p.kind in named) or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _pipeline_loader(where: str, make_loader: LoaderFactory, *, rank: int, world_size: int, batch_size: int) -> Loader:
    """Call ``make_loader`` for one input pipeline; raise ConfigError if its loader cannot give each row once."""
    extra: dict[str, Any] = {"uneven": "drop"} if _takes_uneven(make_loader) else {}
    factory: Any = make_loader  # the protocol names only rank, world_size and batch_size
    loader: Loader = factory(rank=rank, world_size=world_size, batch_size=batch_size, **extra)
    made = (loader.rank, loader.world_size, loader.batch_size)
    if made != (rank, world_size, batch_size):
        msg = (
            f"{where}: make_loader(rank={rank}, world_size={world_size}, batch_size={batch_size}) built a loader with "
            f"rank={made[0]}, world_size={made[1]}, batch_size={made[2]}; pass the three on to lf.Loader (the shards "
            "and the rows per step depend on them)"
        )
        raise ConfigError(msg)
    if world_size > 1 and loader.uneven != "drop":
        msg = (
            f"{where}: the loader of input pipeline {rank} of {world_size} has uneven={loader.uneven!r}; "
            f"uneven='pad' repeats up to {world_size - 1} row(s) per epoch to even out the shards; build it with "
            "uneven='drop' (leave uneven out of a functools.partial(lf.Loader, ...) and it gets uneven='drop')"
        )
        raise ConfigError(msg)
    rows = loader.rows_per_epoch()
    if loader.drop_last and loader.sampling is None and rows % batch_size:
        msg = (
            f"{where}: drop_last=True would leave out the last {rows % batch_size} of the {rows} rows input pipeline "
            f"{rank} of {world_size} reads per epoch (they do not fill a step of {batch_size}); leave drop_last out "
            "(the last step is then smaller), pass a global_batch_size whose share divides the rows, or use "
            "DistributedDatasetBuilder(strategy).build(..., drop_remainder=True), which leaves them out"
        )
        raise ConfigError(msg)
    return loader
