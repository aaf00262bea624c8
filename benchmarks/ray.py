"""Ray Data: ``lf.ray.read`` against Ray's ``read_parquet`` / ``read_iceberg`` on the same rows, one run.

    python benchmarks/ray.py [--rows 2000000] [--columns 100] [--files 16] [--batch 1024 [128 ...]]
                             [--limit 60] [--repeat 1] [--only NAME ...]

Data: the loader benchmark's Parquet files (``--rows`` x ``--columns`` random float32 features
and an int label ``y`` in ``--files`` files; benchmarks/loader.py generates them once under
bench-data/) and an Iceberg copy of the same rows in a lakefeed warehouse (one append per file;
made once, cached under bench-data/). Every contender reads one copy as a Ray Dataset and
iterates ``iter_torch_batches(batch_size=B)`` with the same collate function, which hands the
training loop a float32 ``[B, F]`` feature tensor and the label:

- ``lakefeed, Parquet`` / ``lakefeed, Iceberg``: ``lf.ray.read(uri)``; the collate function
  stacks the F feature columns of each batch (as it does for Ray's readers).
- ``lakefeed features=, ...``: ``lf.ray.read(uri, features=[...], label="y")``: the read tasks
  stack the features into one tensor column, which the collate function takes as it is.
- ``Ray read_parquet``: ``ray.data.read_parquet(folder)``.
- ``Ray read_iceberg``: ``ray.data.read_iceberg(table_identifier=..., catalog_kwargs=...)`` over
  the Iceberg copy (the warehouse's SQLite catalog). If it fails, the error is printed as is.
- ``iteration only, ...`` (references, not contenders): ``read_parquet`` / ``lf.ray.read(features=)``
  materialized into the object store before the clock starts, so only ``iter_torch_batches`` and
  the collate function are timed: the most the iterator hands out with one array per column and
  with one tensor column, whatever the reader.

Each contender runs in its own process, which starts its own local Ray
(``ray.init(num_cpus=2)``), over one epoch cut off at ``--limit`` seconds. The contenders run
interleaved, ``--repeat`` rounds per batch size; medians are reported. Before each contender
starts, the copy it reads is read once, untimed, so that every contender starts with its files
in the page cache (benchmarks/page_cache.py).

Time: "rows/s" counts from the contender's first timed line (``ray.init``, then planning) to its
last batch or the cut-off; "after 1st" counts from the first batch on; "1st batch" is the wait
for it. Every contender imports the same libraries before its clock starts. (The references'
clock starts after ``materialize()``.)

Memory, during the timed pass only: "tree peak" is the sum of PSS (shared pages split between
the processes that map them, so the object store counts once) over the contender process and
all its descendants (Ray's GCS, raylet and workers), sampled every 0.2 s by the parent from /proc;
"store peak" is the object store's usage polled every 0.2 s in the contender through Ray's
``memory_summary`` (as benchmarks/ray_memory.py does; MiB granularity, and it counts blocks
consumed but not yet released, so it is an upper bound on what had to be held).

Blocks: in the first round, after the timed pass and the memory sampling, an untimed pass over
``ds.iter_internal_ref_bundles()`` collects each output block's metadata: how many blocks and
their sizes (min / median / max MiB).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is benchmarks/ray.py: while its folder is on sys.path (Python puts a script's folder
# first), ``import ray`` would import this file instead of Ray.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = HERE.parent
MiB = 1 << 20
ICEBERG_TABLE = "bench.t"
TIMED_DONE = "--timed pass done--"


def _sibling(name: str) -> ModuleType:
    """Import benchmarks/<name>.py by path (this folder is off sys.path, see above)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


peak_rss_bytes = _sibling("peak_memory").peak_rss_bytes
sys.modules["peak_memory"] = sys.modules["_bench_peak_memory"]  # loader.py imports it by that name
_sibling("page_cache")
sys.modules["page_cache"] = sys.modules["_bench_page_cache"]  # so does it this one
loader = _sibling("loader")  # generate(), tree_pss(), versions(): the loader benchmark's helpers


def iceberg_home(rows: int, columns: int, files: int) -> Path:
    return ROOT / "bench-data" / f"ray-iceberg-{rows}x{columns}x{files}"


