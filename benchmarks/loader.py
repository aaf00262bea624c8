"""Training-loader throughput: lakefeed against other ways to feed a model, same data, one run.

    python benchmarks/loader.py [--rows 2000000] [--columns 100] [--files 16] [--batch 128 1024]

Generates (once, cached under bench-data/) ``--rows`` x ``--columns`` random float32 features
and an int label in ``--files`` Parquet files, and a Paimon copy of the same rows (written by
the Paimon environment's Python, ``.venv-paimon``, since pypaimon pins pyarrow<20). Then runs
every contender in its own process (so its memory is its own), interleaved, over one shuffled
epoch cut off at ``--limit`` seconds, and prints rows/s, first-batch latency, peak memory and
lakefeed's ratios, then the goals of the loader issue (ratios within this run). Contenders whose
library or interpreter is missing are reported as skipped, with the reason.

Time: "rows/s" counts from the contender's first line (its imports, ``ray.init``, planning) to
its last batch or the cut-off; "after 1st" counts from the first batch on; "first batch" is the
wait for it. The cached contender's clock starts after its untimed cache-filling epoch.

Every contender's input files are read once, untimed, right before its process starts, so each
starts with them in the page cache (``page_cache.py``).

Memory: "peak RSS" is the contender process's own peak (``VmHWM``, see peak_memory.py); "tree
peak" is the sum of PSS (proportional set size: shared pages split between the processes that
map them) over the contender process and all its descendants, sampled every 0.2 s by the parent
from /proc. They differ only where a library starts processes of its own (Ray's raylet, GCS and workers).

Extra packages: ``pip install -e '.[bench]'`` (Ray Data, Hugging Face datasets) in the main
environment; pypaimon in ``.venv-paimon`` (see scripts/test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
from page_cache import warm
from peak_memory import peak_rss_bytes

ROOT = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"  # Hugging Face datasets: local files only, never ask the Hub
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", str(ROOT / "bench-data" / "hf-home"))
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

    def write(i: int) -> None:  # file i from seed i: the same bytes however many run at once
        rng = np.random.default_rng(i)
        block = rng.standard_normal((per, columns), dtype=np.float32)
        table = pa.table(
            {**{f"f{j}": block[:, j] for j in range(columns)}, "y": (rng.random(per) < 0.3).astype(np.int64)}
        )
        pq.write_table(table, folder / f"part-{i:03d}.parquet")

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(files, os.cpu_count() or 1)) as pool:
        list(pool.map(write, range(files)))
    (folder / "_done").touch()
    return folder


def paimon_dir(rows: int, columns: int, files: int) -> Path:
    return ROOT / "bench-data" / f"paimon-{rows}x{columns}x{files}"


def paimon_done(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".done")


def make_paimon(folder: Path, warehouse: Path) -> None:
    """Copy the Parquet files into a Paimon append table, one commit per file (bounded memory)."""
    import lakefeed as lf

    done = paimon_done(warehouse)
    if done.exists():
        return
    shutil.rmtree(warehouse, ignore_errors=True)
    warehouse.mkdir(parents=True)
    table = None
    for path in sorted(folder.glob("*.parquet")):
        data = pq.read_table(path)
        if table is None:
            table = lf.create_table(f"paimon://{warehouse}/{PAIMON_TABLE}", data)
        else:
            table.append(data)
    done.touch()


# -- contenders: each yields (features [B, F] float32, label [B]) -------------------------------


def lakefeed_stream(uri: str, batch: int, features: list[str], cache: str | None = None) -> Iterator[object]:
    import lakefeed as lf

    loader = lf.Loader(uri, batch_size=batch, features=features, label="y", seed=0, cache=cache)
    if cache:
        for _ in loader:  # the first epoch fills the cache; the measured epoch is the next one
            pass
        yield None  # tells run_one to start the clock here
    yield from ((b["features"], b["label"]) for b in loader)


def swap_pool(
    chunks: Iterable[pa.RecordBatch], batch: int, n_features: int, rng: np.random.Generator
) -> Iterator[object]:
    """Shuffled batches from record batches (features, then the label): a 10k-row swap pool."""
    pool_x = np.empty((0, n_features), np.float32)
    pool_y = np.empty((0,), np.int64)
    pending_x: list[np.ndarray] = []
    pending_y: list[np.ndarray] = []
    pending = 0
    for rb in chunks:
        pending_x.append(np.stack([rb.column(i).to_numpy() for i in range(n_features)], axis=1))
        pending_y.append(rb.column(n_features).to_numpy())
        pending += rb.num_rows
        if len(pool_x) + pending < SWAP_ROWS + CHUNK_ROWS:
            continue
        pool_x = np.concatenate([pool_x, *pending_x])
        pool_y = np.concatenate([pool_y, *pending_y])
        pending_x, pending_y, pending = [], [], 0
        order = rng.permutation(len(pool_x))
        out, keep = order[: len(pool_x) - SWAP_ROWS], order[len(pool_x) - SWAP_ROWS :]
        for i in range(0, len(out) - batch + 1, batch):
            idx = out[i : i + batch]
            yield pool_x[idx], pool_y[idx]
        rest = out[(len(out) // batch) * batch :]
        keep = np.concatenate([rest, keep])
        pool_x, pool_y = pool_x[keep], pool_y[keep]
    pool_x = np.concatenate([pool_x, *pending_x])
    pool_y = np.concatenate([pool_y, *pending_y])
    order = rng.permutation(len(pool_x))
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        yield pool_x[idx], pool_y[idx]


def handwritten_numpy(folder: Path, batch: int, features: list[str]) -> Iterator[object]:
    """The ~30 lines an engineer writes: shuffled files, iter_batches, np.stack, a swap pool."""
    rng = np.random.default_rng(0)
    files = sorted(folder.glob("*.parquet"))
    rng.shuffle(files)
    chunks = (rb for path in files for rb in pq.ParquetFile(path).iter_batches(CHUNK_ROWS, columns=[*features, "y"]))
    yield from swap_pool(chunks, batch, len(features), rng)


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


def hf_datasets(folder: Path, batch: int, features: list[str]) -> Iterator[object]:
    """Hugging Face ``datasets`` streaming: shuffled shards + 10k-example buffer, Arrow-formatted batches.

    ``with_format("arrow").iter(batch_size)`` is the fastest of the documented batch paths here
    (it keeps the shuffle buffer in Arrow); "numpy" was about 2x and a torch ``DataLoader`` over
    ``with_format("torch")`` about 100x slower on the smoke data.
    """
    import datasets

    files = sorted(str(p) for p in folder.glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    ds = ds.select_columns([*features, "y"]).shuffle(seed=0, buffer_size=SWAP_ROWS).with_format("arrow")
    for t in ds.iter(batch_size=batch):
        yield np.stack([t.column(i).to_numpy() for i in range(len(features))], axis=1), t.column("y").to_numpy()


def ray_data(folder: Path, batch: int, features: list[str]) -> Iterator[object]:
    """Ray Data: read_parquet (files shuffled) -> iter_torch_batches with a 10k-row local shuffle buffer.

    The features are stacked in ``collate_fn`` (Ray's documented hook, run on its prefetch
    thread); that was faster than stacking the dict of tensors afterwards.
    """
    import ray
    import ray.data
    import torch

    def collate(b: dict[str, np.ndarray]) -> tuple[object, object]:
        return torch.from_numpy(np.stack([b[f] for f in features], axis=1)), torch.from_numpy(b["y"])

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.read_parquet(str(folder), shuffle="files")
        yield from ds.iter_torch_batches(batch_size=batch, local_shuffle_buffer_size=SWAP_ROWS, collate_fn=collate)
    finally:
        ray.shutdown()


def pypaimon_batches(warehouse: Path, batch: int, features: list[str]) -> Iterator[object]:
    """pypaimon's own read path: splits in shuffled order -> to_arrow_batch_reader -> the same swap pool."""
    from pypaimon import CatalogFactory

    rng = np.random.default_rng(0)
    table = CatalogFactory.create({"warehouse": str(warehouse)}).get_table(PAIMON_TABLE)
    builder = table.new_read_builder().with_projection([*features, "y"])
    splits = builder.new_scan().plan().splits()
    splits = [splits[i] for i in rng.permutation(len(splits))]
    reader = builder.new_read().to_arrow_batch_reader(splits)
    yield from swap_pool((rb.select([*features, "y"]) for rb in reader), batch, len(features), rng)


