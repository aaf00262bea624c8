"""The tf.data pipeline tools: builder steps against raw tf.data, optimize, benchmark, recommendations, Keras."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ConfigError, LakefeedError, NotFoundError, SchemaError
from lakefeed.frameworks import tf_pipeline
from lakefeed.frameworks.tensorflow import (
    AUTOTUNE,
    DatasetPipelineBuilder,
    PipelineMonitor,
    Recommendations,
    TensorFlowPipelineOptimizer,
    is_batched,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info logs
tf = pytest.importorskip("tensorflow", reason="tensorflow-cpu is installed in the main environment")
pytestmark = pytest.mark.tf

N = 1_000


def rows(n: int = N) -> Any:
    """Unbatched (features, label) rows; feature 0 is the row's id."""
    x = np.stack([np.arange(n, dtype=np.float32), np.ones(n, np.float32)], axis=1)
    return tf.data.Dataset.from_tensor_slices((x, np.arange(n) % 2))


def ids(dataset: Any) -> list[int]:
    """The ids (feature 0) of every row, in order, for batched or unbatched (features, label) elements."""
    out: list[int] = []
    for x, _ in dataset:
        out.extend(np.asarray(x.numpy()).reshape(-1, 2)[:, 0].astype(int).tolist())
    return out


def elements(dataset: Any) -> list[Any]:
    return [tf.nest.map_structure(lambda t: t.numpy().tolist(), e) for e in dataset]


def counting_source(n: int) -> tuple[Any, list[int]]:
    """A generator dataset and a list that grows by one per row the generator yields."""
    calls: list[int] = []

    def gen() -> Any:
        for i in range(n):
            calls.append(i)
            yield np.float32(i), np.int64(i % 2)

    spec = (tf.TensorSpec((), tf.float32), tf.TensorSpec((), tf.int64))
    return tf.data.Dataset.from_generator(gen, output_signature=spec), calls


def test_autotune_is_tf_data_autotune() -> None:
    assert tf.data.AUTOTUNE == AUTOTUNE


def test_importing_the_module_does_not_import_tensorflow() -> None:
    code = "import sys, lakefeed.frameworks.tensorflow; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_module_named_tensorflow_still_imports_the_real_tensorflow() -> None:
    assert tf_pipeline._tf() is tf
    assert tf.__file__ is not None
    assert "lakefeed" not in tf.__file__


# -- DatasetPipelineBuilder: each step is the raw tf.data step ------------------------------------


def test_builder_cache_is_tf_cache_and_reads_the_source_once() -> None:
    source, calls = counting_source(50)
    built = DatasetPipelineBuilder(source).cache().build()
    first = elements(built)
    assert len(calls) == 50
    second = elements(built)
    assert len(calls) == 50  # the second pass read the cache
    assert first == second == elements(source.cache())


def test_builder_cache_to_a_file(tmp_path: Path) -> None:
    cache = tmp_path / "rows"
    built = DatasetPipelineBuilder(rows(20)).cache(cache).build()
    assert elements(built) == elements(rows(20))
    assert any(p.name.startswith("rows") for p in tmp_path.iterdir())
    assert elements(built) == elements(rows(20))


def test_builder_shuffle_keeps_the_rows_and_reshuffles_every_epoch() -> None:
    built = DatasetPipelineBuilder(rows()).shuffle(N).build()
    first, second = ids(built), ids(built)
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second
    assert first != list(range(N))


def test_builder_shuffle_with_a_seed_is_tf_shuffle_with_that_seed() -> None:
    built = DatasetPipelineBuilder(rows()).shuffle(100, seed=7).build()
    raw = rows().shuffle(100, seed=7, reshuffle_each_iteration=True)
    assert [ids(built), ids(built)] == [ids(raw), ids(raw)]


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_builder_batch_is_tf_batch(drop_remainder: bool) -> None:
    built = DatasetPipelineBuilder(rows(10)).batch(4, drop_remainder=drop_remainder).build()
    raw = rows(10).batch(4, drop_remainder=drop_remainder)
    assert elements(built) == elements(raw)
    assert built.element_spec == raw.element_spec
    assert [len(x) for x, _ in built] == ([4, 4] if drop_remainder else [4, 4, 2])