def make_iceberg(folder: Path, home: Path) -> None:
    """Copy the Parquet files into an Iceberg table of a lakefeed warehouse, one append per file."""
    import lakefeed as lf

    done = home.with_name(home.name + ".done")
    if done.exists():
        return
    shutil.rmtree(home, ignore_errors=True)
    with lf.Warehouse(home) as warehouse:
        table = None
        for path in sorted(folder.glob("*.parquet")):
            data = pq.read_table(path)
            if table is None:
                table = warehouse.create_table(ICEBERG_TABLE, data)
            else:
                table.append(data)
    done.touch()


def catalog_kwargs(home: Path) -> dict[str, str]:
    """The pyiceberg catalog properties of the lakefeed warehouse at ``home`` (its embedded SQL catalog)."""
    import lakefeed as lf
    from lakefeed.config import SqlCatalogConfig

    config = lf.Warehouse(home).config
    assert isinstance(config, SqlCatalogConfig)
    return {"name": config.name, "type": "sql", "uri": config.uri, "warehouse": config.warehouse, **config.properties}


# -- contenders: each makes the dataset (after ray.init, on the clock) ----------------------------


@dataclass(frozen=True)
class Data:
    folder: Path  # the Parquet files
    home: Path  # the lakefeed warehouse holding the Iceberg copy
    features: list[str]
    target_bytes: int | None = None  # lakefeed's target_bytes; None: its default


@dataclass(frozen=True)
class Contender:
    make: Callable[[Data], Any]
    copy: str  # "Parquet" or "Iceberg": which copy of the rows it reads
    lakefeed: bool
    materialized: bool = False  # a reference: the dataset is in the object store before the clock starts


def _lf_read(uri: Callable[[Data], str], stacked: bool) -> Callable[[Data], Any]:
    def make(data: Data) -> Any:
        import lakefeed as lf

        target = {"target_bytes": data.target_bytes} if data.target_bytes else {}
        if stacked:
            return lf.ray.read(uri(data), features=data.features, label="y", **target)
        return lf.ray.read(uri(data), **target)

    return make


def _parquet_uri(data: Data) -> str:
    return f"parquet://{data.folder}"


def _iceberg_uri(data: Data) -> str:
    return f"iceberg://{data.home}/{ICEBERG_TABLE}"


def _ray_parquet(data: Data) -> Any:
    import ray.data

    return ray.data.read_parquet(str(data.folder))


def _ray_iceberg(data: Data) -> Any:
    import ray.data

    return ray.data.read_iceberg(table_identifier=ICEBERG_TABLE, catalog_kwargs=catalog_kwargs(data.home))


def _materialized(make: Callable[[Data], Any]) -> Callable[[Data], Any]:
    return lambda data: make(data).materialize()


LF_PARQUET, LF_PARQUET_STACKED = "lakefeed, Parquet", "lakefeed features=, Parquet"
LF_ICEBERG, LF_ICEBERG_STACKED = "lakefeed, Iceberg", "lakefeed features=, Iceberg"
RAY_PARQUET, RAY_ICEBERG = "Ray read_parquet", "Ray read_iceberg"
CEILING_COLUMNS, CEILING_STACKED = "iteration only, 101 columns", "iteration only, features="
CONTENDERS: dict[str, Contender] = {
    LF_PARQUET: Contender(_lf_read(_parquet_uri, stacked=False), "Parquet", lakefeed=True),
    LF_PARQUET_STACKED: Contender(_lf_read(_parquet_uri, stacked=True), "Parquet", lakefeed=True),
    LF_ICEBERG: Contender(_lf_read(_iceberg_uri, stacked=False), "Iceberg", lakefeed=True),
    LF_ICEBERG_STACKED: Contender(_lf_read(_iceberg_uri, stacked=True), "Iceberg", lakefeed=True),
    RAY_PARQUET: Contender(_ray_parquet, "Parquet", lakefeed=False),
    RAY_ICEBERG: Contender(_ray_iceberg, "Iceberg", lakefeed=False),
    # references, not contenders: iter_torch_batches alone over blocks already in the object store
    CEILING_COLUMNS: Contender(_materialized(_ray_parquet), "Parquet", lakefeed=False, materialized=True),
    CEILING_STACKED: Contender(
        _materialized(_lf_read(_parquet_uri, stacked=True)), "Parquet", lakefeed=False, materialized=True
    ),
}
RAY_OWN = {"Parquet": RAY_PARQUET, "Iceberg": RAY_ICEBERG}  # Ray's own path on each copy
IMPORTS = (  # imported by every contender before its clock starts: import time is per process
    "torch",
    "ray",
    "ray.data",
    "ray.data.collate_fn",
    "lakefeed",
    "lakefeed.integrations.ray",
    "pyarrow.dataset",
    "pyiceberg.catalog.sql",
)
ROWS_GOAL, SPEED_GOAL = "lakefeed rows/s >= 10x Ray's own path", 10.0