@dataclass(frozen=True)
class Contender:
    """How to run a contender: its generator, which copy of the data it reads, which Python runs it."""

    run: Callable[[Path, int, list[str]], Iterator[object]]
    data: str = "parquet"  # "parquet": the folder of Parquet files; "paimon": the Paimon warehouse
    venv: str | None = None  # a virtual environment under the repository root whose python runs it
    imports: tuple[str, ...] = ()  # modules imported before the clock starts: import time is per process

    def python(self) -> Path:
        return ROOT / self.venv / "bin" / "python" if self.venv else Path(sys.executable)


LAKEFEED_IMPORTS = ("lakefeed", "lakefeed.loader", "lakefeed.tables", "pyarrow.dataset")
CONTENDERS: dict[str, Contender] = {
    "lakefeed streaming": Contender(
        lambda folder, b, f: lakefeed_stream(f"parquet://{folder}", b, f), imports=LAKEFEED_IMPORTS
    ),
    "lakefeed cached": Contender(
        lambda folder, b, f: lakefeed_stream(f"parquet://{folder}", b, f, cache="memory"), imports=LAKEFEED_IMPORTS
    ),
    "hand-written numpy stream": Contender(handwritten_numpy, imports=("pyarrow.parquet",)),
    "pq.read_table + stack": Contender(read_table_stack, imports=("pyarrow.parquet",)),
    "pandas + DataLoader": Contender(pandas_dataloader, imports=("pandas", "torch", "torch.utils.data")),
    "HF datasets iterable": Contender(hf_datasets, imports=("datasets",)),
    "Ray Data iter_torch_batches": Contender(ray_data, imports=("ray", "ray.data", "torch")),
    "lakefeed on Paimon": Contender(
        lambda wh, b, f: lakefeed_stream(f"paimon://{wh}/{PAIMON_TABLE}", b, f),
        data="paimon",
        venv=PAIMON_PYTHON,
        imports=(*LAKEFEED_IMPORTS, "pypaimon"),
    ),
    "pypaimon batches": Contender(pypaimon_batches, data="paimon", venv=PAIMON_PYTHON, imports=("pypaimon",)),
}
BASE = "lakefeed streaming"
HAND = "hand-written numpy stream"
RAY = "Ray Data iter_torch_batches"
PAIMON_LF, PAIMON_PY = "lakefeed on Paimon", "pypaimon batches"
# The loader issue's goals: (what, numerator, denominator, batch size or None for every one run, at least)
GOALS = [
    ("streaming vs hand-written", BASE, HAND, 128, 1.3),
    ("streaming vs hand-written", BASE, HAND, 1024, 1.3),
    ("cached vs hand-written", "lakefeed cached", HAND, 128, 3.0),
    ("streaming vs Ray Data", BASE, RAY, None, 50.0),
    ("lakefeed on Paimon vs pypaimon batches", PAIMON_LF, PAIMON_PY, None, 15.0),
]
RSS_GOAL = 2**30  # streaming peak RSS


