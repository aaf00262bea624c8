"""Training-loader throughput: lakefeed against other ways to feed a model, same data, one run.

    python benchmarks/loader.py [--rows 2000000] [--columns 100] [--files 16] [--batch 128 1024]

Generates (once, cached under bench-data/) ``--rows`` x ``--columns`` random float32 features
and an int label in ``--files`` Parquet files, and a Paimon copy of the same rows (written by
the Paimon environment's Python, ``.venv-paimon``, since pypaimon pins pyarrow<20). Then runs
every contender in its own process (so its memory is its own), interleaved, over one shuffled
epoch cut off at ``--limit`` seconds, and prints rows/s, first-batch latency, peak memory and
lakefeed's ratios, then the goals of the loader issue (ratios within this run). Contenders whose
library or interpreter is missing are reported as skipped, with the reason.

Memory: "peak RSS" is the contender process's own ``ru_maxrss``; "tree peak" is the sum of PSS
(proportional set size: shared pages split between the processes that map them) over the
contender process and all its descendants, sampled every 0.2 s by the parent from /proc. They
differ only where a library starts processes of its own (Ray's raylet, GCS and workers).

Extra packages: ``pip install -e '.[bench]'`` (Ray Data, Hugging Face datasets) in the main
environment; pypaimon in ``.venv-paimon`` (see scripts/test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SWAP_ROWS = 10_000
CHUNK_ROWS = 8192
PAIMON_TABLE = "bench.t"
PAIMON_PYTHON = ".venv-paimon"  # pypaimon 2.1 pins pyarrow<20 and pandas<3: it has its own environment


def data_dir(rows: int, columns: int, files: int) -> Path:
    return ROOT / "bench-data" / f"loader-{rows}x{columns}x{files}"


def generate(rows: int, columns: int, files: int) -> Path:
    folder = data_dir(rows, columns, files)
    if (folder / "_done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    per = rows // files
    for i in range(files):
        rng = np.random.default_rng(i)
        block = rng.standard_normal((per, columns), dtype=np.float32)
        table = pa.table(
            {**{f"f{j}": block[:, j] for j in range(columns)}, "y": (rng.random(per) < 0.3).astype(np.int64)}
        )
        pq.write_table(table, folder / f"part-{i:03d}.parquet")
    (folder / "_done").touch()
    return folder


# -- contenders: each yields (features [B, F] float32, label [B]) -------------------------------


def lakefeed_stream(folder: Path, batch: int, features: list[str], cache: str | None = None) -> Iterator[object]:
    import lakefeed as lf

    loader = lf.Loader(f"parquet://{folder}", batch_size=batch, features=features, label="y", seed=0, cache=cache)
    if cache:
        for _ in loader:  # the first epoch fills the cache; the measured epoch is the next one
            pass
        yield None  # tells run_one to start the clock here
    yield from ((b["features"], b["label"]) for b in loader)


def handwritten_numpy(folder: Path, batch: int, features: list[str]) -> Iterator[object]:
    """The ~30 lines an engineer writes: shuffled files, iter_batches, np.stack, a swap pool."""
    rng = np.random.default_rng(0)
    files = sorted(folder.glob("*.parquet"))
    rng.shuffle(files)
    pool_x = np.empty((0, len(features)), np.float32)
    pool_y = np.empty((0,), np.int64)
    for path in files:
        for rb in pq.ParquetFile(path).iter_batches(CHUNK_ROWS, columns=[*features, "y"]):
            x = np.stack([rb.column(i).to_numpy() for i in range(len(features))], axis=1)
            pool_x = np.concatenate([pool_x, x])
            pool_y = np.concatenate([pool_y, rb.column(len(features)).to_numpy()])
            if len(pool_x) < SWAP_ROWS + CHUNK_ROWS:
                continue
            order = rng.permutation(len(pool_x))
            out, keep = order[: len(pool_x) - SWAP_ROWS], order[len(pool_x) - SWAP_ROWS :]
            for i in range(0, len(out) - batch + 1, batch):
                idx = out[i : i + batch]
                yield pool_x[idx], pool_y[idx]
            rest = out[(len(out) // batch) * batch :]
            keep = np.concatenate([rest, keep])
            pool_x, pool_y = pool_x[keep], pool_y[keep]
    order = rng.permutation(len(pool_x))
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        yield pool_x[idx], pool_y[idx]


def read_table_stack(folder: Path, batch: int, features: list[str]) -> Iterator[object]:
    """The decode limit: read everything with pq.read_table, stack once, slice batches."""
    table = pq.read_table(folder, columns=[*features, "y"])
    x = np.stack([table.column(f).to_numpy() for f in features], axis=1)
    y = table.column("y").to_numpy()
    for i in range(0, len(x), batch):
        yield x[i : i + batch], y[i : i + batch]


def pandas_dataloader(folder: Path, batch: int, features: list[str]) -> Iterator[object]:
    import pandas as pd
    import torch
    from torch.utils.data import DataLoader, Dataset

    frame = pd.read_parquet(folder)

    class Frame(Dataset[tuple[object, object]]):
        def __len__(self) -> int:
            return len(frame)

        def __getitem__(self, i: int) -> tuple[object, object]:
            row = frame.iloc[i]
            return torch.tensor(row[features].to_numpy(dtype=np.float32)), int(row["y"])

    yield from DataLoader(Frame(), batch_size=batch, shuffle=True)


CONTENDERS: dict[str, Callable[..., Iterator[object]]] = {
    "lakefeed streaming": lakefeed_stream,
    "lakefeed cached": lambda folder, batch, features: lakefeed_stream(folder, batch, features, cache="memory"),
    "hand-written numpy stream": handwritten_numpy,
    "pq.read_table + stack": read_table_stack,
    "pandas + DataLoader": pandas_dataloader,
}


def run_one(name: str, folder: Path, batch: int, columns: int, limit_s: float) -> dict[str, object]:
    features = [f"f{j}" for j in range(columns)]
    t0 = time.perf_counter()
    rows = 0
    first = None
    for item in CONTENDERS[name](folder, batch, features):
        if item is None:  # end of an untimed warm-up
            t0 = time.perf_counter()
            continue
        x, _ = item  # type: ignore[misc]
        if first is None:
            first = time.perf_counter() - t0
        rows += len(x)  # type: ignore[arg-type]
        if time.perf_counter() - t0 > limit_s:
            break
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rows": rows, "seconds": elapsed, "first_batch_s": first, "peak_rss": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--only", nargs="*", default=None, help="contenders to run (default: all)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per contender at most (slow ones)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (contenders interleaved); medians reported")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = generate(args.rows, args.columns, args.files)
    if args.run:
        print(json.dumps(run_one(args.run, folder, args.batch[0], args.columns, args.limit)))
        return
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}; data: {args.rows:,} rows x {args.columns} float32 + label, "
        f"{args.files} files, {size / 2**30:.2f} GiB"
    )
    names = args.only or list(CONTENDERS)
    for batch in args.batch:
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in names}
        for _ in range(args.repeat):
            for name in names:
                cmd = [
                    sys.executable,
                    __file__,
                    "--rows",
                    str(args.rows),
                    "--columns",
                    str(args.columns),
                    "--files",
                    str(args.files),
                    "--batch",
                    str(batch),
                    "--limit",
                    str(args.limit),
                    "--run",
                    name,
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    lines = proc.stderr.strip().splitlines()
                    runs[name].append({"error": lines[-1] if lines else "failed"})
                    continue
                runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"\nbatch {batch} (median of {args.repeat} interleaved runs, each in its own process)")
        print(f"{'contender':<28}{'rows/s':>12}{'first batch':>13}{'peak RSS':>11}   lakefeed streaming is")
        rates = {
            n: statistics.median(r["rows"] / r["seconds"] for r in rs)
            for n, rs in runs.items()  # type: ignore[operator]
            if rs and all("error" not in r for r in rs)
        }
        base_rate = rates.get("lakefeed streaming")
        for name, rs in runs.items():
            if name not in rates:
                errors = [str(r.get("error")) for r in rs if "error" in r]
                print(f"{name:<28}skipped: {errors[0][:80] if errors else 'no run'}")
                continue
            first = statistics.median(float(r["first_batch_s"]) for r in rs)  # type: ignore[arg-type]
            peak = max(float(r["peak_rss"]) for r in rs)  # type: ignore[arg-type]
            ratio = f"{base_rate / rates[name]:.2f}x" if base_rate and name != "lakefeed streaming" else ""
            print(f"{name:<28}{rates[name]:>12,.0f}{first:>12.3f}s{peak / 2**20:>8,.0f} MiB   {ratio}")


if __name__ == "__main__":
    main()
