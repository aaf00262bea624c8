"""tf.data pipeline variants: the measurements behind ``get_optimization_recommendations``.

    python benchmarks/tf_pipeline.py [--rows 100000] [--width 32] [--rounds 3]

Rows are ``--width`` float32 features and an int64 label (``4 * width + 8`` bytes). Every
variant runs ``--rounds`` times, interleaved, and the median is printed. Sections:

1. source speed and what cache / prefetch do to it, for a slow source (a Python generator,
   row by row, like a reader without vectorisation) and a fast one (``from_tensor_slices``),
   with a consumer that spends ``--step-ms`` per batch (a stand-in for the training step);
2. a per-row map before batching against the same map on whole batches, sequential, with 2
   parallel calls and with AUTOTUNE;
3. the wait for the first batch against the shuffle buffer size;
4. the memory a cached row costs (RSS growth per row, unbatched and batched elements);
5. what ``enable_performance_monitoring``'s monitor costs per batch (before or after prefetch);
6. a file cache (``cache(filename)``) read back against the slow source.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
BATCH = 256


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def data(rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((rows, width)).astype(np.float32), rng.integers(0, 2, rows)


def slow_source(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    def gen() -> Any:
        for i in range(len(x)):
            yield x[i], y[i]

    spec = (tf.TensorSpec((x.shape[1],), tf.float32), tf.TensorSpec((), tf.int64))
    return tf.data.Dataset.from_generator(gen, output_signature=spec)


def fast_source(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y))


def run_epochs(ds: tf.data.Dataset, epochs: int, step_s: float) -> list[float]:
    """Seconds per epoch, the consumer sleeping ``step_s`` per batch (GIL released, like a train step)."""
    out = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for _ in ds:
            if step_s:
                time.sleep(step_s)
        out.append(time.perf_counter() - t0)
    return out


def median_of(rounds: int, fn: Callable[[], list[float]]) -> list[float]:
    runs = [fn() for _ in range(rounds)]
    return [statistics.median(r[i] for r in runs) for i in range(len(runs[0]))]


def section_cache_prefetch(x: np.ndarray, y: np.ndarray, rounds: int, step_s: float) -> None:
    rows = len(x)
    print(f"\n## 1. cache and prefetch, {rows:,} rows, batch {BATCH}, consumer step {step_s * 1e3:.1f} ms/batch")
    print("| source | pipeline | epoch 1 rows/s | epoch 2 rows/s |")
    print("|---|---|---:|---:|")
    for name, source in (("generator", slow_source), ("from_tensor_slices", fast_source)):
        variants: dict[str, Callable[[], tf.data.Dataset]] = {
            "batch": lambda s=source: s(x, y).batch(BATCH),
            "batch, prefetch": lambda s=source: s(x, y).batch(BATCH).prefetch(AUTOTUNE),
            "cache, batch, prefetch": lambda s=source: s(x, y).cache().batch(BATCH).prefetch(AUTOTUNE),
            "cache, shuffle 10k, batch, prefetch": lambda s=source: (
                s(x, y).cache().shuffle(10_000).batch(BATCH).prefetch(AUTOTUNE)
            ),
            "batch, cache, prefetch": lambda s=source: s(x, y).batch(BATCH).cache().prefetch(AUTOTUNE),
        }
        for label, make in variants.items():
            e1, e2 = median_of(rounds, lambda m=make: run_epochs(m(), 2, step_s))
            print(f"| {name} | {label} | {rows / e1:,.0f} | {rows / e2:,.0f} |")


def section_prefetch(x: np.ndarray, y: np.ndarray, rounds: int) -> None:
    rows = len(x)

    def work(features: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        for _ in range(40):  # about as long per batch as the consumer's step
            features = tf.math.log1p(tf.abs(features)) * tf.sign(features) + 0.1 * tf.tanh(features)
        return features, label

    print(f"\n## 1b. prefetch, {rows:,} rows in memory, batch {BATCH}, a per-batch map and a 2 ms consumer step")
    print("| pipeline | rows/s |")
    print("|---|---:|")
    for label, make in (
        ("batch, map", lambda: fast_source(x, y).batch(BATCH).map(work)),
        ("batch, map, prefetch AUTOTUNE", lambda: fast_source(x, y).batch(BATCH).map(work).prefetch(AUTOTUNE)),
        ("batch, map (no consumer step)", lambda: fast_source(x, y).batch(BATCH).map(work)),
    ):
        step = 0.0 if "no consumer" in label else 0.002
        (t,) = median_of(rounds, lambda m=make, step=step: run_epochs(m(), 1, step))
        print(f"| {label} | {rows / t:,.0f} |")


def section_map(x: np.ndarray, y: np.ndarray, rounds: int) -> None:
    rows = len(x)

    def f(features: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        for _ in range(8):  # a few element-wise ops: a feature transform's worth of work
            features = tf.math.log1p(tf.abs(features)) * tf.sign(features) + 0.1 * tf.tanh(features)
        return features, label

    print(f"\n## 2. map, {rows:,} rows in memory, batch {BATCH}, no consumer work")
    print("| map | num_parallel_calls | rows/s |")
    print("|---|---|---:|")
    for calls_name, calls in (("sequential", None), ("2", 2), ("AUTOTUNE", AUTOTUNE)):
        for where in ("per row, before batch", "per batch, after batch"):

            def make(calls: Any = calls, where: str = where) -> tf.data.Dataset:
                ds = fast_source(x, y)
                if where.startswith("per row"):
                    return ds.map(f, num_parallel_calls=calls).batch(BATCH).prefetch(AUTOTUNE)
                return ds.batch(BATCH).map(f, num_parallel_calls=calls).prefetch(AUTOTUNE)

            (t,) = median_of(rounds, lambda m=make: run_epochs(m(), 1, 0.0))
            print(f"| {where} | {calls_name} | {rows / t:,.0f} |")


def section_shuffle(width: int, rounds: int) -> None:
    rows = 1_000_000
    x, y = data(rows, width)
    print(f"\n## 3. wait for the first batch, {rows:,} rows in memory, batch {BATCH}")
    print("| shuffle buffer | first batch ms | rows/s after it |")
    print("|---:|---:|---:|")
    for _ in fast_source(x, y).take(10).batch(BATCH):  # warm up
        pass
    for buffer in (1_000, 10_000, 100_000, 1_000_000):
        firsts, rates = [], []
        for _ in range(rounds):
            ds = fast_source(x, y).shuffle(buffer).batch(BATCH).prefetch(AUTOTUNE)
            t0 = time.perf_counter()
            it = iter(ds)
            next(it)
            t1 = time.perf_counter()
            n = 0
            for _ in range(200):
                next(it)
                n += BATCH
            firsts.append(t1 - t0)
            rates.append(n / (time.perf_counter() - t1))
        print(f"| {buffer:,} | {statistics.median(firsts) * 1e3:,.0f} | {statistics.median(rates):,.0f} |")


MEMORY = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
rows, width, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
x = np.random.default_rng(0).standard_normal((rows, width)).astype(np.float32)
y = np.zeros(rows, np.int64)
gen = lambda: ((x[i], y[i]) for i in range(rows))
spec = (tf.TensorSpec((width,), tf.float32), tf.TensorSpec((), tf.int64))
src = tf.data.Dataset.from_generator(gen, output_signature=spec)
for _ in src.take(1000).batch(100): pass
before = rss()
ds = src.cache() if batch == 1 else src.batch(batch).cache()
for _ in ds: pass
for _ in ds: pass
print(rss() - before)
"""