@pytest.mark.parametrize("buffer_size", [None, 0, 3, AUTOTUNE])
def test_builder_prefetch_is_tf_prefetch(buffer_size: int | None) -> None:
    built = DatasetPipelineBuilder(rows(10)).prefetch(buffer_size).build()
    assert elements(built) == elements(rows(10).prefetch(AUTOTUNE if buffer_size is None else buffer_size))


@pytest.mark.parametrize("calls", [None, 1, 2, AUTOTUNE])
def test_builder_map_is_tf_map_in_order(calls: int | None) -> None:
    def double(x: Any, y: Any) -> Any:
        return x * 2.0, y + 1

    built = DatasetPipelineBuilder(rows(200)).map(double, calls).build()
    assert elements(built) == elements(rows(200).map(double))


def test_builder_map_on_dict_elements() -> None:
    ds = tf.data.Dataset.from_tensor_slices({"a": [1, 2, 3], "b": [10, 20, 30]})
    built = DatasetPipelineBuilder(ds).map(lambda d: d["a"] + d["b"]).build()
    assert elements(built) == [11, 22, 33]


def test_builder_repeat_is_tf_repeat() -> None:
    assert elements(DatasetPipelineBuilder(rows(3)).repeat(2).build()) == elements(rows(3).repeat(2))
    forever = DatasetPipelineBuilder(rows(3)).repeat().build()
    assert int(forever.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    assert len(elements(forever.take(7))) == 7
    assert elements(DatasetPipelineBuilder(rows(3)).repeat(0).build()) == []


def test_builder_chain_is_the_raw_pipeline() -> None:
    builder = DatasetPipelineBuilder(rows(100))
    returned = builder.cache().shuffle(100, seed=1).batch(16).map(lambda x, y: (x + 1.0, y)).prefetch()
    assert returned is builder  # fluent, like the seed: each method returns the builder
    raw = rows(100).cache().shuffle(100, seed=1).batch(16).map(lambda x, y: (x + 1.0, y)).prefetch(AUTOTUNE)
    assert elements(builder.build()) == elements(raw)
    assert builder.steps == ("cache", "shuffle(100)", "batch(16)", "map", "prefetch(AUTOTUNE)")
    assert repr(builder) == "DatasetPipelineBuilder(cache → shuffle(100) → batch(16) → map → prefetch(AUTOTUNE))"
    assert repr(DatasetPipelineBuilder(rows(1))) == "DatasetPipelineBuilder(no steps)"


def test_builder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"must be a tf\.data\.Dataset, got list"):
        DatasetPipelineBuilder([1, 2, 3])
    with pytest.raises(ConfigError, match=r"cache after shuffle\(\).*call cache\(\) before shuffle\(\)"):
        DatasetPipelineBuilder(rows(5)).shuffle(5).cache()
    with pytest.raises(ConfigError, match=r"infinite.*cache before repeat\(\)"):
        DatasetPipelineBuilder(rows(5)).repeat().cache()
    with pytest.raises(ConfigError, match="existing directory"):
        DatasetPipelineBuilder(rows(5)).cache(tmp_path / "missing" / "c")
    with pytest.raises(ConfigError, match="existing directory"):
        DatasetPipelineBuilder(rows(5)).cache(tmp_path)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match=rf"buffer_size must be an int >= 1, got {bad!r}"):
            DatasetPipelineBuilder(rows(5)).shuffle(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed must be"):
        DatasetPipelineBuilder(rows(5)).shuffle(5, seed=-3)
    for bad in (0, -1, False):
        with pytest.raises(ConfigError, match=rf"batch_size must be an int >= 1, got {bad!r}"):
            DatasetPipelineBuilder(rows(5)).batch(bad)
    with pytest.raises(ConfigError, match="drop_remainder must be True or False"):
        DatasetPipelineBuilder(rows(5)).batch(2, drop_remainder=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"buffer_size must be an int >= 0 or tf.data.AUTOTUNE, got -2"):
        DatasetPipelineBuilder(rows(5)).prefetch(-2)
    with pytest.raises(ConfigError, match="map_func must be callable, got int"):
        DatasetPipelineBuilder(rows(5)).map(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"num_parallel_calls must be an int >= 1 or tf\.data\.AUTOTUNE, got 0"):
        DatasetPipelineBuilder(rows(5)).map(lambda x, y: x, 0)
    with pytest.raises(ConfigError, match="count must be an int >= -1, got -2"):
        DatasetPipelineBuilder(rows(5)).repeat(-2)


def test_builder_map_that_does_not_fit_the_elements_is_a_schema_error() -> None:
    def one_argument(x: Any) -> Any:  # the elements are (x, y) pairs: called with two arguments
        return x

    with pytest.raises(SchemaError, match=r"map\(one_argument\) on elements") as info:
        DatasetPipelineBuilder(rows(5)).map(one_argument)
    assert isinstance(info.value.__cause__, TypeError)

    def bad_dtypes(x: Any, y: Any) -> Any:
        return x + y  # float32 + int64

    with pytest.raises(SchemaError, match="do not fit the pipeline") as info:
        DatasetPipelineBuilder(rows(5)).map(bad_dtypes)
    assert info.value.__cause__ is not None


# -- TensorFlowPipelineOptimizer.optimize ---------------------------------------------------------


def test_optimize_unbatched_rows() -> None:
    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(rows(), shuffle_buffer_size=N, batch_size=64)
    assert optimizer.steps == ("cache", f"shuffle({N})", "batch(64)", "prefetch(AUTOTUNE)")
    assert optimizer.monitor is None
    x, y = ds.element_spec
    assert (x.shape.as_list(), y.shape.as_list()) == ([None, 2], [None])
    sizes = [len(x) for x, _ in ds]
    assert sizes == [64] * 15 + [40]
    first, second = ids(ds), ids(ds)
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second  # the cache is before the shuffle: every epoch has its own order


def test_optimize_caches_before_shuffling() -> None:
    source, calls = counting_source(300)
    ds = TensorFlowPipelineOptimizer().optimize(source, shuffle_buffer_size=300, batch_size=50)
    first = [v for x, _ in ds for v in x.numpy().tolist()]
    calls.clear()
    second = [v for x, _ in ds for v in x.numpy().tolist()]
    assert calls == []  # the second epoch came from the cache
    assert sorted(first) == sorted(second) == [float(i) for i in range(300)]
    assert first != second


def test_optimize_with_everything_off_is_the_input() -> None:
    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(
        rows(10), enable_cache=False, shuffle_buffer_size=0, batch_size=None, prefetch_buffer_size=0
    )
    assert optimizer.steps == ()
    assert elements(ds) == elements(rows(10))


def test_optimize_maps_whole_batches_after_batching() -> None:
    seen_ranks: list[int] = []

    def scale(x: Any, y: Any) -> Any:
        seen_ranks.append(x.shape.rank)  # recorded while tracing
        return x * 10.0, y

    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(rows(100), shuffle_buffer_size=0, batch_size=32, map_func=scale, parallel_map_calls=2)
    assert optimizer.steps == ("cache", "batch(32)", "map", "prefetch(AUTOTUNE)")
    assert set(seen_ranks) == {2}
    assert elements(ds) == elements(rows(100).batch(32).map(scale))


def test_optimize_does_not_rebatch_a_batched_dataset() -> None:
    batched = rows().batch(100)
    assert is_batched(batched.element_spec)
    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(batched, shuffle_buffer_size=10, batch_size=32)
    assert optimizer.steps == ("cache", "shuffle(10)", "batch(32) skipped: already batched", "prefetch(AUTOTUNE)")
    assert ds.element_spec == batched.element_spec
    assert [len(x) for x, _ in ds] == [100] * 10
    assert sorted(ids(ds)) == list(range(N))


def test_optimize_a_drop_remainder_dataset_with_batch_size_none() -> None:
    fixed = rows().batch(100, drop_remainder=True)
    assert not is_batched(fixed.element_spec)  # known sizes read as unbatched rows: the documented case
    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(fixed, shuffle_buffer_size=10, batch_size=None)
    assert ds.element_spec == fixed.element_spec
    assert "batch" not in " ".join(optimizer.steps)


def test_is_batched() -> None:
    assert not is_batched(rows().element_spec)  # a scalar label
    assert is_batched(rows().batch(3).element_spec)
    assert is_batched(tf.data.Dataset.from_tensor_slices({"a": [[1, 2]], "b": [[3, 4]]}).batch(2).element_spec)
    ragged = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1], [2, 3], [4, 5, 6]]))
    assert is_batched(ragged.element_spec)  # the documented ambiguity: variable-length rows read as batched
    assert is_batched(ragged.batch(2).element_spec)
    assert not is_batched(tf.data.Dataset.range(3).element_spec)
    assert not is_batched(())