def collate_fn(features: list[str]) -> Any:
    """The one collate function: a float32 [B, F] feature tensor and the label, from any layout."""
    import torch
    from ray.data.collate_fn import NumpyBatchCollateFn

    class Collate(NumpyBatchCollateFn):
        def __call__(self, batch: dict[str, np.ndarray]) -> Any:
            if "features" in batch:  # lf.ray.read(features=...): stacked in the read tasks
                x, y = batch["features"], batch["label"]
            else:  # one array per column: stack them here
                x, y = np.stack([batch[f] for f in features], axis=1), batch["y"]
            return torch.from_numpy(x), torch.from_numpy(y)

    return Collate()


def describe(exc: BaseException) -> str:
    """The exception's type and message, and those of its root cause (what a Ray worker raised)."""
    root: BaseException = exc
    while True:
        nxt = getattr(root, "cause", None) or root.__cause__
        if not isinstance(nxt, BaseException) or nxt is root:
            break
        root = nxt
    lines = [line for line in str(root).strip().splitlines() if line.strip()]
    text = f"{type(root).__name__}: {lines[0] if lines else ''}".strip()
    if root is not exc:
        text = f"{type(exc).__name__} <- {text}"
    return text


def run_one(name: str, data: Data, batch: int, limit_s: float, blocks: bool) -> dict[str, object]:
    """The child: one contender's timed pass, then (if ``blocks``) the untimed pass over its blocks' metadata."""
    for module in IMPORTS:
        importlib.import_module(module)
    warnings.simplefilter("ignore")  # Ray's deprecations; torch's note on read-only numpy arrays
    # Ray by name: a type checker resolves ``import ray`` here to this file
    ray: Any = importlib.import_module("ray")
    importlib.import_module("ray.data")

    peak_poller = _sibling("ray_memory").PeakPoller
    contender = CONTENDERS[name]
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        if contender.materialized:  # a reference: read everything first, then time the iteration alone
            ds = contender.make(data)
            t0 = time.perf_counter()
        with peak_poller(interval=0.2) as store:
            rows, first, first_rows = 0, None, 0
            try:
                if not contender.materialized:
                    ds = contender.make(data)
                batches = iter(ds.iter_torch_batches(batch_size=batch, collate_fn=collate_fn(data.features)))
                try:
                    for x, _ in batches:
                        if first is None:
                            first = time.perf_counter() - t0
                            first_rows = len(x)
                        rows += len(x)
                        if time.perf_counter() - t0 > limit_s:
                            break
                    elapsed = time.perf_counter() - t0
                finally:
                    close = getattr(batches, "close", None)
                    if close is not None:
                        close()
            except Exception as exc:
                traceback.print_exc()
                return {"error": describe(exc)}
        print(TIMED_DONE, flush=True)  # the parent stops sampling memory here
        result = {
            "rows": rows,
            "seconds": elapsed,
            "first_batch_s": first,
            "steady": (rows - first_rows) / (elapsed - first) if first is not None and elapsed > first else None,
            "peak_rss": peak_rss_bytes(),
            "store_peak": store.peak * MiB,
        }
        try:
            if blocks:
                metas = [m for bundle in ds.iter_internal_ref_bundles() for m in bundle.metadata]
                result["block_bytes"] = [int(m.size_bytes) for m in metas]
                result["block_rows"] = sum(int(m.num_rows or 0) for m in metas)
        except Exception as exc:
            traceback.print_exc()
            result["blocks_error"] = describe(exc)
    finally:
        ray.shutdown()
    return result


# -- the parent: spawn, sample memory, report ------------------------------------------------------


