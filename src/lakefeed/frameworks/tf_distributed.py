"""``tf.distribute``: the seed's ``DistributedPaimonDatasetBuilder`` and ``DistributedStrategy`` (seed 000).

:class:`DistributedDatasetBuilder` (the seed's ``DistributedPaimonDatasetBuilder``; any table
format works) turns a table into input for a ``tf.distribute`` strategy with
``strategy.distribute_datasets_from_function``. Each input pipeline (one per worker host)
builds a lakefeed :class:`~lakefeed.loader.Loader` over its own shard of one pinned snapshot:

* Shards are disjoint. Pipeline ``i`` of ``n`` reads rows ``[i * R, (i + 1) * R)`` of the
  epoch's (shuffled) order, ``R = total // n``, so within an epoch no row is read twice and at
  most ``n - 1`` rows (the remainder of the division) are left out. With
  ``drop_remainder=True`` a pipeline also leaves out its last rows that do not fill a whole
  global step (fewer than ``global_batch_size / n``). Which rows those are changes with the
  epoch's order when shuffled.
* The global batch is split across replicas: every step gives each of the
  ``num_replicas_in_sync`` replicas ``global_batch_size / num_replicas_in_sync`` rows. A
  pipeline reads ``global_batch_size / n`` rows at a time and TensorFlow hands the
  consecutive per-replica slices to the worker's replicas.
* Every replica gets a full batch at every step (``drop_remainder=True``, the default), and
  every worker runs the same number of steps: no replica waits on a collective that another
  never reaches. :attr:`DistributedDatasetBuilder.steps_per_epoch` says how many.

:class:`DistributedStrategy` creates the strategies with lakefeed's checks: a list of devices
rather than a string, ``TF_CONFIG`` that parses, a parameter-server cluster with ``ps`` and
``worker`` jobs, a TPU that answers. Each failure is a
:class:`~lakefeed.errors.ConfigError` naming the value and the fix, with TensorFlow's
exception as its ``__cause__``.

Import the names from :mod:`lakefeed.frameworks.tensorflow` or from this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from lakefeed._utils import import_optional
from lakefeed.errors import ConfigError, UnsupportedOperationError
from lakefeed.frameworks.tensorflow import _check_global_batch, _pipeline_geometry, _replica_slices

if TYPE_CHECKING:
    import tensorflow as tf

    from lakefeed._typing import SnapshotRef
    from lakefeed.expr import Expr
    from lakefeed.loader import Loader
    from lakefeed.tables import Scan, Table

__all__ = ["DistributedDatasetBuilder", "DistributedPaimonDatasetBuilder", "DistributedStrategy"]

Communication = Literal["auto", "ring", "nccl"]
"""Collective implementation of ``MultiWorkerMirroredStrategy``: TensorFlow's choice, gRPC ring, NCCL (GPUs)."""

TPU_CONNECT_TIMEOUT: Final = 10.0
"""Seconds :meth:`DistributedStrategy.create_tpu_strategy` waits for a ``grpc://`` TPU address to answer."""

_TF_CONFIG: Final = "TF_CONFIG"


def _tf() -> Any:
    return import_optional("tensorflow", extra="tf", purpose="tf.distribute input and strategies")