def test_optimize_options_and_cache_file(tmp_path: Path) -> None:
    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(
        rows(100), num_workers=2, cache_file=str(tmp_path / "cache"), prefetch_buffer_size=4, batch_size=10
    )
    assert optimizer.steps[0] == f"cache({str(tmp_path / 'cache')!r})"
    assert optimizer.steps[-1] == "prefetch(4)"
    assert ds.options().threading.private_threadpool_size == max(1, len(os.sched_getaffinity(0)) // 2)
    assert sorted(ids(ds)) == list(range(100))
    assert any(p.name.startswith("cache") for p in tmp_path.iterdir())
    assert sorted(ids(ds)) == list(range(100))


def test_optimize_monitoring_counts_what_the_consumer_got() -> None:
    optimizer = TensorFlowPipelineOptimizer()
    ds = optimizer.optimize(rows(), batch_size=64, enable_performance_monitoring=True)
    assert optimizer.steps[-1] == "monitor"
    monitor = optimizer.monitor
    assert isinstance(monitor, PipelineMonitor)
    assert monitor.stats()["batch_count"] == 0
    assert sorted(ids(ds)) == list(range(N))
    stats = monitor.stats()
    assert (stats["batch_count"], stats["total_samples"]) == (16, N)
    assert stats["elapsed_time"] > 0
    assert stats["throughput"] == pytest.approx(16 / stats["elapsed_time"])
    assert stats["samples_per_sec"] == pytest.approx(N / stats["elapsed_time"])
    _ = ids(ds)  # a second epoch adds up
    assert monitor.stats()["total_samples"] == 2 * N
    monitor.reset()
    assert monitor.stats() == {
        "batch_count": 0,
        "total_samples": 0,
        "elapsed_time": 0.0,
        "throughput": 0.0,
        "samples_per_sec": 0.0,
        "latency_per_batch_ms": 0.0,
    }
    optimizer.optimize(rows(10))
    assert optimizer.monitor is None  # a pipeline without monitoring


def test_monitor_counts_rows_of_dict_ragged_and_unbatched_elements() -> None:
    monitor = PipelineMonitor()
    dicts = tf.data.Dataset.from_tensor_slices({"a": np.zeros((10, 3)), "b": np.arange(10)}).batch(4)
    _ = list(monitor.wrap(dicts))
    assert (monitor.stats()["batch_count"], monitor.stats()["total_samples"]) == (3, 10)
    monitor.reset()
    ragged = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1], [2, 3], [4, 5, 6]])).batch(2)
    assert [r.to_list() for r in monitor.wrap(ragged)] == [[[1], [2, 3]], [[4, 5, 6]]]
    assert monitor.stats()["total_samples"] == 3
    monitor.reset()
    _ = list(monitor.wrap(rows(7)))  # unbatched rows: one each
    assert monitor.stats()["total_samples"] == 7


