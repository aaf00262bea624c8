"""The loader feeding a GPU: a 4-layer MLP trained at batch 8192, rows/s and the share of time the GPU waits.

    python benchmarks/loader_gpu.py [--rows 2000000] [--columns 100] [--files 16] [--batch 8192] [--epochs 3]

The loader benchmark's data (``benchmarks/loader.py``: ``--rows`` x ``--columns`` random float32
features and an int label in ``--files`` Parquet files, generated once under bench-data/). Each
contender feeds the same model, ``Linear(F, 1024) - ReLU - Linear(1024, 512) - ReLU - Linear(512,
256) - ReLU - Linear(256, 1)``, trained with binary cross-entropy and Adam in float32 (PyTorch's
defaults: no TF32, no autocast), for ``--epochs`` shuffled epochs:

- **model alone**: the same number of steps on batches already on the GPU (a rotating set of 8):
  the rate at which the GPU itself can train, so the ceiling of any loader;
- **lakefeed streaming**: ``lf.Loader(...).torch(device="cuda")`` over the Parquet folder;
- **lakefeed cached**: the same with ``cache="memory"`` (the untimed first epoch fills the cache);
- **lakefeed cached on the GPU**: ``loader.torch(device="cuda", cache_on_device=True)``: the cache
  is copied to the GPU once and each batch gathered there (the same batches, bit for bit);
- **lakefeed torch_dataset + DataLoader(4 workers)**: ``lf.torch_dataset`` under a torch
  ``DataLoader`` with 4 worker processes and ``pin_memory=True``;
- **hand-written numpy stream**: ``benchmarks/loader.py``'s ~30 lines (shuffled files,
  ``iter_batches``, ``np.stack``, a 10k-row swap pool), then ``pin_memory()`` and a non-blocking
  copy, as a user would write it.

Measured for each: rows/s over the timed epochs (from the first request for a batch to the end of
the last step, the GPU synchronized), the first batch's wait, and the **GPU wait share**: the
share of the GPU's time line, from the first step's start to the last step's end, in which no
training step ran (CUDA events around each step; the gaps are the GPU waiting for data, a copy it
could not overlap, or the Python loop). The host's wait in ``next()`` is printed too. Without a
GPU the script runs on the CPU (``--device cpu``) with host clocks, to check it works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import data_dir, generate, handwritten_numpy
from peak_memory import peak_rss_bytes

THREADS: list[int | None] = [None]  # the loader's decoding threads (--threads; default: one per core)
BUDGET: dict[str, int] = {}  # the loader's memory_budget (--memory-budget; default: the loader's)
Batches = Callable[[Path, int, list[str], Any, int], Iterator[tuple[Any, Any]]]


def mlp(columns: int, device: Any) -> tuple[Any, Any, Any]:
    import torch

    model = torch.nn.Sequential(
        torch.nn.Linear(columns, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 1),
    ).to(device)
    fused = torch.device(device).type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    return model, optimizer, torch.nn.BCEWithLogitsLoss()


# -- contenders: each yields (features [B, F] float32, label [B] float32) on the device ---------


def model_alone(folder: Path, batch: int, features: list[str], device: Any, epochs: int) -> Iterator[tuple[Any, Any]]:
    import torch

    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))
    steps = epochs * (-(-rows // batch))
    gen = torch.Generator(device=device).manual_seed(0)
    xs = [torch.randn(batch, len(features), device=device, generator=gen) for _ in range(8)]
    ys = [(torch.rand(batch, device=device, generator=gen) < 0.3).float() for _ in range(8)]
    for i in range(steps):
        yield xs[i % 8], ys[i % 8]


def lakefeed_batches(cache: str | None, on_device: bool = False) -> Batches:
    def run(folder: Path, batch: int, features: list[str], device: Any, epochs: int) -> Iterator[tuple[Any, Any]]:
        import lakefeed as lf

        loader = lf.Loader(
            f"parquet://{folder}",
            batch_size=batch,
            features=features,
            label="y",
            seed=0,
            cache=cache,
            dtypes={"label": "float32"},
            num_threads=THREADS[0],
            **BUDGET,
        )
        batches = loader.torch(device=device, cache_on_device=on_device)
        if cache:
            for _ in loader:  # fills the cache: the timed epochs are the next ones
                pass
            loader.set_epoch(1)
            yield None  # type: ignore[misc]  # tells measure() to start the clock here
        for _ in range(epochs):
            for b in batches:
                yield b["features"], b["label"]
        shape = f"{loader.lanes} lanes, blocks of {loader.block_rows} rows"
        print(f"    lakefeed: {shape}, last epoch {loader.stats()}", file=sys.stderr)

    return run


def lakefeed_dataloader(
    folder: Path, batch: int, features: list[str], device: Any, epochs: int
) -> Iterator[tuple[Any, Any]]:
    """``lf.torch_dataset`` under a torch ``DataLoader`` with worker processes and its pinning thread."""
    import lakefeed as lf

    workers = 4
    threads = max(1, (THREADS[0] or os.cpu_count() or 2) // workers)
    dataset = lf.torch_dataset(
        f"parquet://{folder}",
        batch,
        features,
        "y",
        num_workers=workers,
        seed=0,
        dtypes={"label": "float32"},
        num_threads=threads,
    )
    loader = dataset.dataloader(pin_memory=True, persistent_workers=True, prefetch_factor=4)
    for _ in range(epochs):
        for b in loader:
            yield b["features"].to(device, non_blocking=True), b["label"].to(device, non_blocking=True)


def handwritten(folder: Path, batch: int, features: list[str], device: Any, epochs: int) -> Iterator[tuple[Any, Any]]:
    import torch

    pin = torch.device(device).type == "cuda"
    for _ in range(epochs):
        for x, y in handwritten_numpy(folder, batch, features):  # type: ignore[misc]
            tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
            if pin:
                tx, ty = tx.pin_memory(), ty.pin_memory()
            yield tx.to(device, non_blocking=pin), ty.to(device, non_blocking=pin)


CONTENDERS: dict[str, Batches] = {
    "model alone (data on GPU)": model_alone,
    "lakefeed streaming": lakefeed_batches(None),
    "lakefeed cached": lakefeed_batches("memory"),
    "lakefeed cached on the GPU": lakefeed_batches("memory", on_device=True),
    "hand-written numpy stream": handwritten,
    "lakefeed torch_dataset + DataLoader(4 workers)": lakefeed_dataloader,
}
# the same loaders with no model: how fast they hand batches to the device when nothing else runs
NO_MODEL = " (loader alone, no model)"
for _name in ("lakefeed streaming", "lakefeed cached", "lakefeed cached on the GPU", "hand-written numpy stream"):
    CONTENDERS[_name + NO_MODEL] = CONTENDERS[_name]


def measure(name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model, optimizer, loss_fn = mlp(args.columns, device)
    train = not name.endswith(NO_MODEL)
    features = [f"f{j}" for j in range(args.columns)]
    # warm the kernels (cuBLAS handles, the fused optimizer) outside the clock
    for _ in range(3):
        x = torch.randn(args.batch, args.columns, device=device)
        loss = loss_fn(model(x).squeeze(1), torch.zeros(args.batch, device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if cuda:
        torch.cuda.synchronize()
    events: list[tuple[Any, Any]] = []
    step_s = 0.0
    host_wait = 0.0
    rows = steps = 0
    first = None
    losses: list[float] = []
    cpu0 = os.times()
    it = CONTENDERS[name](folder, args.batch, features, device, args.epochs)
    t0 = time.perf_counter()
    while True:
        w = time.perf_counter()
        item = next(it, StopIteration)
        if item is StopIteration:
            break
        if item is None:  # the end of an untimed warm-up (the cache-filling epoch)
            t0, host_wait = time.perf_counter(), 0.0
            cpu0 = os.times()
            continue
        host_wait += time.perf_counter() - w
        x, y = item
        if first is None:
            first = time.perf_counter() - t0
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            s = time.perf_counter()
        if train:
            loss = loss_fn(model(x).squeeze(1), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if cuda:
            end.record()
            events.append((start, end))
        else:
            step_s += time.perf_counter() - s
        if train and steps % 20 == 0:
            losses.append(loss.detach())
        rows += len(x)
        steps += 1
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    cpu = os.times()
    if cuda and events:
        busy = sum(s.elapsed_time(e) for s, e in events) / 1e3
        line = events[0][0].elapsed_time(events[-1][1]) / 1e3
    else:
        busy, line = step_s, max(elapsed - (first or 0.0), 1e-9)
    return {
        "rows": rows,
        "steps": steps,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "first_batch_s": first,
        "gpu_busy_s": busy,
        "gpu_wait_share": max(0.0, 1 - busy / line) if line > 0 else None,
        "host_wait_share": host_wait / elapsed,
        "cpu_cores_used": ((cpu.user - cpu0.user) + (cpu.system - cpu0.system)) / elapsed,
        "loss_first_last": [float(losses[0]), float(losses[-1])] if losses else None,
        "peak_rss_mib": peak_rss_bytes() / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--only", nargs="*", default=None, help="contenders to run (default: all)")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--threads", type=int, default=None, help="lakefeed's decoding threads (default: cores)")
    parser.add_argument("--memory-budget", type=int, default=None, help="lakefeed's memory_budget in MiB")
    parser.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval for the runs")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    THREADS[0] = args.threads
    if args.memory_budget:
        BUDGET["memory_budget"] = args.memory_budget << 20
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.run:
        print(json.dumps(measure(args.run, data_dir(args.rows, args.columns, args.files), args)))
        return
    t = time.perf_counter()
    folder = generate(args.rows, args.columns, args.files)
    print(f"data: {folder} ({time.perf_counter() - t:.1f} s to make or find)")
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none (CPU run)"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}; GPU: {gpu}"
    )
    print(f"{args.rows:,} rows x {args.columns} float32, batch {args.batch}, {args.epochs} epochs each\n")
    results = {}
    for name in args.only or CONTENDERS:  # each in its own process: its memory and CUDA context are its own
        cmd = [sys.executable, __file__, "--run", name, *sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            print(f"  {name}: failed (exit {done.returncode})", flush=True)
            continue
        results[name] = r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {name}: {json.dumps(r)}", flush=True)
    print("\n| contender | rows/s | first batch | GPU wait | host wait | cores used | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['rows_per_s']:,.0f} | {r['first_batch_s']:.3f} s | {r['gpu_wait_share']:.1%} "
            f"| {r['host_wait_share']:.1%} | {r['cpu_cores_used']:.1f} | {r['peak_rss_mib']:,.0f} MiB |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "gpu": gpu, "results": results}, indent=1))


if __name__ == "__main__":
    main()
