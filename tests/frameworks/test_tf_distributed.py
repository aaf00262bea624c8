"""tf.distribute: DistributedDatasetBuilder and DistributedStrategy (seed 000) on two logical CPUs and two workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, ConfigError, UnsupportedOperationError
from lakefeed.frameworks.tensorflow import (
    DistributedDatasetBuilder,
    DistributedPaimonDatasetBuilder,
    DistributedStrategy,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info logs
tf = pytest.importorskip("tensorflow", reason="tensorflow-cpu is installed in the main environment")
pytestmark = pytest.mark.tf

FEATURES = ["f0", "f1", "f2", "f3"]
W = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


def regression(n: int, seed: int = 0) -> pa.Table:
    """Rows ``id`` 0..n-1 with four features and ``y = x @ W`` plus a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = x @ W + 0.01 * rng.standard_normal(n).astype(np.float32)
    columns = {"id": pa.array(np.arange(n, dtype=np.int64)), **{f: pa.array(x[:, j]) for j, f in enumerate(FEATURES)}}
    return pa.table({**columns, "y": pa.array(y)})


def run_script(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- MirroredStrategy over two logical CPUs (a process of its own: set before TensorFlow initialises) ----

MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import lakefeed as lf
from lakefeed.errors import ConfigError
from lakefeed.frameworks.tensorflow import DistributedDatasetBuilder, DistributedStrategy

table = lf.Warehouse(sys.argv[1]).table("t.reg")
features = ["f0", "f1", "f2", "f3"]
strategy = DistributedStrategy.create_mirrored_strategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}


def epoch_ids(ds):
    per_replica, shapes = [[], []], set()
    for x, y in ds:
        for r, (part, label) in enumerate(zip(strategy.experimental_local_results(x),
                                              strategy.experimental_local_results(y))):
            per_replica[r].extend(part["id"].numpy().tolist())
            shapes.add((r, tuple(part["features"].shape), tuple(label.shape)))
    return per_replica, sorted(shapes)


builder = DistributedDatasetBuilder(strategy)
ds = builder.build(table, features, "y", columns=["id"], global_batch_size=64, seed=3)
out["spec"] = [d.shape.as_list() for d in tf.nest.flatten(ds.element_spec, expand_composites=True)]
out["steps"] = builder.steps_per_epoch
out["epochs"] = [epoch_ids(ds) for _ in range(2)]
out["loader_epoch"] = [lo.epoch for lo in builder.loaders]

# 1,000 of the 1,024 rows: 15 full steps of 64 and 40 rows over
subset = lf.col("id") < 1000
kept = DistributedDatasetBuilder(strategy).build(table, features, "y", columns=["id"], global_batch_size=64,
                                                  filter=subset, drop_remainder=False)
out["kept"] = epoch_ids(kept)
dropped = DistributedDatasetBuilder(strategy).build(table, features, "y", columns=["id"], global_batch_size=64,
                                                     filter=subset)
out["dropped"] = epoch_ids(dropped)

try:
    DistributedDatasetBuilder(strategy).build(table, features, "y", global_batch_size=63)
except ConfigError as exc:
    out["indivisible"] = str(exc)

with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")