def test_monitor_keeps_the_element_structure() -> None:
    from collections import namedtuple

    Row = namedtuple("Row", ["x", "y"])
    for ds in (
        tf.data.Dataset.from_tensor_slices(([1, 2],)),  # a 1-tuple stays a 1-tuple
        tf.data.Dataset.from_tensor_slices(Row(x=[1, 2], y=[3, 4])),
        tf.data.Dataset.from_tensor_slices({"a": [1, 2]}),
        tf.data.Dataset.range(2),
    ):
        wrapped = PipelineMonitor().wrap(ds)
        assert wrapped.element_spec == ds.element_spec
        assert elements(wrapped) == elements(ds)
    assert type(next(iter(PipelineMonitor().wrap(tf.data.Dataset.from_tensor_slices(Row(x=[1], y=[2])))))) is Row


def test_monitor_refuses_a_strategy_scope() -> None:
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope(), pytest.raises(ConfigError, match=r"outside `with strategy\.scope"):
        TensorFlowPipelineOptimizer().optimize(rows(10), enable_performance_monitoring=True)


def test_optimize_errors(tmp_path: Path) -> None:
    optimize = TensorFlowPipelineOptimizer().optimize
    with pytest.raises(ConfigError, match=r"must be a tf\.data\.Dataset, got ndarray"):
        optimize(np.zeros(3))
    with pytest.raises(ConfigError, match="num_workers must be an int >= 1, got 0"):
        optimize(rows(5), 0)
    with pytest.raises(ConfigError, match=r"prefetch_buffer_size must be an int >= 0 or tf\.data\.AUTOTUNE, got \-5"):
        optimize(rows(5), prefetch_buffer_size=-5)
    with pytest.raises(ConfigError, match=r"parallel_map_calls must be an int >= 1 or tf\.data\.AUTOTUNE, got 0"):
        optimize(rows(5), parallel_map_calls=0)
    with pytest.raises(ConfigError, match="shuffle_buffer_size must be an int >= 0, got -1; pass 0 for no shuffle"):
        optimize(rows(5), shuffle_buffer_size=-1)
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1, got 0; pass None for no batching"):
        optimize(rows(5), batch_size=0)
    with pytest.raises(ConfigError, match="enable_cache and enable_performance_monitoring must be True or False"):
        optimize(rows(5), enable_cache="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs enable_cache=True"):
        optimize(rows(5), enable_cache=False, cache_file=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="existing directory"):
        optimize(rows(5), cache_file=str(tmp_path / "no" / "c"))
    with pytest.raises(ConfigError, match=r"infinite.*cache before repeat\(\)"):
        optimize(rows(5).repeat())
    assert int(optimize(rows(5).repeat(), enable_cache=False).take(3).cardinality()) == 3
    with pytest.raises(ConfigError, match="map_func must be callable"):
        optimize(rows(5), map_func="double")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="map_func") as info:
        optimize(rows(5), map_func=lambda x, y: x + y)  # float32 + int64
    assert info.value.__cause__ is not None


