"""TensorFlow: a tf.data.Dataset from the loader, Keras learning from it, and tf.distribute input."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ConfigError, UnsupportedOperationError
from lakefeed.frameworks.tensorflow import distributed_dataset, element_spec, to_tf_dataset
from tests.frameworks.test_tf_distributed import run_script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info logs
tf = pytest.importorskip("tensorflow", reason="tensorflow-cpu is installed in the main environment")
pytestmark = pytest.mark.tf

N = 1_000
W = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


@pytest.fixture
def mixed(tmp_path: Path) -> lf.Table:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, 3)).astype(np.float32)
    tags = pa.array([list(range(i % 4)) for i in range(N)], pa.list_(pa.int64()))  # variable length, some empty
    data = pa.table(
        {
            **{f"f{j}": x[:, j] for j in range(3)},
            "y": pa.array(rng.integers(0, 2, N), pa.int64()),
            "name": pa.array([f"row-{i}" for i in range(N)]),
            "tags": tags,
            "flag": pa.array(rng.random(N) < 0.5),
            "id": pa.array(np.arange(N), pa.int32()),
        }
    )
    return lf.Warehouse(tmp_path).create_table("t.mixed", data)


@pytest.fixture
def regression(tmp_path: Path) -> lf.Table:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4_096, 4)).astype(np.float32)
    data = pa.table({**{f"f{j}": x[:, j] for j in range(4)}, "y": x @ W, "id": pa.array(np.arange(4_096))})
    return lf.Warehouse(tmp_path).create_table("t.reg", data)


FEATURES = ["f0", "f1", "f2"]
COLUMNS = ["name", "tags", "flag", "id"]


def test_element_spec_matches_the_batches(mixed: lf.Table) -> None:
    loader = lf.Loader(mixed, batch_size=300, features=FEATURES, label="y", columns=COLUMNS, seed=2)
    ds = to_tf_dataset(loader, as_dict=True)
    spec = ds.element_spec
    expected = {
        "features": ([None, 3], tf.float32),
        "label": ([None], tf.int64),
        "name": ([None], tf.string),
        "tags": ([None, None], tf.int64),
        "flag": ([None], tf.bool),
        "id": ([None], tf.int32),
    }
    assert {k: (s.shape.as_list(), s.dtype) for k, s in spec.items()} == expected
    assert isinstance(spec["tags"], tf.RaggedTensorSpec)
    assert spec["tags"].ragged_rank == 1
    sizes = []
    for batch in ds:
        assert set(batch) == set(expected)
        for key, value in batch.items():
            assert value.dtype == spec[key].dtype
            assert spec[key].shape.is_compatible_with(value.shape)
        sizes.append(int(batch["features"].shape[0]))
    assert sizes == [300, 300, 300, 100]
    assert int(ds.cardinality()) == len(loader) == 4


def test_default_element_is_x_y_for_model_fit(mixed: lf.Table) -> None:
    plain = lf.Loader(mixed, batch_size=64, features=FEATURES, label="y")
    x, y = plain.tf().element_spec
    assert (x.shape.as_list(), x.dtype, y.shape.as_list(), y.dtype) == ([None, 3], tf.float32, [None], tf.int64)

    with_columns = lf.Loader(mixed, batch_size=64, features=FEATURES, label="y", columns=["name"], drop_last=True)
    x, y = with_columns.tf().element_spec
    assert sorted(x) == ["features", "name"]
    assert x["features"].shape.as_list() == [64, 3]  # drop_last: a fixed batch size
    assert y.shape.as_list() == [64]

    no_label = lf.Loader(mixed, batch_size=64, features=FEATURES)
    assert isinstance(no_label.tf().element_spec, tf.TensorSpec)
    assert element_spec(with_columns, as_dict=True)["label"].dtype == tf.int64


def test_rows_equal_the_numpy_loaders(mixed: lf.Table) -> None:
    def make() -> lf.Loader:
        return lf.Loader(
            mixed, batch_size=128, features=FEATURES, label="y", columns=COLUMNS, seed=5, shuffle_buffer=256
        )

    expected = list(make())
    got = list(to_tf_dataset(make(), as_dict=True))
    assert len(got) == len(expected) == 8
    for g, e in zip(got, expected, strict=True):
        for key in ("features", "label", "flag", "id"):
            np.testing.assert_array_equal(g[key].numpy(), e[key])
        assert [s.decode() for s in g["name"].numpy()] == e["name"].tolist()
        values, starts = e["tags"]
        np.testing.assert_array_equal(g["tags"].flat_values.numpy(), values)
        np.testing.assert_array_equal(g["tags"].row_starts().numpy(), starts)
    ids = np.concatenate([e["id"] for e in expected])
    assert sorted(ids.tolist()) == list(range(N))
    assert not np.array_equal(ids, np.arange(N))  # shuffled


def test_each_iteration_is_a_new_epoch(mixed: lf.Table) -> None:
    loader = lf.Loader(mixed, batch_size=100, features=FEATURES, columns=["id"], seed=1, shuffle_buffer=200)
    ds = loader.tf()
    first = np.concatenate([x["id"].numpy() for x in ds])
    second = np.concatenate([x["id"].numpy() for x in ds])
    assert loader.epoch == 2
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(N))
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("make", ["to_tf_dataset", "loader.tf"])
def test_without_prefetch_the_state_is_an_exact_resume_point(mixed: lf.Table, make: str) -> None:
    def loader() -> lf.Loader:
        return lf.Loader(mixed, batch_size=64, features=FEATURES, columns=["id"], seed=2, shuffle_buffer=128)

    def dataset(of: lf.Loader) -> Any:
        if make == "loader.tf":
            return of.tf(prefetch=False)
        return to_tf_dataset(of, as_dict=True, prefetch=False)

    reference = [b["id"].tolist() for b in loader()]
    run = loader()
    it = iter(dataset(run))
    head = [next(it)["id"].numpy().tolist() for _ in range(3)]
    time.sleep(0.3)  # time for any read-ahead (tf.data's injected prefetch) to take another batch
    state = run.state_dict()
    assert state["batch"] == 3
    again = loader()
    again.load_state_dict(state)
    rest = [b["id"].tolist() for b in again]
    assert head + rest == reference
    # through tf too: the rest of the saved epoch, then whole epochs (no cardinality to trip on)
    through = loader()
    through.load_state_dict(state)
    resumed = dataset(through)
    assert [b["id"].numpy().tolist() for b in resumed] == rest
    assert sorted(i for b in resumed for i in b["id"].numpy().tolist()) == sorted(i for b in reference for i in b)


def _keras_model(seed: int) -> Any:
    keras = tf.keras
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def test_model_fit_learns(regression: lf.Table) -> None:
    loader = lf.Loader(regression, batch_size=128, features=["f0", "f1", "f2", "f3"], label="y", seed=0)
    history = _keras_model(0).fit(loader.tf(), epochs=3, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert losses[0] > losses[1] > losses[2]
    assert losses[2] < 0.01 * losses[0]
    assert loader.epoch == 3


def test_model_fit_sees_another_order_each_epoch(regression: lf.Table) -> None:
    keras = tf.keras

    class Recorder(keras.Model):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.seen: list[np.ndarray] = []

        def call(self, x: dict[str, Any]) -> Any:
            return self.dense(x["features"])

        def train_step(self, data: Any) -> Any:
            self.seen.append(data[0]["id"].numpy())
            return super().train_step(data)

    loader = lf.Loader(regression, batch_size=256, features=["f0", "f1", "f2", "f3"], label="y", columns=["id"], seed=4)
    model = Recorder()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", run_eagerly=True)
    model.fit(loader.tf(), epochs=2, shuffle=False, verbose=0)
    steps = len(loader)
    assert len(model.seen) == 2 * steps
    first, second = np.concatenate(model.seen[:steps]), np.concatenate(model.seen[steps:])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(4_096))
    assert not np.array_equal(first, second)


def test_a_fixed_size_list_is_a_2d_spec(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.float32)), 3)
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "emb": emb}), tmp_path / "emb.parquet")
    table = lf.open_table(f"parquet://{tmp_path / 'emb.parquet'}")
    x, _ = lf.Loader(table, batch_size=4, label="x", columns=["emb"], drop_last=True).tf().element_spec
    assert (x["emb"].shape.as_list(), x["emb"].dtype) == ([4, 3], tf.float32)


def test_an_empty_table_gives_no_batches(tmp_path: Path) -> None:
    empty = pa.table({"x": pa.array([], pa.float32()), "y": pa.array([], pa.int64())})
    table = lf.Warehouse(tmp_path).create_table("t.empty", empty)
    ds = lf.Loader(table, batch_size=8, features=["x"], label="y").tf()
    assert int(ds.cardinality()) == 0
    assert list(ds) == []


def test_a_column_without_a_tf_dtype_is_refused_before_reading(tmp_path: Path) -> None:
    data = pa.table({"x": [1.0, 2.0], "at": pa.array([0, 1], pa.timestamp("us"))})
    table = lf.Warehouse(tmp_path).create_table("t.ts", data)
    loader = lf.Loader(table, batch_size=2, features=["x"], columns=["at"])
    with pytest.raises(UnsupportedOperationError, match=r"'at' is timestamp\[us\]"):
        loader.tf()


DISTRIBUTE = """
import functools, json, os, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import lakefeed as lf
from lakefeed.frameworks.tensorflow import distributed_dataset