def spawn(args: argparse.Namespace, batch: int, name: str, blocks: bool) -> dict[str, object]:
    """Run one contender in a fresh process (its own session); sample its tree's PSS during the timed pass."""
    cmd = [sys.executable, __file__, "--rows", str(args.rows), "--columns", str(args.columns)]
    cmd += ["--files", str(args.files), "--batch", str(batch), "--limit", str(args.limit), "--run", name]
    cmd += ["--blocks"] if blocks else []
    cmd += ["--target-mib", str(args.target_mib)] if args.target_mib else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    peak = [0, 0]
    timing = threading.Event()
    timing.set()
    errors: list[str] = []

    def sample() -> None:
        while proc.poll() is None and timing.is_set():
            pss, procs = loader.tree_pss(proc.pid)
            if timing.is_set():
                peak[0], peak[1] = max(peak[0], pss), max(peak[1], procs)
            time.sleep(0.2)

    def drain() -> None:
        assert proc.stderr is not None
        errors.extend(proc.stderr)

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the contender and the Ray processes it started

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=drain, daemon=True)]
    for thread in threads:
        thread.start()
    budget = 2 * args.limit + 300
    watchdog = threading.Timer(budget, kill)
    watchdog.start()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == TIMED_DONE:
            timing.clear()
        lines.append(line)
    proc.wait()
    watchdog.cancel()
    timing.clear()
    for thread in threads:
        thread.join()
    kill()  # anything the contender left behind in its session
    results = [line for line in lines if line.startswith("{")]
    if not results:
        if proc.returncode == -signal.SIGKILL:
            return {"error": f"killed after {budget:.0f} s"}
        return {"error": loader.error_line("".join(errors))}
    result: dict[str, object] = json.loads(results[-1])
    result["tree_peak"], result["procs"] = peak
    return result


def mib(value: float | None, width: int = 8) -> str:
    return f"{value / MiB:>{width},.0f}" if value is not None else f"{'n/a':>{width}}"


def blocks_text(r: dict[str, object]) -> str:
    sizes = r.get("block_bytes")
    if not isinstance(sizes, list) or not sizes:
        return f"{'n/a':>24}"
    s = sorted(sizes)
    return f"{len(s):>5} {s[0] / MiB:>5.1f} / {statistics.median(s) / MiB:>5.1f} / {s[-1] / MiB:>5.1f}"


def summarize(runs: list[dict[str, object]]) -> dict[str, Any] | None:
    """Medians over rounds (rates, latency); maxima for memory; the last round's blocks."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None

    def med(key: str) -> float | None:
        values = [float(r[key]) for r in ok if r.get(key) is not None]  # type: ignore[arg-type]
        return statistics.median(values) if values else None

    return {
        "rate": statistics.median(float(r["rows"]) / float(r["seconds"]) for r in ok),  # type: ignore[arg-type]
        "steady": med("steady"),
        "first": med("first_batch_s"),
        "rows": max(int(r["rows"]) for r in ok),  # type: ignore[call-overload]
        "tree": max(float(r["tree_peak"]) for r in ok),  # type: ignore[arg-type]
        "procs": max(int(r["procs"]) for r in ok),  # type: ignore[call-overload]
        "store": max(float(r["store_peak"]) for r in ok),  # type: ignore[arg-type]
        "blocks": next((r for r in ok if "block_bytes" in r or "blocks_error" in r), ok[0]),
    }


def report(batch: int, args: argparse.Namespace, runs: dict[str, list[dict[str, object]]]) -> dict[str, Any]:
    """Print one batch size's table and the ratios; return the summaries."""
    print(
        f"\nbatch {batch} (median of {args.repeat} interleaved run(s), each in its own process, "
        f"cut at {args.limit:g} s)"
    )
    head = f"{'contender':<30}{'rows/s':>10}{'after 1st':>11}{'1st batch':>10}{'rows read':>11}"
    print(f"{head}{'tree peak (procs)':>18}{'store peak':>11}   blocks  MiB min / median / max")
    summaries = {name: summarize(rs) for name, rs in runs.items()}
    references = False
    for name, s in summaries.items():
        if CONTENDERS[name].materialized and not references:
            references = True
            print(
                "references, not contenders: the dataset materialized first; the clock times iter_torch_batches alone"
            )
        if s is None:
            errors = [str(r["error"]) for r in runs[name] if "error" in r]
            print(f"{name:<30}FAILED: {errors[0] if errors else 'no run'}")
            continue
        steady = f"{s['steady']:>11,.0f}" if s["steady"] else f"{'':>11}"
        first = f"{s['first']:>9.2f}s" if s["first"] is not None else f"{'':>10}"
        blocks = blocks_text(s["blocks"])
        if "blocks_error" in s["blocks"]:
            blocks = f"(block pass failed: {s['blocks']['blocks_error']})"
        print(
            f"{name:<30}{s['rate']:>10,.0f}{steady}{first}{s['rows']:>11,}"
            f"{mib(s['tree'], 6)} MiB ({s['procs']:>2}){mib(s['store'], 7)} MiB   {blocks}"
        )
    print("\nlakefeed / Ray's own path on the same copy (rows/s: higher is better; memory: lower is better)")
    print(f"{'contender':<30}{'vs':<18}{'rows/s':>9}{'tree peak':>11}{'store peak':>12}")
    for name, contender in CONTENDERS.items():
        s = summaries.get(name)
        if not contender.lakefeed or s is None:
            continue
        for ray_name in dict.fromkeys([RAY_OWN[contender.copy], RAY_PARQUET]):
            r = summaries.get(ray_name)
            if ray_name not in runs:
                continue
            if r is None:
                print(f"{name:<30}{ray_name:<18}{'n/a: Ray failed':>9}")
                continue
            store = f"{s['store'] / r['store']:>11.2f}x" if r["store"] else f"{'n/a':>12}"
            print(f"{name:<30}{ray_name:<18}{s['rate'] / r['rate']:>8.2f}x{s['tree'] / r['tree']:>10.2f}x{store}")
    return summaries