# -- benchmark ------------------------------------------------------------------------------------


def test_benchmark_counts_real_batches_and_rows() -> None:
    m = TensorFlowPipelineOptimizer.benchmark(rows().batch(64), verbose=False, batch_size=999)
    assert (m["batch_count"], m["total_samples"]) == (16, N)  # the last batch has 40 rows, not 64 or 999
    assert m["elapsed_time"] > 0
    assert m["throughput"] == m["batch_count"] / m["elapsed_time"]
    assert m["samples_per_sec"] == m["total_samples"] / m["elapsed_time"]
    assert m["latency_per_batch_ms"] == pytest.approx(1000 * m["elapsed_time"] / m["batch_count"])


def test_benchmark_stops_at_num_batches_or_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    part = TensorFlowPipelineOptimizer.benchmark(rows().batch(64), num_batches=5)
    assert (part["batch_count"], part["total_samples"]) == (5, 320)
    assert capsys.readouterr().out.startswith("5 batches, 320 samples in ")
    short = TensorFlowPipelineOptimizer.benchmark(rows().batch(64), num_batches=100)
    assert (short["batch_count"], short["total_samples"]) == (16, N)
    assert "(the dataset ended before 100)" in capsys.readouterr().out
    endless = TensorFlowPipelineOptimizer.benchmark(rows(10).batch(4).repeat(), num_batches=7, verbose=False)
    assert (endless["batch_count"], endless["total_samples"]) == (7, 4 + 4 + 2 + 4 + 4 + 2 + 4)