def run_one(name: str, source: Path, batch: int, columns: int, limit_s: float) -> dict[str, object]:
    import importlib

    # this folder holds ray.py (the Ray benchmark): off sys.path, so that ``import ray`` finds Ray
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    features = [f"f{j}" for j in range(columns)]
    for module in CONTENDERS[name].imports:  # every contender's libraries are loaded before the clock
        importlib.import_module(module)
    t0 = time.perf_counter()
    rows = 0
    first = None
    first_rows = 0
    batches = CONTENDERS[name].run(source, batch, features)
    try:
        for item in batches:
            if item is None:  # end of an untimed warm-up
                t0 = time.perf_counter()
                continue
            x, _ = item  # type: ignore[misc]
            if first is None:
                first = time.perf_counter() - t0
                first_rows = len(x)  # type: ignore[arg-type]
            rows += len(x)  # type: ignore[arg-type]
            if time.perf_counter() - t0 > limit_s:
                break
        elapsed = time.perf_counter() - t0
    finally:
        batches.close()  # type: ignore[attr-defined]  # runs the contender's cleanup (ray.shutdown)
    peak = peak_rss_bytes()
    return {
        "rows": rows,
        "seconds": elapsed,
        "first_batch_s": first,
        "steady": (rows - first_rows) / (elapsed - first) if first is not None and elapsed > first else None,
        "peak_rss": peak,
    }