class DistributedDatasetBuilder:
    """Builds ``tf.distribute`` input from a lakefeed table: one loader shard per worker, the global batch split.

    Args:
        strategy: The strategy the dataset is for. None: the strategy whose ``scope()`` is
            active when :meth:`build` is called (``tf.distribute.get_strategy()``; the default
            one-device strategy outside any scope).

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> from lakefeed.frameworks.tensorflow import DistributedDatasetBuilder, DistributedStrategy
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.db", pa.table({"x": [1.0] * 10, "y": [0, 1] * 5}))
        >>> builder = DistributedDatasetBuilder(DistributedStrategy.create_mirrored_strategy(["/cpu:0"]))
        >>> ds = builder.build(t, ["x"], "y", global_batch_size=4)
        >>> [tuple(x.shape) for x, y in ds], builder.steps_per_epoch
        ([(4, 1), (4, 1)], 2)
    """

    def __init__(self, strategy: tf.distribute.Strategy | None = None) -> None:
        if strategy is not None and not isinstance(strategy, _tf().distribute.Strategy):
            msg = (
                f"DistributedDatasetBuilder: strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}; "
                "create one with DistributedStrategy.create_mirrored_strategy() or pass None for the current one"
            )
            raise ConfigError(msg)
        self._strategy = strategy
        self._loaders: list[Loader] = []

    @property
    def strategy(self) -> tf.distribute.Strategy:
        """The strategy given, else the current one (``tf.distribute.get_strategy()``).

        Example:
            >>> DistributedDatasetBuilder().strategy.num_replicas_in_sync
            1
        """
        return self._strategy if self._strategy is not None else _tf().distribute.get_strategy()

    @property
    def loaders(self) -> tuple[Loader, ...]:
        """The loaders of this process's input pipelines made by the last :meth:`build`, by pipeline id.

        Each reads one shard; its ``epoch``, ``stats()`` and ``state_dict()`` describe that shard.
        Empty before :meth:`build`, and for strategies that build input lazily.

        Example:
            >>> DistributedDatasetBuilder().loaders
            ()
        """
        return tuple(sorted(self._loaders, key=lambda loader: loader.rank))

    @property
    def steps_per_epoch(self) -> int:
        """Global steps per epoch of the last :meth:`build`: the same on every worker and every epoch.

        Raises:
            ConfigError: :meth:`build` has not been called.

        Example:
            >>> DistributedDatasetBuilder().steps_per_epoch  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            lakefeed.errors.ConfigError: DistributedDatasetBuilder.steps_per_epoch: call build() first ...
        """
        if not self._loaders:
            msg = "DistributedDatasetBuilder.steps_per_epoch: call build() first (the steps depend on the table)"
            raise ConfigError(msg)
        return len(self._loaders[0])

    def build(
        self,
        table: Table | Scan | str,
        feature_columns: Sequence[str],
        label_column: str | None = None,
        *,
        global_batch_size: int,
        columns: Sequence[str] | None = None,
        filter: Expr | None = None,
        snapshot: SnapshotRef | None = None,
        shuffle: bool = True,
        seed: int = 0,
        epoch: int = 0,
        drop_remainder: bool = True,
        transform: Any = None,
        dtypes: dict[str, str] | None = None,
        fill_null: float | None = None,
        cache: Literal["memory", "disk"] | None = None,
        as_dict: bool = False,
    ) -> tf.distribute.DistributedDataset:
        """The table as a distributed dataset: disjoint shards per worker, ``global_batch_size`` rows per step.

        Each iteration (each Keras epoch) is the next loader epoch, in its own order drawn from
        ``(seed, epoch)``; every worker must pass the same arguments. On a
        ``MultiWorkerMirroredStrategy`` the workers check that they read the same snapshot
        with the same settings (a collective call: every worker must call ``build``).

        Args:
            table: A Table, a Scan (already pinned and filtered), a URI or ``"namespace.table"``.
            feature_columns: Numeric columns stacked into the float32 features ``[B, F]``.
            label_column: The column returned as the label; None: no label.
            global_batch_size: Rows per step over all replicas; a multiple of
                ``num_replicas_in_sync``. Each replica gets ``global_batch_size / num_replicas_in_sync``.
            columns: Columns passed through as they are; the element is then
                ``({"features": ..., name: ...}, label)``.
            filter: A row filter such as ``lf.col("split") == "train"`` (not with a Scan).
            snapshot: A snapshot id or datetime to read (not with a Scan). None: the current
                snapshot, pinned now; give it explicitly in multi-worker jobs whose table may
                be written while the workers start.
            shuffle: Shuffle the shards' rows (a new order each epoch); False reads table order.
            seed: Seed of the order; the same on every worker.
            epoch: The loader epoch the first iteration reads (e.g. ``initial_epoch`` when resuming).
            drop_remainder: Leave out each pipeline's last rows that do not fill a whole step, so
                every replica gets a full batch at every step and the batch dimension is static
                (required on TPUs). False keeps them: the last step is smaller, and some
                replicas may get an empty batch in it.
            transform: A fitted :class:`lakefeed.transforms.Pipeline` applied as rows are
                decoded (``feature_columns`` may name its outputs), or a function of the block's arrays.
            dtypes: Casts of the label and pass-through columns, e.g. ``{"label": "float32"}``.
            fill_null: Value for nulls in numeric columns (default: nulls raise ``SchemaError``).
            cache: Keep each shard's decoded rows (``"memory"`` or ``"disk"``); later epochs
                permute the same shard.
            as_dict: Yield the loader's dict (``"features"``, ``"label"``, each column) instead of ``(x, y)``.

        Returns:
            A ``tf.distribute.DistributedDataset`` for ``model.fit`` (built and compiled under
            ``strategy.scope()``) or a loop over ``strategy.run``.

        Raises:
            ConfigError: ``global_batch_size`` is not a positive multiple of the replicas, a
                shard holds less than one global step with ``drop_remainder=True``, or the
                workers disagree on the snapshot or settings.
            UnsupportedOperationError: The strategy runs input pipelines on remote workers
                (``ParameterServerStrategy``), where the Python loader cannot run.
            ColumnNotFoundError: A named column is not in the table.
            SchemaError: A feature is not numeric.

        Example:
            >>> import lakefeed as lf, numpy as np, pyarrow as pa, tempfile, tensorflow as tf
            >>> data = pa.table({"id": np.arange(8), "x": np.ones(8), "y": np.zeros(8)})
            >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.dd", data)
            >>> strategy = DistributedStrategy.create_mirrored_strategy(["/cpu:0"])
            >>> ds = DistributedDatasetBuilder(strategy).build(t, ["x"], "y", columns=["id"], global_batch_size=4)
            >>> sorted(int(i) for x, _ in ds for i in x["id"])
            [0, 1, 2, 3, 4, 5, 6, 7]
            >>> with strategy.scope():
            ...     model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
            ...     model.compile(optimizer="sgd", loss="mse")
            >>> ds = DistributedDatasetBuilder(strategy).build(t, ["x"], "y", global_batch_size=4)
            >>> len(model.fit(ds, epochs=2, shuffle=False, verbose=0).history["loss"])
            2
        """
        from lakefeed.loader import Loader
        from lakefeed.tables import Scan

        tf = _tf()
        where = "DistributedDatasetBuilder.build"
        strategy = self.strategy
        if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
            msg = (
                f"{where}: ParameterServerStrategy runs input pipelines on the remote worker tasks, where lakefeed's "
                "Python loader cannot run; train with MirroredStrategy or MultiWorkerMirroredStrategy, or feed the "
                "workers from tf.data sources they can read themselves"
            )
            raise UnsupportedOperationError(msg)
        replicas = int(strategy.num_replicas_in_sync)
        _check_global_batch(where, global_batch_size, replicas)
        for name, value in (("shuffle", shuffle), ("drop_remainder", drop_remainder), ("as_dict", as_dict)):
            if not isinstance(value, bool):
                msg = f"{where}: {name} must be True or False, got {value!r}"
                raise ConfigError(msg)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            msg = f"{where}: epoch must be an int >= 0 (the loader epoch to start at), got {epoch!r}"
            raise ConfigError(msg)
        if isinstance(table, Scan) and snapshot is not None:
            msg = (
                f"{where}: a Scan is already pinned to snapshot {table.snapshot_id}; pass snapshot= to table.scan() "
                "or pass the table instead of the scan"
            )
            raise ConfigError(msg)

        def make(source: Table | Scan | str, *, batch: int, rank: int, world: int, row_filter: Expr | None) -> Loader:
            return Loader(
                source,
                batch,
                list(feature_columns),
                label_column,
                columns=columns,
                filter=row_filter,
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_remainder,
                rank=rank,
                world_size=world,
                uneven="drop",  # disjoint shards of equal size: each row at most once, equal steps everywhere
                transform=transform,
                cache=cache,
                fill_null=fill_null,
                dtypes=dtypes,
            )

        # validates names and types now, and pins one snapshot for every pipeline of this process
        scan = make(table, batch=global_batch_size // replicas, rank=0, world=1, row_filter=filter).scan
        if snapshot is not None:
            scan = scan.table.scan(columns=scan.columns, filter=scan.filter, snapshot=snapshot)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            spec = transform.to_json() if hasattr(transform, "to_json") else None  # a fitted Pipeline
            settings = [feature_columns, label_column, columns, shuffle, seed, epoch, drop_remainder, dtypes, spec]
            _check_workers_agree(tf, strategy, scan, global_batch_size, settings)
        loaders: list[Loader] = []

        def dataset_fn(context: Any) -> Any:
            rank, pipelines, per_replica, share = _pipeline_geometry(context, global_batch_size)
            batch = per_replica * share  # this pipeline's part of a step, cut into its replicas' slices
            loader = make(scan, batch=batch, rank=rank, world=pipelines, row_filter=None)
            loader.set_epoch(epoch)
            if drop_remainder and len(loader) == 0:
                msg = (
                    f"{where}: input pipeline {rank} of {pipelines} reads {loader.rows_per_epoch()} row(s) of "
                    f"{scan.table.name} per epoch, less than one step of {batch} (global_batch_size "
                    f"{global_batch_size} over {pipelines} worker(s)); pass a smaller global_batch_size, or "
                    "drop_remainder=False"
                )
                raise ConfigError(msg)
            loaders.append(loader)
            return _replica_slices(tf, loader, per_replica=per_replica, share=share, as_dict=as_dict, even=False)

        self._loaders = loaders  # filled as the strategy calls dataset_fn (at once, for each local pipeline)
        return strategy.distribute_datasets_from_function(dataset_fn)

    def __repr__(self) -> str:
        name = type(self._strategy).__name__ if self._strategy is not None else "current strategy"
        return f"DistributedDatasetBuilder({name})"


DistributedPaimonDatasetBuilder = DistributedDatasetBuilder
"""The seed's name for :class:`DistributedDatasetBuilder` (it reads every lakefeed table format, Paimon included)."""


def _check_workers_agree(tf: Any, strategy: Any, scan: Scan, global_batch_size: int, settings: list[Any]) -> None:
    """Raise on every worker if the workers would read different snapshots or shard with different settings.

    Shards are disjoint only when every worker cuts the same epoch order of the same rows; a
    worker that started after a commit, or with another seed, would silently overlap the others.
    """
    snapshot = scan.snapshot_id if scan.snapshot_id is not None else -1
    text = json.dumps([scan.table.name, scan.columns, str(scan.filter), global_batch_size, settings], default=str)
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")
    mine = tf.constant([[snapshot, digest]], tf.int64)

    def gather() -> Any:
        return tf.distribute.get_replica_context().all_gather(mine, axis=0)

    values = strategy.experimental_local_results(strategy.run(tf.function(gather)))[0].numpy()
    snapshots = sorted({int(v) for v in values[:, 0]})
    if len(snapshots) > 1:
        msg = (
            f"DistributedDatasetBuilder.build: the workers read different snapshots of {scan.table.name} "
            f"({snapshots}; this one {snapshot}), so their shards would overlap; pass the same snapshot=<id> "
            "to build() on every worker"
        )
        raise ConfigError(msg)
    if len({int(v) for v in values[:, 1]}) > 1:
        msg = (
            f"DistributedDatasetBuilder.build: the workers called build() over {scan.table.name} with different "
            "columns, filter, global_batch_size, seed, shuffle, epoch or drop_remainder, so their shards would "
            "overlap; pass the same arguments on every worker"
        )
        raise ConfigError(msg)


class DistributedStrategy:
    """Creates ``tf.distribute`` strategies (the seed's factory), with checks and clear errors.

    Example:
        >>> from lakefeed.frameworks.tensorflow import DistributedStrategy
        >>> DistributedStrategy.create_mirrored_strategy(["/cpu:0"]).num_replicas_in_sync
        1
    """

    @staticmethod
    def create_mirrored_strategy(devices: Sequence[str] | None = None) -> tf.distribute.MirroredStrategy:
        """Synchronous training on the devices of one machine (all-reduce), e.g. its GPUs.

        Args:
            devices: Device names such as ``["/gpu:0", "/gpu:1"]``. None: every local GPU, or
                the CPU when there is none.

        Returns:
            A ``tf.distribute.MirroredStrategy``.

        Raises:
            ConfigError: ``devices`` is a string or empty, or names a device this machine does not have.

        Example:
            >>> DistributedStrategy.create_mirrored_strategy(["/cpu:0"]).extended.worker_devices
            ('/job:localhost/replica:0/task:0/device:CPU:0',)
        """
        tf = _tf()
        where = "DistributedStrategy.create_mirrored_strategy"
        if devices is None:
            return tf.distribute.MirroredStrategy()
        if isinstance(devices, str) or not all(isinstance(d, str) for d in devices) or not devices:
            msg = f"{where}: devices must be a non-empty list of names such as ['/gpu:0', '/gpu:1'], got {devices!r}"
            raise ConfigError(msg)
        logical = tf.config.list_logical_devices()
        known = {_device_key(tf, d.name) for d in logical}
        for device in devices:
            try:
                key = _device_key(tf, device)
            except ValueError as exc:
                msg = f"{where}: {device!r} is not a device name; write e.g. '/gpu:0' or '/cpu:0'"
                raise ConfigError(msg) from exc
            if key is None or (key[0] == "" and key not in known):  # remote devices are not checked
                msg = f"{where}: no device {device!r} on this machine; it has {sorted(d.name for d in logical)}"
                raise ConfigError(msg)
        try:
            return tf.distribute.MirroredStrategy(list(devices))
        except (ValueError, RuntimeError) as exc:
            msg = f"{where}: TensorFlow refused devices {list(devices)}: {exc}"
            raise ConfigError(msg) from exc

    @staticmethod
    def create_multi_worker_mirrored_strategy(
        communication: Communication = "auto",
    ) -> tf.distribute.MultiWorkerMirroredStrategy:
        """Synchronous training over several machines, configured by the ``TF_CONFIG`` environment variable.

        Every worker runs the same program; ``TF_CONFIG`` lists the workers and says which one
        this is (``{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type":
        "worker", "index": 0}}``). Without ``TF_CONFIG`` the strategy is one local worker.
        Create it at the start of the program, before any other TensorFlow call.

        Keras 3's ``model.fit`` fails under this strategy with more than one worker, whatever
        the input (keras-team/keras#20585); train with a loop over ``strategy.run`` (see
        ``docs/tf-distributed.md``).

        Args:
            communication: ``"auto"``, ``"ring"`` (gRPC; CPUs) or ``"nccl"`` (GPUs).

        Returns:
            A ``tf.distribute.MultiWorkerMirroredStrategy``.

        Raises:
            ConfigError: ``TF_CONFIG`` is not valid JSON or does not name this task in its
                cluster, ``communication`` is unknown, or TensorFlow was already initialised.

        Example:
            A worker's program (run once per worker, each with its own ``TF_CONFIG``)::

                os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["host0:12345", "host1:12345"]},
                                                      "task": {"type": "worker", "index": 0}})
                strategy = DistributedStrategy.create_multi_worker_mirrored_strategy()
                dataset = DistributedDatasetBuilder(strategy).build(table, ["f0", "f1"], "y", global_batch_size=256)
        """
        tf = _tf()
        where = "DistributedStrategy.create_multi_worker_mirrored_strategy"
        implementations = {
            "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
        }
        if communication not in implementations:
            msg = f"{where}: communication must be 'auto', 'ring' or 'nccl', got {communication!r}"
            raise ConfigError(msg)
        config = _tf_config(where)
        if config:
            workers = config.get("cluster", {}).get("worker", []) + config.get("cluster", {}).get("chief", [])
            task = config.get("task", {})
            if not workers or task.get("type") not in ("worker", "chief") or not isinstance(task.get("index"), int):
                msg = (
                    f"{where}: TF_CONFIG must list the workers under cluster.worker and name this task as "
                    f'{{"type": "worker", "index": i}}; got {json.dumps(config)}'
                )
                raise ConfigError(msg)
        options = tf.distribute.experimental.CommunicationOptions(implementation=implementations[communication])
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except (ValueError, RuntimeError) as exc:
            msg = (
                f"{where}: TensorFlow refused the strategy ({exc}); check TF_CONFIG, and create the strategy at the "
                "start of the program, before any other TensorFlow call"
            )
            raise ConfigError(msg) from exc

    @staticmethod
    def create_parameter_server_strategy(
        cluster_resolver: Any = None,
        *,
        worker_hosts: Sequence[str] | None = None,
        ps_hosts: Sequence[str] | None = None,
        chief_host: str | None = None,
        variable_partitioner: Any = None,
    ) -> tf.distribute.experimental.ParameterServerStrategy:
        """Asynchronous training with parameter servers, created on the coordinator (the ``chief`` task).

        The cluster comes from ``cluster_resolver``, else from ``worker_hosts`` and
        ``ps_hosts`` (the seed's form; the coordinator listens at ``chief_host``), else from
        ``TF_CONFIG``, which must have ``ps`` and ``worker`` jobs and name this task
        ``chief``. The worker and ps tasks run a ``tf.distribute.Server`` instead. Creating the
        strategy connects to the cluster.

        Note: ``ParameterServerStrategy`` runs input pipelines on the workers, where lakefeed's
        Python loader cannot run, so :meth:`DistributedDatasetBuilder.build` refuses it.

        Args:
            cluster_resolver: A ``tf.distribute.cluster_resolver.ClusterResolver``.
            worker_hosts: ``host:port`` of each worker task.
            ps_hosts: ``host:port`` of each parameter server.
            chief_host: ``host:port`` of this coordinator (default ``localhost:2222``).
            variable_partitioner: A ``tf.distribute.experimental.partitioners.Partitioner``.

        Returns:
            A ``tf.distribute.experimental.ParameterServerStrategy``.

        Raises:
            ConfigError: No cluster (no ``TF_CONFIG``), no ``ps`` or ``worker`` job, this task is
                not the chief, or hosts given both ways.

        Example:
            On the coordinator (it connects to the tasks, which must be running)::

                strategy = DistributedStrategy.create_parameter_server_strategy(
                    worker_hosts=["w0:2222", "w1:2222"], ps_hosts=["ps0:2222"], chief_host="chief:2222"
                )

            An incomplete cluster is refused before anything connects:

            >>> DistributedStrategy.create_parameter_server_strategy(worker_hosts=["w0:2222"])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            lakefeed.errors.ConfigError: DistributedStrategy.create_parameter_server_strategy: worker_hosts and ...
        """
        tf = _tf()
        where = "DistributedStrategy.create_parameter_server_strategy"
        resolvers = tf.distribute.cluster_resolver
        hosts = worker_hosts is not None or ps_hosts is not None or chief_host is not None
        if cluster_resolver is not None and hosts:
            msg = f"{where}: pass either cluster_resolver or worker_hosts/ps_hosts/chief_host, not both"
            raise ConfigError(msg)
        if hosts:
            if not worker_hosts or not ps_hosts or isinstance(worker_hosts, str) or isinstance(ps_hosts, str):
                msg = (
                    f"{where}: worker_hosts and ps_hosts must both be non-empty lists of 'host:port', "
                    f"got worker_hosts={worker_hosts!r}, ps_hosts={ps_hosts!r}"
                )
                raise ConfigError(msg)
            spec = {"chief": [chief_host or "localhost:2222"], "worker": list(worker_hosts), "ps": list(ps_hosts)}
            cluster_resolver = resolvers.SimpleClusterResolver(
                tf.train.ClusterSpec(spec), task_type="chief", task_id=0, rpc_layer="grpc"
            )
        elif cluster_resolver is None:
            config = _tf_config(where)
            if not config:
                msg = (
                    f"{where}: no cluster: TF_CONFIG is not set; set it on every task to "
                    '{"cluster": {"chief": [...], "worker": [...], "ps": [...]}, '
                    '"task": {"type": "chief", "index": 0}}, '
                    "or pass worker_hosts= and ps_hosts="
                )
                raise ConfigError(msg)
            cluster_resolver = resolvers.TFConfigClusterResolver()
        jobs = cluster_resolver.cluster_spec().as_dict()
        missing = [job for job in ("ps", "worker") if not jobs.get(job)]
        if missing:
            msg = f"{where}: the cluster has no {' or '.join(missing)} task; it has {jobs or 'no jobs'}"
            raise ConfigError(msg)
        if cluster_resolver.task_type not in (None, "chief"):
            msg = (
                f"{where}: this task is {cluster_resolver.task_type!r}; only the coordinator (task type 'chief') "
                "creates the strategy, worker and ps tasks run tf.distribute.Server(...).join()"
            )
            raise ConfigError(msg)
        try:
            return tf.distribute.experimental.ParameterServerStrategy(
                cluster_resolver, variable_partitioner=variable_partitioner
            )
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            msg = f"{where}: TensorFlow refused the cluster {jobs}: {exc}"
            raise ConfigError(msg) from exc

    @staticmethod
    def create_tpu_strategy(
        address: str | None = None, *, connect_timeout: float = TPU_CONNECT_TIMEOUT
    ) -> tf.distribute.TPUStrategy:
        """Synchronous training on a TPU: connects, initialises the TPU system, returns the strategy.

        Args:
            address: The TPU: ``"local"`` on a TPU VM, a Cloud TPU name, or ``"grpc://host:8470"``.
                None: found from the environment (``TPU_NAME``, a TPU VM).
            connect_timeout: Seconds a ``grpc://`` address has to accept a connection.

        Returns:
            A ``tf.distribute.TPUStrategy``.

        Raises:
            ConfigError: No TPU can be reached at ``address`` (TensorFlow's error is the ``__cause__``).

        Example:
            >>> DistributedStrategy.create_tpu_strategy("grpc://127.0.0.1:1", connect_timeout=1)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            lakefeed.errors.ConfigError: DistributedStrategy.create_tpu_strategy: no TPU at 'grpc://127.0.0.1:1': ...
        """
        tf = _tf()
        where = "DistributedStrategy.create_tpu_strategy"
        shown = repr(address) if address is not None else "the environment's TPU (address=None)"
        fix = "pass address='local' on a TPU VM, the Cloud TPU's name, or 'grpc://<host>:8470'"
        if address is not None and (not isinstance(address, str) or not address):
            msg = f"{where}: address must be a TPU name or 'grpc://host:port', got {address!r}; {fix}"
            raise ConfigError(msg)
        if address is not None and address.startswith("grpc://"):
            _probe(where, address, connect_timeout)
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
            if address not in (None, "local"):
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, OSError, tf.errors.OpError) as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            msg = f"{where}: no TPU at {shown}: {first}; {fix}"
            raise ConfigError(msg) from exc