class Steps(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


steps = Steps()
train = DistributedDatasetBuilder(strategy)
history = model.fit(train.build(table, features, "y", global_batch_size=64, seed=1), epochs=3, shuffle=False,
                    verbose=0, callbacks=[steps])
out["loss"] = history.history["loss"]
out["fit_steps"] = steps.steps
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_splits_the_global_batch_and_sees_every_row_once(tmp_path: Path) -> None:
    lf.Warehouse(tmp_path).create_table("t.reg", regression(1_024))
    out = run_script(MIRRORED, str(tmp_path))
    assert out["replicas"] == 2
    assert out["steps"] == 16  # 1,024 rows / 64 per step
    # each replica's element spec has the per-replica batch, static: features [32, 4], id [32], label [32]
    assert sorted(out["spec"]) == [[32], [32], [32], [32], [32, 4], [32, 4]]
    epochs = out["epochs"]
    for per_replica, shapes in epochs:
        assert shapes == [[0, [32, 4], [32]], [1, [32, 4], [32]]]  # global 64 split in two, every step
        assert len(per_replica[0]) == len(per_replica[1]) == 512
        assert sorted(per_replica[0] + per_replica[1]) == list(range(1_024))  # each row exactly once
    assert epochs[0][0] != epochs[1][0]  # the second pass is the next loader epoch, in another order
    assert out["loader_epoch"] == [2]  # one input pipeline on one worker
    # drop_remainder=False: every row of the 1,000 once; the last step has 40 rows: 32 + 8
    kept, kept_shapes = out["kept"]
    assert sorted(kept[0] + kept[1]) == list(range(1_000))
    assert [len(kept[0]), len(kept[1])] == [15 * 32 + 32, 15 * 32 + 8]
    assert [1, [8, 4], [8]] in kept_shapes
    # drop_remainder=True: 15 full steps, no row twice, the last 40 rows of the epoch's order left out
    dropped, dropped_shapes = out["dropped"]
    seen = dropped[0] + dropped[1]
    assert len(seen) == len(set(seen)) == 960
    assert set(seen) <= set(range(1_000))
    assert dropped_shapes == [[0, [32, 4], [32]], [1, [32, 4], [32]]]
    assert "global_batch_size 63" in out["indivisible"]
    assert "multiple of 2, e.g. 62 or 64" in out["indivisible"]
    loss = out["loss"]
    assert out["fit_steps"] == [16, 16, 16]
    assert all(np.isfinite(loss))
    assert loss[0] > loss[1] > loss[2]


# -- MultiWorkerMirroredStrategy: two local worker processes with TF_CONFIG ---------------------------

WORKER = """
import json, os, sys, time
import tensorflow as tf
import lakefeed as lf
from lakefeed.errors import ConfigError
from lakefeed.frameworks.tensorflow import DistributedDatasetBuilder, DistributedStrategy

strategy = DistributedStrategy.create_multi_worker_mirrored_strategy(communication="ring")
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
table = lf.Warehouse(sys.argv[1]).table("t.reg")
features = ["f0", "f1", "f2", "f3"]
out = {"replicas": strategy.num_replicas_in_sync, "index": index}

builder = DistributedDatasetBuilder(strategy)
ds = builder.build(table, features, "y", columns=["id"], global_batch_size=32, shuffle=False)
ids, sizes = [], set()
for x, y in ds:
    for part in strategy.experimental_local_results(x):
        ids.extend(part["id"].numpy().tolist())
        sizes.add(int(part["id"].shape[0]))
out["ids"], out["sizes"], out["steps"] = ids, sorted(sizes), builder.steps_per_epoch

shuffled = DistributedDatasetBuilder(strategy)
ds = shuffled.build(table, features, "y", columns=["id"], global_batch_size=32, seed=11)
out["shuffled"] = [int(i) for x, _ in ds for part in strategy.experimental_local_results(x) for i in part["id"]]

# Keras 3's model.fit fails under a multi-worker MultiWorkerMirroredStrategy whatever the input
# (keras-team/keras#20585): the loop TensorFlow's guides give for custom training instead
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    optimizer = tf.keras.optimizers.SGD(0.05)


def step(x, y):
    with tf.GradientTape() as tape:
        error = tf.squeeze(model(x, training=True), -1) - y
        loss = tf.nn.compute_average_loss(tf.square(error), global_batch_size=32)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss


@tf.function(autograph=False)
def train_step(x, y):
    return strategy.reduce("SUM", strategy.run(step, args=(x, y)), axis=None)


train = DistributedDatasetBuilder(strategy).build(table, features, "y", global_batch_size=32, seed=5)
losses = [[float(train_step(x, y)) for x, y in train] for _ in range(2)]
out["fit_steps"], out["loss"] = [len(e) for e in losses], [sum(e) / len(e) for e in losses]

try:  # the workers disagree on the seed: their shards would overlap
    DistributedDatasetBuilder(strategy).build(table, features, "y", global_batch_size=32, seed=index)
except ConfigError as exc:
    out["disagree"] = str(exc)
print(json.dumps(out), flush=True)
# skip TensorFlow's teardown of the cluster (seconds), once the other worker is past its last collective too
open(os.path.join(sys.argv[1], f"done-{index}"), "w").close()
while not os.path.exists(os.path.join(sys.argv[1], f"done-{1 - index}")):
    time.sleep(0.05)
os._exit(0)
"""


@pytest.mark.slow
def test_two_workers_read_disjoint_shards_and_train_in_step(tmp_path: Path) -> None:
    n = 300
    lf.Warehouse(tmp_path).create_table("t.reg", regression(n))
    hosts = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(config)}
        args = [sys.executable, "-c", textwrap.dedent(WORKER), str(tmp_path)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=120)
            assert proc.returncode == 0, stderr[-4000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    first, second = outs
    assert [first["index"], second["index"]] == [0, 1]
    assert first["replicas"] == second["replicas"] == 2
    # each worker reads 300 // 2 = 150 rows of table order; 16 rows per replica per step: 9 steps, 144 rows
    per_worker, per_step = n // 2, 32 // 2
    steps = per_worker // per_step
    assert first["steps"] == second["steps"] == steps == 9
    assert first["ids"] == list(range(steps * per_step))
    assert second["ids"] == list(range(per_worker, per_worker + steps * per_step))
    assert first["sizes"] == second["sizes"] == [per_step]
    # shuffled: disjoint, as many rows each, none twice
    a, b = set(first["shuffled"]), set(second["shuffled"])
    assert len(first["shuffled"]) == len(a) == len(second["shuffled"]) == len(b) == steps * per_step
    assert not a & b
    assert a | b <= set(range(n))
    # training ran to completion on both, in step (the loss is all-reduced: the same on both)
    assert first["fit_steps"] == second["fit_steps"] == [steps, steps]
    assert first["loss"] == second["loss"]
    assert all(np.isfinite(first["loss"]))
    assert first["loss"][1] < first["loss"][0]
    for out in outs:
        assert "different columns, filter, global_batch_size, seed" in out["disagree"]


# -- in this process: one replica (the default strategy) ---------------------------------------------


@pytest.fixture
def table(tmp_path: Path) -> lf.Table:
    return lf.Warehouse(tmp_path).create_table("t.small", regression(100))


def ids_of(dataset: Any) -> list[int]:
    return [int(i) for x, _ in dataset for i in x["id"]]


def test_the_seed_name_is_the_builder() -> None:
    assert DistributedPaimonDatasetBuilder is DistributedDatasetBuilder


def test_importing_the_module_does_not_import_tensorflow() -> None:
    code = "import sys, lakefeed.frameworks.tf_distributed; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_strategy_reads_every_row_once_per_epoch(table: lf.Table) -> None:
    builder = DistributedDatasetBuilder()
    ds = builder.build(table, FEATURES, "y", columns=["id"], global_batch_size=10, seed=1)
    assert builder.steps_per_epoch == 10
    assert len(builder.loaders) == 1
    first, second = ids_of(ds), ids_of(ds)
    assert sorted(first) == sorted(second) == list(range(100))
    assert first != second
    assert builder.loaders[0].epoch == 2


def test_the_snapshot_is_pinned_at_build(table: lf.Table) -> None:
    old = table.snapshot_id
    ds = DistributedDatasetBuilder().build(table, FEATURES, "y", columns=["id"], global_batch_size=10)
    extra = regression(10).set_column(0, "id", pa.array(np.arange(100, 110, dtype=np.int64)))
    table.append(extra)
    assert sorted(ids_of(ds)) == list(range(100))  # the rows of the snapshot current at build()
    now = DistributedDatasetBuilder().build(table, FEATURES, "y", columns=["id"], global_batch_size=10)
    assert sorted(ids_of(now)) == list(range(110))
    back = DistributedDatasetBuilder().build(table, FEATURES, "y", columns=["id"], global_batch_size=10, snapshot=old)
    assert sorted(ids_of(back)) == list(range(100))


def test_a_scan_a_filter_and_an_epoch(table: lf.Table) -> None:
    scan = table.scan(columns=["id", *FEATURES, "y"], filter=lf.col("id") < 40)
    ds = DistributedDatasetBuilder().build(scan, FEATURES, "y", columns=["id"], global_batch_size=8, epoch=3)
    assert sorted(ids_of(ds)) == list(range(40))
    loose = DistributedDatasetBuilder().build(
        table, FEATURES, "y", columns=["id"], global_batch_size=8, filter=lf.col("id") >= 90, drop_remainder=False
    )
    assert sorted(ids_of(loose)) == list(range(90, 100))


@pytest.mark.parametrize("size", [0, -4, 2.5, True, "64"])
def test_a_bad_global_batch_size_is_refused(table: lf.Table, size: Any) -> None:
    with pytest.raises(ConfigError, match="global_batch_size must be a positive int"):
        DistributedDatasetBuilder().build(table, FEATURES, "y", global_batch_size=size)


def test_less_than_one_step_per_worker_is_refused(table: lf.Table) -> None:
    with pytest.raises(ConfigError, match=r"reads 100 row\(s\) .* less than one step of 128"):
        DistributedDatasetBuilder().build(table, FEATURES, "y", global_batch_size=128)
    ds = DistributedDatasetBuilder().build(table, FEATURES, "y", global_batch_size=128, drop_remainder=False)
    assert [int(x.shape[0]) for x, _ in ds] == [100]


def test_unknown_columns_and_bad_arguments(table: lf.Table) -> None:
    builder = DistributedDatasetBuilder()
    with pytest.raises(ColumnNotFoundError, match="nope"):
        builder.build(table, ["f0", "nope"], "y", global_batch_size=10)
    with pytest.raises(ColumnNotFoundError, match="missing_label"):
        builder.build(table, FEATURES, "missing_label", global_batch_size=10)
    with pytest.raises(ConfigError, match="already pinned to snapshot"):
        builder.build(table.scan(), FEATURES, "y", global_batch_size=10, snapshot=table.snapshot_id)
    with pytest.raises(ConfigError, match="epoch must be an int >= 0"):
        builder.build(table, FEATURES, "y", global_batch_size=10, epoch=-1)
    with pytest.raises(ConfigError, match="drop_remainder must be True or False"):
        builder.build(table, FEATURES, "y", global_batch_size=10, drop_remainder="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"must be a tf\.distribute\.Strategy, got str"):
        DistributedDatasetBuilder("mirrored")
    with pytest.raises(ConfigError, match="call build\\(\\) first"):
        _ = builder.steps_per_epoch


def test_parameter_server_strategy_input_is_refused(table: lf.Table) -> None:
    # a real one connects to a cluster on creation; the builder only looks at its type
    pss = object.__new__(tf.distribute.experimental.ParameterServerStrategy)
    with pytest.raises(UnsupportedOperationError, match="ParameterServerStrategy runs input pipelines on the remote"):
        DistributedDatasetBuilder(pss).build(table, FEATURES, "y", global_batch_size=10)


# -- DistributedStrategy --------------------------------------------------------------------------


def test_mirrored_strategy_devices() -> None:
    assert DistributedStrategy.create_mirrored_strategy(["/cpu:0"]).num_replicas_in_sync == 1
    with pytest.raises(ConfigError, match="non-empty list of names"):
        DistributedStrategy.create_mirrored_strategy("/cpu:0")
    with pytest.raises(ConfigError, match="non-empty list of names"):
        DistributedStrategy.create_mirrored_strategy([])
    with pytest.raises(ConfigError, match=r"no device '/gpu:7' on this machine; it has \[.*CPU:0"):
        DistributedStrategy.create_mirrored_strategy(["/cpu:0", "/gpu:7"])
    with pytest.raises(ConfigError, match="is not a device name"):
        DistributedStrategy.create_mirrored_strategy(["gpu zero"])


def test_tpu_strategy_without_a_tpu_names_the_address() -> None:
    address = f"grpc://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match=f"no TPU at '{address}'") as info:
        DistributedStrategy.create_tpu_strategy(address, connect_timeout=2)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(ConfigError, match="no TPU at 'local'") as info:
        DistributedStrategy.create_tpu_strategy("local")
    assert isinstance(info.value.__cause__, tf.errors.OpError)
    with pytest.raises(ConfigError, match="is not 'grpc://host:port'"):
        DistributedStrategy.create_tpu_strategy("grpc://nohost")


def test_parameter_server_strategy_needs_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    create = DistributedStrategy.create_parameter_server_strategy
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="no cluster: TF_CONFIG is not set"):
        create()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        create()
    workers_only = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(workers_only))
    with pytest.raises(ConfigError, match="the cluster has no ps task"):
        create()
    cluster = {"chief": ["localhost:1"], "worker": ["localhost:2"], "ps": ["localhost:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match="this task is 'worker'; only the coordinator"):
        create()
    with pytest.raises(ConfigError, match="worker_hosts and ps_hosts must both be non-empty"):
        create(worker_hosts=["localhost:2"], ps_hosts=[])
    with pytest.raises(ConfigError, match="not both"):
        create(tf.distribute.cluster_resolver.TFConfigClusterResolver(), ps_hosts=["localhost:3"])


def test_multi_worker_strategy_checks_tf_config(monkeypatch: pytest.MonkeyPatch) -> None:
    create = DistributedStrategy.create_multi_worker_mirrored_strategy
    with pytest.raises(ConfigError, match="communication must be 'auto', 'ring' or 'nccl'"):
        create(communication="mpi")  # type: ignore[arg-type]
    monkeypatch.setenv("TF_CONFIG", "[1, 2]")
    with pytest.raises(ConfigError, match="TF_CONFIG must be a JSON object"):
        create()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}}))
    with pytest.raises(ConfigError, match="name this task as"):
        create()
