"""Ray Data block sizes and object-store peak: lakefeed.ray.read vs ray.data.read_parquet, same files.

    python benchmarks/ray_memory.py [--files 4] [--target-mib 8] [--cpus 2]

Writes (under bench-data/) Parquet files of repetitive strings (~10:1 decoded/on disk) next to
files of random float64 (~1:1) with similar sizes on disk, starts a local Ray, and reads them
through each reader while a thread polls the object store's usage (``memory_summary``): with
Ray Data's default object-store budget and a fast consumer, then with the budget capped at 4
blocks and a fast or a slow (25 MiB/s) consumer. It prints block sizes and the object-store peak
next to the bound docs/scale-out.md states: (read tasks running + blocks queued + blocks the
consumer holds) x target_bytes. With a fast consumer the polled peak also counts blocks already
consumed whose memory Ray has not released yet, so read those peaks as upper bounds.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import lakefeed as lf

MiB = 1 << 20
PREFIXES = [
    "event=page_view;site=shop.example.com;path=/catalog/item/",
    "event=add_to_cart;site=shop.example.com;path=/cart/add/",
    "event=purchase;site=shop.example.com;path=/checkout/done/",
]


def make_files(folder: Path, files: int) -> Path:
    if folder.exists() and len(list(folder.glob("*.parquet"))) == 2 * files:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(files):
        n = 360_000  # ~26 MiB decoded, ~2.3 MiB on disk
        prefix = np.array(PREFIXES)[rng.integers(0, 3, n)]
        s = np.char.add(prefix, np.char.zfill(rng.integers(0, 10**5, n).astype(str), 5))
        text = pa.table({"s": pa.array(s.tolist(), pa.string()), "f": pa.array(np.zeros(n))})
        pq.write_table(text, folder / f"text-{i}.parquet", compression="zstd", row_group_size=18_000)
        m = 240_000  # ~2.7 MiB decoded, ~2.2 MiB on disk
        num = pa.table({"s": pa.array([""] * m, pa.string()), "f": pa.array(rng.random(m))})
        pq.write_table(num, folder / f"num-{i}.parquet", compression="zstd", row_group_size=30_000)
    return folder


class PeakPoller:
    """Polls the object store's usage (MiB) in a thread; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from ray._private.internal_api import memory_summary

        while not self._stop.is_set():
            match = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(stats_only=True))
            if match:
                self.peak = max(self.peak, int(match.group(1)))
            time.sleep(self.interval)

    def __enter__(self) -> PeakPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def consume(ds: Any, seconds_per_mib: float) -> list[int]:
    """Read the dataset block by block as a training loop would, taking ``seconds_per_mib`` per MiB."""
    sizes = []
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
        sizes.append(batch.nbytes)
        time.sleep(seconds_per_mib * batch.nbytes / MiB)
        del batch
    return sizes


def run(name: str, make: Callable[[], Any], seconds_per_mib: float, target: int, bound: str) -> None:
    import gc

    gc.collect()
    time.sleep(0.5)  # let the store drain from the previous run
    with PeakPoller() as poller:
        t0 = time.perf_counter()
        sizes = consume(make(), seconds_per_mib)
        secs = time.perf_counter() - t0
    mib = sorted(round(s / MiB, 1) for s in sizes)
    print(
        f"{name:<62}{len(sizes):>7}{min(mib):>9.1f}{max(mib):>9.1f}{max(sizes) / target:>11.1f}x"
        f"{poller.peak:>10}{bound:>12}{secs:>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4, help="files of each kind")
    parser.add_argument("--target-mib", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    import ray

    folder = make_files(Path("bench-data") / f"ray-memory-{args.files}", args.files)
    target = args.target_mib * MiB
    ray.init(num_cpus=args.cpus, include_dashboard=False, object_store_memory=1024 * MiB, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    table = lf.open_table(f"parquet://{folder}")
    total = table.stats().estimated_bytes
    print(
        f"{2 * args.files} files, {total / MiB:.0f} MiB decoded; target_bytes {args.target_mib} MiB; {args.cpus} CPUs"
    )
    print(
        f"{'reader':<62}{'blocks':>7}{'min MiB':>9}{'max MiB':>9}{'max/target':>12}"
        f"{'peak MiB':>10}{'bound MiB':>12}{'secs':>8}"
    )
    cap = 4 * target
    bound = f"{(args.cpus + cap // target + 2) * args.target_mib}"  # in flight + budget + prefetched + in use
    unlimited = ctx.execution_options.resource_limits
    capped = unlimited.copy(object_store_memory=cap)
    readers: list[tuple[str, Callable[[], Any]]] = [
        ("lakefeed.ray.read", lambda: lf.ray.read(table, target_bytes=target)),
        ("ray.data.read_parquet", lambda: ray.data.read_parquet(str(folder))),
    ]
    if hasattr(ctx, "use_datasource_v2"):

        def per_file() -> Any:
            ctx.use_datasource_v2 = False
            try:
                return ray.data.read_parquet(str(folder))
            finally:
                ctx.use_datasource_v2 = True

        readers.append(("ray.data.read_parquet, one task per file", per_file))
    for name, make in readers:
        ctx.execution_options.resource_limits = unlimited
        run(f"{name}, fast consumer", make, 0.0, target, "store")
        ctx.execution_options.resource_limits = capped
        run(f"{name}, budget {cap // MiB} MiB, fast", make, 0.0, target, bound)
        run(f"{name}, budget {cap // MiB} MiB, slow", make, 0.04, target, bound)  # 25 MiB/s
    ctx.execution_options.resource_limits = unlimited
    ray.shutdown()


if __name__ == "__main__":
    main()