def _device_key(tf: Any, name: str) -> tuple[str, str, int] | None:
    """(job, device type, index) of a device name (job "" for this machine); None without a device type.

    Raises ValueError for a malformed name.
    """
    spec = tf.DeviceSpec.from_string(name)
    if spec.device_type is None:
        return None
    job = "" if spec.job in (None, "localhost") else spec.job
    return (job, spec.device_type.upper(), spec.device_index or 0)


def _tf_config(where: str) -> dict[str, Any]:
    """``TF_CONFIG`` parsed ({} when unset or blank)."""
    raw = os.environ.get(_TF_CONFIG, "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        msg = f"{where}: TF_CONFIG is not valid JSON ({exc.msg} at position {exc.pos}): {raw[:200]!r}"
        raise ConfigError(msg) from exc
    if not isinstance(config, dict):
        msg = f"{where}: TF_CONFIG must be a JSON object with 'cluster' and 'task', got {raw[:200]!r}"
        raise ConfigError(msg)
    return config


def _probe(where: str, address: str, timeout: float) -> None:
    """Raise ConfigError unless ``grpc://host:port`` accepts a TCP connection within ``timeout`` seconds."""
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        msg = f"{where}: {address!r} is not 'grpc://host:port'"
        raise ConfigError(msg) from exc
    if not host or port is None:
        msg = f"{where}: {address!r} is not 'grpc://host:port' (e.g. 'grpc://10.0.0.2:8470')"
        raise ConfigError(msg)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        msg = (
            f"{where}: no TPU at {address!r}: nothing accepts connections there ({exc}); "
            "is the TPU up and the address right?"
        )
        raise ConfigError(msg) from exc