def test_benchmark_element_kinds() -> None:
    bench = TensorFlowPipelineOptimizer.benchmark
    assert bench(rows(30), verbose=False)["total_samples"] == 30  # unbatched rows: one each
    dicts = tf.data.Dataset.from_tensor_slices({"a": np.zeros((10, 3)), "b": np.arange(10)}).batch(4)
    assert bench(dicts, verbose=False)["total_samples"] == 10
    ragged = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1], [2, 3], [4, 5, 6]])).batch(2)
    assert bench(ragged, verbose=False)["total_samples"] == 3
    windows = tf.data.Dataset.range(10).window(4)  # nested datasets: no shape, batch_size counts
    assert bench(windows, verbose=False, batch_size=4)["total_samples"] == 3 * 4
    empty = bench(rows(0).batch(4), verbose=False)
    assert (empty["batch_count"], empty["total_samples"], empty["throughput"], empty["latency_per_batch_ms"]) == (
        0,
        0,
        0.0,
        0.0,
    )


def test_benchmark_errors() -> None:
    bench = TensorFlowPipelineOptimizer.benchmark
    for bad in (0, -3, True):
        with pytest.raises(ConfigError, match=rf"num_batches must be an int >= 1, got {bad!r}"):
            bench(rows(5), bad, verbose=False)
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1, got 0"):
        bench(rows(5), batch_size=0, verbose=False)
    with pytest.raises(ConfigError, match=r"infinite.*pass num_batches"):
        bench(rows(5).repeat(), verbose=False)
    with pytest.raises(ConfigError, match=r"must be a tf\.data\.Dataset"):
        bench([1, 2], verbose=False)

    def check(x: Any, y: Any) -> Any:
        tf.debugging.assert_less(x[0], 3.0, message="row id too large")
        return x, y

    with pytest.raises(SchemaError, match=r"after 3 batches.*row id too large") as info:
        bench(rows(10).map(check), verbose=False)
    assert isinstance(info.value.__cause__, tf.errors.InvalidArgumentError)
    with pytest.raises(NotFoundError, match="could not find a file"):
        bench(tf.data.TFRecordDataset(["/nonexistent/lakefeed.tfrecord"]), verbose=False)

    def gen() -> Any:
        yield 1.0
        raise RuntimeError("source broke")

    broken = tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec((), tf.float32))
    with pytest.raises(LakefeedError, match="after 1 batches") as failed:
        bench(broken, verbose=False)
    assert isinstance(failed.value.__cause__, tf.errors.OpError)


def test_the_seed_example_runs_with_only_the_import_changed(capsys: pytest.CaptureFixture[str]) -> None:
    dataset = rows()
    # from pypaimon.ml.tensorflow.performance import TensorFlowPipelineOptimizer
    optimizer = TensorFlowPipelineOptimizer()
    optimized_dataset = optimizer.optimize(dataset, shuffle_buffer_size=10000, batch_size=32, enable_cache=True)
    metrics = optimizer.benchmark(optimized_dataset, num_batches=100)
    print(f"Throughput: {metrics['throughput']:.2f} batches/sec")
    assert metrics["batch_count"] == 32  # 1,000 rows: 32 batches, fewer than 100
    assert metrics["total_samples"] == N
    assert "Throughput: " in capsys.readouterr().out