table = lf.open_table(sys.argv[1])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
make = functools.partial(lf.Loader, table, features=["f0", "f1", "f2", "f3"], label="y", columns=["id"], seed=3)
out = {"replicas": strategy.num_replicas_in_sync}
for replication in ("worker", "replica"):
    ds = distributed_dataset(strategy, make, 64, replication=replication)
    epochs = []
    for _ in range(2):
        per_replica = [[], []]
        for x, y in ds:
            for r, part in enumerate(strategy.experimental_local_results(x)):
                per_replica[r].extend(part["id"].numpy().tolist())
        epochs.append(per_replica)
    out[replication] = epochs
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
make = functools.partial(lf.Loader, table, features=["f0", "f1", "f2", "f3"], label="y", seed=3)
history = model.fit(distributed_dataset(strategy, make, 64), epochs=2, shuffle=False, verbose=0)
out["loss"] = history.history["loss"]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_strategy_sees_every_row_once_per_epoch(regression: lf.Table, tmp_path: Path) -> None:
    # two logical CPUs must be configured before TensorFlow initialises: a process of its own
    out = run_script(DISTRIBUTE, f"iceberg://{tmp_path}/{regression.name}", timeout=300)
    assert out["replicas"] == 2
    for replication in ("worker", "replica"):
        first, second = out[replication]
        for per_replica in (first, second):
            seen = per_replica[0] + per_replica[1]
            assert sorted(seen) == list(range(4_096)), replication  # none twice, none lost
            assert len(per_replica[0]) == len(per_replica[1]) == 2_048
        assert first != second  # the second pass is the loader's next epoch
    # one loader shard per replica: the replicas' rows are disjoint within an epoch
    assert not set(out["replica"][0][0]) & set(out["replica"][0][1])
    assert out["loss"][1] < out["loss"][0]