# -- the parent: spawn, sample memory, report -----------------------------------------------


def tree_pss(root: int) -> tuple[int, int]:
    """Sum of PSS over ``root`` and all its descendants (bytes), and how many processes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, count, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        count += 1
                        break
        except OSError:
            continue
    return total, count


def error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b", line):
            return line
    return lines[-1] if lines else "failed"


def spawn(python: Path, args: argparse.Namespace, batch: int, name: str, source: Path) -> dict[str, object]:
    """Run one contender in a fresh process; sample its process tree's memory meanwhile.

    The files it reads (``source``) are read once first, untimed, so that every contender starts
    with them in the page cache (see page_cache.py: this VM pages out file data left untouched
    for about a minute, and the first contender of a round would read from disk).
    """
    warm([source])
    cmd = [str(python), __file__, "--rows", str(args.rows), "--columns", str(args.columns)]
    cmd += ["--files", str(args.files), "--batch", str(batch), "--limit", str(args.limit), "--run", name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]
    sampling = Path("/proc/self/smaps_rollup").exists()

    def sample() -> None:
        while sampling and proc.poll() is None:
            pss, procs = tree_pss(proc.pid)
            peak[0], peak[1] = max(peak[0], pss), max(peak[1], procs)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=2 * args.limit + 300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timed out after {2 * args.limit + 300:.0f} s"}
    finally:
        sampler.join()
    results = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not results:
        return {"error": error_line(err)}
    result: dict[str, object] = json.loads(results[-1])
    result["tree_peak"] = peak[0] if sampling else None
    result["procs"] = peak[1] if sampling else None
    return result


def ensure_paimon(args: argparse.Namespace, python: Path) -> str | None:
    """Write the Paimon copy (once) with the Paimon environment's Python; the error line if that fails."""
    if paimon_done(paimon_dir(args.rows, args.columns, args.files)).exists():
        return None
    print("writing the Paimon copy (once; cached under bench-data/) ...", flush=True)
    cmd = [str(python), __file__, "--rows", str(args.rows), "--columns", str(args.columns)]
    cmd += ["--files", str(args.files), "--make-paimon"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return None if proc.returncode == 0 else f"writing the Paimon copy failed: {error_line(proc.stderr)}"


def versions(python: Path, packages: list[str]) -> str:
    code = (
        "import importlib.metadata as m\n"
        f"for p in {packages!r}:\n"
        "    try: print(p, m.version(p))\n"
        "    except m.PackageNotFoundError: print(p, 'not installed')"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return ", ".join(proc.stdout.split("\n")[:-1]) if proc.returncode == 0 else "?"


def mib(value: object) -> str:
    return f"{float(value) / 2**20:>8,.0f} MiB" if value is not None else f"{'n/a':>12}"  # type: ignore[arg-type]


def report(batch: int, args: argparse.Namespace, runs: dict[str, list[dict[str, object]]]) -> dict[str, float]:
    """Print one batch size's table; return the median rows/s of each contender that ran."""
    print(
        f"\nbatch {batch} (median of {args.repeat} interleaved runs, each in its own process, cut at {args.limit:g} s)"
    )
    head = f"{'contender':<29}{'rows/s':>11}{'after 1st':>13}{'first batch':>13}{'peak RSS':>12}"
    print(f"{head}{'tree peak (procs)':>19}   {BASE} is")
    rates = {
        n: statistics.median(float(r["rows"]) / float(r["seconds"]) for r in rs)  # type: ignore[arg-type]
        for n, rs in runs.items()
        if rs and all("error" not in r for r in rs)
    }
    base_rate = rates.get(BASE)
    for name, rs in runs.items():
        if name not in rates:
            errors = [str(r.get("error")) for r in rs if "error" in r]
            print(f"{name:<29}skipped: {errors[0][:100] if errors else 'no run'}")
            continue
        first = statistics.median(float(r["first_batch_s"] or 0) for r in rs)  # type: ignore[arg-type]
        steadies = [float(r["steady"]) for r in rs if r.get("steady")]  # type: ignore[arg-type]
        steady = f"{statistics.median(steadies):>13,.0f}" if steadies else f"{'':>13}"
        peak = max(float(r["peak_rss"]) for r in rs)  # type: ignore[arg-type]
        trees = [float(r["tree_peak"]) for r in rs if r.get("tree_peak")]  # type: ignore[arg-type]
        tree = mib(max(trees)) if trees else mib(None)
        procs = max(int(r.get("procs") or 0) for r in rs)  # type: ignore[call-overload]
        tree += f" ({procs:>2})" if procs > 1 else " " * 5
        ratio = f"{base_rate / rates[name]:.2f}x" if base_rate and name != BASE else ""
        print(f"{name:<29}{rates[name]:>11,.0f}{steady}{first:>12.3f}s{mib(peak):>12}{tree:>19}   {ratio}")
    if PAIMON_LF in rates and PAIMON_PY in rates:
        print(f"{PAIMON_LF} is {rates[PAIMON_LF] / rates[PAIMON_PY]:.2f}x {PAIMON_PY} (same Paimon table)")
    return rates


def goals(results: dict[int, dict[str, float]], base_peak: float | None) -> None:
    print("\ngoals (ratios of median rows/s within this run)")
    for what, num, den, only, at_least in GOALS:
        for batch in [only] if only else list(results):
            label = f"{what}, batch {batch}, >= {at_least:g}x"
            rates = results.get(batch, {})  # type: ignore[call-overload]
            if num not in rates or den not in rates:
                print(f"  {label:<60}not measured")
                continue
            ratio = rates[num] / rates[den]
            print(f"  {label:<60}{ratio:>9.2f}x   {'met' if ratio >= at_least else 'NOT MET'}")
    label = "streaming peak RSS <= 1 GiB"
    if base_peak is None:
        print(f"  {label:<60}not measured")
    else:
        met = "met" if base_peak <= RSS_GOAL else "NOT MET"
        print(f"  {label:<60}{base_peak / 2**20:>6,.0f} MiB   {met}")


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
    parser.add_argument("--make-paimon", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = generate(args.rows, args.columns, args.files)
    warehouse = paimon_dir(args.rows, args.columns, args.files)
    if args.make_paimon:
        make_paimon(folder, warehouse)
        return
    if args.run:
        source = warehouse if CONTENDERS[args.run].data == "paimon" else folder
        print(json.dumps(run_one(args.run, source, args.batch[0], args.columns, args.limit)))
        return
    names = args.only or list(CONTENDERS)
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; known: {list(CONTENDERS)}")
    skipped: dict[str, str] = {}
    for name in names:
        python = CONTENDERS[name].python()
        if not python.exists():
            skipped[name] = f"{python.relative_to(ROOT) if python.is_relative_to(ROOT) else python} not found"
    paimon_python = ROOT / PAIMON_PYTHON / "bin" / "python"
    paimon_names = [n for n in names if CONTENDERS[n].data == "paimon" and n not in skipped]
    if paimon_names:
        failed = ensure_paimon(args, paimon_python)
        skipped.update(dict.fromkeys(paimon_names, failed) if failed else {})
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}; data: {args.rows:,} rows x {args.columns} float32 + label, "
        f"{args.files} files, {size / 2**30:.2f} GiB"
    )
    print(f"main environment: {versions(Path(sys.executable), ['lakefeed', 'torch', 'pandas', 'ray', 'datasets'])}")
    if paimon_python.exists():
        print(f"{PAIMON_PYTHON}: {versions(paimon_python, ['lakefeed', 'pypaimon', 'pyarrow', 'pandas'])}")
    results: dict[int, dict[str, float]] = {}
    base_peak = None
    for batch in args.batch:
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in names}
        for name, why in skipped.items():
            runs[name].append({"error": why})
        for _ in range(args.repeat):
            for name in names:
                if name not in skipped:
                    source = warehouse if CONTENDERS[name].data == "paimon" else folder
                    runs[name].append(spawn(CONTENDERS[name].python(), args, batch, name, source))
        results[batch] = report(batch, args, runs)
        if BASE in results[batch]:
            peak = max(float(r["peak_rss"]) for r in runs[BASE])  # type: ignore[arg-type]
            base_peak = max(base_peak or 0.0, peak)
    goals(results, base_peak)


if __name__ == "__main__":
    main()