# -- get_optimization_recommendations -------------------------------------------------------------


def settings(rec: Recommendations) -> dict[str, Any]:
    """The recommendations that are keyword arguments of optimize()."""
    return {
        "enable_cache": rec["enable_cache"],
        "shuffle_buffer_size": rec["shuffle_buffer_size"],
        "prefetch_buffer_size": rec["prefetch_buffer_size"],
        "parallel_map_calls": rec["parallel_map_calls"],
        "num_workers": rec["num_workers"],
    }


def test_recommendations_for_a_small_dataset() -> None:
    rec = TensorFlowPipelineOptimizer.get_optimization_recommendations(5_000, bytes_per_sample=136)
    cores = len(os.sched_getaffinity(0))
    assert rec["enable_cache"] is True
    assert rec["shuffle_buffer_size"] == 5_000  # a full shuffle
    assert rec["prefetch_buffer_size"] == AUTOTUNE
    assert rec["parallel_map_calls"] == cores
    assert rec["estimated_cache_bytes"] == 5_000 * (136 + tf_pipeline.CACHE_OVERHEAD_PER_ROW)
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < rec["memory_budget_bytes"] <= memory // tf_pipeline.MEMORY_SHARE
    assert len(rec["reasons"]) == 4
    assert all(isinstance(r, str) and r for r in rec["reasons"])
    ds = TensorFlowPipelineOptimizer().optimize(rows(), batch_size=100, **settings(rec))
    assert sorted(ids(ds)) == list(range(N))


def test_recommendations_for_a_dataset_larger_than_memory() -> None:
    rec = TensorFlowPipelineOptimizer.get_optimization_recommendations(10**10, 4, bytes_per_sample=2048)
    assert rec["enable_cache"] is False
    assert rec["estimated_cache_bytes"] > rec["memory_budget_bytes"]
    assert rec["shuffle_buffer_size"] == tf_pipeline.SHUFFLE_ROWS_CAP
    assert rec["reasons"][0].startswith("no cache: ")


def test_recommendations_cache_threshold_is_the_memory_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tf_pipeline, "_memory_bytes", lambda: 4 * 2**30)
    per_row = 1024 + tf_pipeline.CACHE_OVERHEAD_PER_ROW
    fits = 2**30 // per_row  # a quarter of 4 GiB
    rec = TensorFlowPipelineOptimizer.get_optimization_recommendations
    assert rec(fits)["enable_cache"] is True
    assert rec(fits + 1)["enable_cache"] is False
    assert rec(fits)["memory_budget_bytes"] == 2**30
    monkeypatch.setattr(tf_pipeline, "_memory_bytes", lambda: None)
    assert "assumed 8 GiB" in rec(10)["reasons"][0]