def section_memory(width: int) -> None:
    import subprocess
    import sys

    rows = 500_000
    raw = 4 * width + 8
    print(f"\n## 4. memory of an in-memory cache, {rows:,} rows of {raw} bytes (one process each)")
    print("| cached element | RSS growth | bytes per row | overhead per row |")
    print("|---|---:|---:|---:|")
    for label, batch in (("one row (cache before batch)", 1), (f"a batch of {BATCH} (cache after batch)", BATCH)):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY, str(rows), str(width), str(batch)],
            capture_output=True,
            text=True,
            check=True,
        )
        grown = int(out.stdout.strip().splitlines()[-1])
        print(f"| {label} | {grown / 2**20:,.1f} MiB | {grown / rows:,.0f} | {grown / rows - raw:,.0f} |")


def section_tap(x: np.ndarray, y: np.ndarray, rounds: int) -> None:
    from lakefeed.frameworks.tensorflow import PipelineMonitor

    rows = len(x)
    print(f"\n## 5. enable_performance_monitoring's PipelineMonitor, {rows:,} rows in memory, batch {BATCH}")
    print("| pipeline | batches/s |")
    print("|---|---:|")
    for label, make in (
        ("batch, prefetch", lambda: fast_source(x, y).batch(BATCH).prefetch(AUTOTUNE)),
        ("batch, prefetch, monitor", lambda: PipelineMonitor().wrap(fast_source(x, y).batch(BATCH).prefetch(AUTOTUNE))),
        ("batch, monitor, prefetch", lambda: PipelineMonitor().wrap(fast_source(x, y).batch(BATCH)).prefetch(AUTOTUNE)),
    ):
        (t,) = median_of(rounds, lambda m=make: run_epochs(m(), 1, 0.0))
        print(f"| {label} | {rows / BATCH / t:,.0f} |")


def section_file_cache(x: np.ndarray, y: np.ndarray, rounds: int) -> None:
    rows = len(x)
    print(f"\n## 6. file cache, {rows:,} rows, batch {BATCH}")
    print("| pipeline | epoch 1 rows/s | epoch 2 rows/s |")
    print("|---|---:|---:|")

    def with_file(unbatched: bool) -> list[float]:
        with tempfile.TemporaryDirectory() as d:
            src = slow_source(x, y)
            ds = (src.cache(f"{d}/c").batch(BATCH) if unbatched else src.batch(BATCH).cache(f"{d}/c")).prefetch(
                AUTOTUNE
            )
            return run_epochs(ds, 2, 0.0)

    for label, unbatched in (("generator, cache(file), batch", True), ("generator, batch, cache(file)", False)):
        e1, e2 = median_of(rounds, lambda u=unbatched: with_file(u))
        print(f"| {label} | {rows / e1:,.0f} | {rows / e2:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step-ms", type=float, default=0.0)
    parser.add_argument("--only", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.1f} GiB, "
        f"Python {platform.python_version()}, tensorflow {tf.__version__}"
    )
    x, y = data(args.rows, args.width)
    if 1 in args.only:
        section_cache_prefetch(x, y, args.rounds, args.step_ms / 1e3)
    if 1 in args.only:
        section_prefetch(x, y, args.rounds)
    if 2 in args.only:
        section_map(x, y, args.rounds)
    if 3 in args.only:
        section_shuffle(args.width, args.rounds)
    if 4 in args.only:
        section_memory(args.width)
    if 5 in args.only:
        section_tap(x, y, args.rounds)
    if 6 in args.only:
        section_file_cache(x, y, args.rounds)


if __name__ == "__main__":
    main()