EXACTLY_ONCE = """
import functools, json, sys
import numpy as np
import pyarrow as pa
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import lakefeed as lf
from lakefeed.errors import ConfigError
from lakefeed.frameworks.tensorflow import distributed_dataset

warehouse = lf.Warehouse(sys.argv[1])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
tables = {n: warehouse.create_table(f"t.n{n}", pa.table({"id": np.arange(n), "x": np.ones(n)})) for n in (96, 97, 128)}
out = {}
# "worker" first: once a MirroredStrategy has built per-replica input, it gives later per-worker input one
# pipeline per replica too (TensorFlow 2.21 keeps the input devices of the PER_REPLICA call)
for replication in ("worker", "replica"):
    for n, table in tables.items():
        for drop_last in (False, True):
            make = functools.partial(lf.Loader, table, features=["x"], columns=["id"], seed=3, drop_last=drop_last)
            key = f"{n} {replication} drop_last={drop_last}"
            try:
                ds = distributed_dataset(strategy, make, 64, replication=replication)
            except ConfigError as exc:
                out[key] = str(exc)
                continue
            steps, ids = [], []
            for x in ds:
                parts = strategy.experimental_local_results(x)
                steps.append([int(part["id"].shape[0]) for part in parts])
                ids.extend(int(i) for part in parts for i in part["id"].numpy())
            spec = [s.shape.as_list() for s in tf.nest.flatten(ds.element_spec, expand_composites=True)]
            out[key] = {"steps": steps, "ids": ids, "spec": spec}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_strategy_delivers_every_row_once_and_feeds_every_replica(tmp_path: Path) -> None:
    # 96 rows, a global batch of 64 on two replicas: one full step and one of 32 rows, split over both
    out = run_script(EXACTLY_ONCE, str(tmp_path), timeout=300)
    for replication in ("worker", "replica"):
        kept = out[f"96 {replication} drop_last=False"]
        assert sorted(kept["ids"]) == list(range(96)), replication  # each row once: none lost, none repeated
        assert kept["steps"] == [[32, 32], [16, 16]], replication  # every step feeds both replicas
        # one input pipeline (worker) reads all 97 rows; two (replica) read 48 each: 97 % 2 = 1 row is left
        # out (a different one each shuffled epoch), none is read twice
        odd = out[f"97 {replication} drop_last=False"]
        assert len(odd["ids"]) == len(set(odd["ids"])) == (97 if replication == "worker" else 96), replication
        assert set(odd["ids"]) <= set(range(97))
        assert all(min(step) > 0 for step in odd["steps"]), replication
        # drop_last=True would leave rows out (96 is not a whole number of global steps): refused, not silent
        assert "drop_last=True would leave out" in out[f"96 {replication} drop_last=True"], replication
        # ... and where the rows fill whole steps it gives static per-replica batches and every row once
        full = out[f"128 {replication} drop_last=True"]
        assert sorted(full["ids"]) == list(range(128)), replication
        assert full["steps"] == [[32, 32], [32, 32]], replication
        assert sorted(full["spec"]) == [[32], [32], [32, 1], [32, 1]], replication


class SeveralPipelines:
    """Stands in for a strategy with several input pipelines, each feeding one or more replicas, in one process.

    Pipelines that feed several replicas each are ``MultiWorkerMirroredStrategy``'s, one per
    worker process. ``distribute_datasets_from_function`` returns each pipeline's dataset, built
    from a real ``tf.distribute.InputContext``, as the strategy would on each worker.
    """

    def __init__(self, pipelines: int, replicas: int) -> None:
        self.pipelines, self.num_replicas_in_sync = pipelines, replicas

    def distribute_datasets_from_function(self, dataset_fn: Any, options: Any = None) -> list[Any]:
        contexts = [
            tf.distribute.InputContext(self.pipelines, i, self.num_replicas_in_sync) for i in range(self.pipelines)
        ]
        return [dataset_fn(context) for context in contexts]


@pytest.fixture
def ids_101(tmp_path: Path) -> lf.Table:
    data = pa.table({"id": np.arange(101), "x": np.ones(101, np.float32)})
    return lf.Warehouse(tmp_path).create_table("t.ids", data)


@pytest.mark.parametrize(("replicas", "replication"), [(2, "replica"), (2, "worker"), (4, "worker")])
def test_several_input_pipelines_read_disjoint_shards_in_equal_steps(
    ids_101: lf.Table, replicas: int, replication: str
) -> None:
    # two input pipelines, each feeding replicas // 2 replicas; a global batch of 16
    strategy: Any = SeveralPipelines(2, replicas)
    make = functools.partial(lf.Loader, ids_101, features=["x"], columns=["id"], seed=5)
    share = replicas // 2
    pipelines = distributed_dataset(strategy, make, 16, replication=replication)
    for _ in range(2):  # two epochs
        steps = []
        seen: list[int] = []
        for dataset in pipelines:
            slices = [x["id"].numpy().tolist() for x in dataset]
            assert int(dataset.cardinality()) == len(slices)
            assert len(slices) % share == 0  # whole steps: every replica of the pipeline gets a slice
            assert all(slices), "a replica got an empty slice"
            steps.append([slices[i : i + share] for i in range(0, len(slices), share)])
            seen += [i for s in slices for i in s]
        assert len(steps[0]) == len(steps[1]) == 7  # 50 rows each: 6 steps of 8 and one of 2
        for pipeline in steps:
            assert [sum(len(s) for s in step) for step in pipeline] == [8] * 6 + [2]
        # no row twice; 101 % 2 = 1 row left out so that both shards have 50
        assert len(seen) == len(set(seen)) == 100
        assert set(seen) <= set(range(101))


def test_a_partial_last_step_is_split_evenly_whatever_the_columns(mixed: lf.Table) -> None:
    # one pipeline feeding two replicas; 1,000 rows: 15 steps of 64 and one of 40, 20 rows to each replica
    strategy: Any = SeveralPipelines(1, 2)
    make = functools.partial(lf.Loader, mixed, features=FEATURES, label="y", columns=COLUMNS, seed=2)
    [dataset] = distributed_dataset(strategy, make, 64)
    slices = list(dataset)
    assert [int(y.shape[0]) for _, y in slices] == [32] * 30 + [20, 20]
    ids = np.concatenate([x["id"].numpy() for x, _ in slices])
    assert sorted(ids.tolist()) == list(range(N))
    for x, _ in slices[-2:]:  # each column cut at the same rows, the ragged one included
        names = [f"row-{i}" for i in x["id"].numpy()]
        assert [n.decode() for n in x["name"].numpy()] == names
        assert x["tags"].to_list() == [list(range(i % 4)) for i in x["id"].numpy()]


def test_settings_that_cannot_give_each_row_once_are_refused(ids_101: lf.Table) -> None:
    strategy: Any = SeveralPipelines(2, 2)
    pad = functools.partial(lf.Loader, ids_101, features=["x"], uneven="pad")
    with pytest.raises(ConfigError, match=r"uneven='pad' repeats"):
        distributed_dataset(strategy, pad, 16)
    short = functools.partial(lf.Loader, ids_101, features=["x"], drop_last=True)
    with pytest.raises(ConfigError, match=r"drop_last=True would leave out the last 2 of the 50 rows"):
        distributed_dataset(strategy, short, 16)

    def fixed_batch(*, rank: int, world_size: int, batch_size: int) -> lf.Loader:
        return lf.Loader(ids_101, 4, ["x"], rank=rank, world_size=world_size, uneven="drop")

    with pytest.raises(ConfigError, match="batch_size=8"):
        distributed_dataset(strategy, fixed_batch, 16)

    def no_uneven(*, rank: int, world_size: int, batch_size: int) -> lf.Loader:
        return lf.Loader(ids_101, batch_size, ["x"], rank=rank, world_size=world_size)

    with pytest.raises(ConfigError, match=r"uneven='pad' repeats"):
        distributed_dataset(strategy, no_uneven, 16)
    # one input pipeline: no shards, so nothing to repeat
    assert sum(int(x.shape[0]) for x in distributed_dataset(SeveralPipelines(1, 1), no_uneven, 16)[0]) == 101
    with pytest.raises(ConfigError, match="multiple of 2"):
        distributed_dataset(strategy, pad, 15)


def test_casts_show_in_the_element_spec(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("t.cast", pa.table({"x": [1.0, 2.0], "y": [0, 1]}))
    loader = lf.Loader(t, batch_size=2, features=["x"], label="y", dtypes={"label": "float32"})
    _, y = loader.tf().element_spec
    assert y.dtype == tf.float32
    _, label = next(iter(loader.tf()))
    assert label.dtype == tf.float32