def test_recommendations_are_monotone() -> None:
    rec = TensorFlowPipelineOptimizer.get_optimization_recommendations
    sizes = [1, 10, 1_000, 50_000, 10**6, 10**7, 10**8, 10**9, 10**10, 10**12]
    for workers in (1, 2, 8):
        recs = [rec(n, workers) for n in sizes]
        caches = [r["enable_cache"] for r in recs]
        assert caches == sorted(caches, reverse=True), caches  # once too big, bigger is too big
        assert True in caches
        assert False in caches
        buffers = [r["shuffle_buffer_size"] for r in recs]
        assert buffers == sorted(buffers)
        assert all(1 <= b <= tf_pipeline.SHUFFLE_ROWS_CAP for b in buffers)
        estimates = [r["estimated_cache_bytes"] for r in recs]
        assert estimates == sorted(estimates)
    by_workers = [rec(10**6, w) for w in (1, 2, 4, 64)]
    calls = [r["parallel_map_calls"] for r in by_workers]
    assert calls == sorted(calls, reverse=True)
    assert calls[-1] == 1
    buffers = [r["shuffle_buffer_size"] for r in by_workers]
    assert buffers == sorted(buffers, reverse=True)
    rows_sizes = [rec(10**6, bytes_per_sample=b)["enable_cache"] for b in (16, 1_000, 100_000, 10**7)]
    assert rows_sizes == sorted(rows_sizes, reverse=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset_size": 0}, "dataset_size must be an int >= 1, got 0; pass the number of rows"),
        ({"dataset_size": -5}, "dataset_size must be an int >= 1, got -5"),
        ({"dataset_size": 1.5}, "dataset_size must be an int >= 1, got 1.5"),
        ({"dataset_size": True}, "dataset_size must be an int >= 1, got True"),
        ({"dataset_size": 10, "num_workers": 0}, "num_workers must be an int >= 1, got 0"),
        ({"dataset_size": 10, "bytes_per_sample": 0}, "bytes_per_sample must be an int >= 1, got 0"),
    ],
)
def test_recommendations_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TensorFlowPipelineOptimizer.get_optimization_recommendations(**kwargs)


# -- Keras trains on a lakefeed table through the pipeline tools ----------------------------------


@pytest.fixture
def separable(tmp_path: Path) -> lf.Table:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2_000, 2)).astype(np.float32)
    y = (x[:, 0] + 2 * x[:, 1] > 0).astype(np.int64)
    data = pa.table({"f0": pa.array(x[:, 0]), "f1": pa.array(x[:, 1]), "y": pa.array(y)})
    return lf.Warehouse(tmp_path).create_table("d.t", data)


def _classifier() -> Any:
    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _assert_learned(history: Any) -> None:
    losses, accuracy = history.history["loss"], history.history["accuracy"]
    assert losses[-1] < losses[0]
    assert all(b <= a * 1.05 for a, b in itertools.pairwise(losses)), losses
    assert accuracy[-1] > 0.95, accuracy


def test_keras_trains_on_a_loader_dataset_through_optimize(separable: lf.Table) -> None:
    loader = lf.Loader(separable, batch_size=64, features=["f0", "f1"], label="y", dtypes={"label": "float32"}, seed=0)
    optimizer = TensorFlowPipelineOptimizer()
    rec = optimizer.get_optimization_recommendations(separable.scan().count(), bytes_per_sample=12)
    ds = optimizer.optimize(loader.tf(), batch_size=64, enable_performance_monitoring=True, **settings(rec))
    assert "batch(64) skipped: already batched" in optimizer.steps
    assert int(ds.cardinality()) == len(loader) == 32  # Keras knows the steps per epoch
    history = _classifier().fit(ds, epochs=5, shuffle=False, verbose=0)
    _assert_learned(history)
    assert optimizer.monitor is not None
    assert optimizer.monitor.stats()["total_samples"] >= 5 * 2_000


def test_keras_trains_on_unbatched_table_rows_through_the_builder(separable: lf.Table) -> None:
    loader = lf.Loader(separable, batch_size=500, features=["f0", "f1"], label="y", dtypes={"label": "float32"})
    # Keras warns "ran out of data" on a dataset of unknown length: unbatch() loses the count, give it back
    unbatched = loader.tf().unbatch().apply(tf.data.experimental.assert_cardinality(2_000))
    ds = DatasetPipelineBuilder(unbatched).cache().shuffle(2_000, seed=1).batch(32).prefetch().build()
    history = _classifier().fit(ds, epochs=5, shuffle=False, verbose=0)
    _assert_learned(history)
    optimized = TensorFlowPipelineOptimizer().optimize(unbatched, shuffle_buffer_size=2_000, batch_size=32)
    _assert_learned(_classifier().fit(optimized, epochs=5, shuffle=False, verbose=0))