def goals(results: dict[int, dict[str, Any]]) -> None:
    print(f"\ngoals (ratios within this run, against Ray's own path on the same copy; {ROWS_GOAL}, lower peaks)")
    for batch, summaries in results.items():
        for name, contender in CONTENDERS.items():
            s, r = summaries.get(name), summaries.get(RAY_OWN[contender.copy])
            if not contender.lakefeed or name not in summaries:
                continue
            label = f"batch {batch}, {name} vs {RAY_OWN[contender.copy]}"
            if s is None or r is None:
                print(f"  {label:<62}not measured")
                continue
            speed = s["rate"] / r["rate"]
            lower = s["tree"] < r["tree"] and s["store"] <= r["store"]
            print(
                f"  {label:<62}{speed:>7.2f}x {'met' if speed >= SPEED_GOAL else 'NOT MET':<8}"
                f"memory {'lower' if lower else 'NOT lower'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--batch", type=int, nargs="+", default=[1024])
    parser.add_argument("--only", nargs="*", default=None, help="contenders to run (default: all)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per contender at most (slow ones)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (contenders interleaved); medians reported")
    parser.add_argument(
        "--target-mib", type=float, default=None, help="lakefeed's target_bytes in MiB (default: lf.ray.read's)"
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = loader.generate(args.rows, args.columns, args.files)
    home = iceberg_home(args.rows, args.columns, args.files)
    target = int(args.target_mib * MiB) if args.target_mib else None
    data = Data(folder, home, [f"f{j}" for j in range(args.columns)], target)
    if args.run:
        print(json.dumps(run_one(args.run, data, args.batch[0], args.limit, args.blocks)))
        return
    names = args.only or list(CONTENDERS)
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; known: {list(CONTENDERS)}")
    if any(CONTENDERS[n].copy == "Iceberg" for n in names):
        if not home.with_name(home.name + ".done").exists():
            print("writing the Iceberg copy (once; cached under bench-data/) ...", flush=True)
        make_iceberg(folder, home)
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"data: {args.rows:,} rows x {args.columns} float32 + int64 label, {args.files} Parquet files, "
        f"{size / 2**30:.2f} GiB on disk"
    )
    packages = ["lakefeed", "ray", "pyarrow", "pyiceberg", "torch", "numpy"]
    print(f"versions: {loader.versions(Path(sys.executable), packages)}")
    print("Ray, per contender: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)")
    print(f"lf.ray.read target_bytes: {f'{args.target_mib:g} MiB' if target else 'its default'}")
    results: dict[int, dict[str, Any]] = {}
    for batch in args.batch:
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in names}
        for round_ in range(args.repeat):
            for name in names:  # the block pass (untimed) once per contender: blocks do not change
                # its files read once, untimed, so that it starts with them in the page cache
                loader.warm([home if CONTENDERS[name].copy == "Iceberg" else folder])
                runs[name].append(spawn(args, batch, name, blocks=round_ == 0))
        results[batch] = report(batch, args, runs)
    goals(results)


if __name__ == "__main__":
    main()
