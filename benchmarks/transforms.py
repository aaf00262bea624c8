"""Fitting and applying a feature pipeline: lakefeed against scikit-learn and pandas, same data, one run.

    python benchmarks/transforms.py [--rows 2000000] [--columns 100] [--files 16] [--repeat 3]

Data: the loader benchmark's files (``--rows`` x ``--columns`` random float32 features and an
int label in ``--files`` Parquet files, generated once under bench-data/). The pipeline:
``StandardScaler`` on the first 60% of the features, ``MinMaxScaler`` on the next 30%,
``Bucketizer(n_buckets=8)`` (quantiles) on the rest; scikit-learn runs the same as a
``ColumnTransformer`` of ``StandardScaler``, ``MinMaxScaler`` and
``KBinsDiscretizer(n_bins=8, encode="ordinal", strategy="quantile")``; pandas computes the same
statistics with ``DataFrame.mean/std/min/max/quantile`` and applies them with arithmetic and
``searchsorted``.

Each contender runs in its own process (its peak memory is its own), rounds interleaved,
medians reported:

- fit: lakefeed streams the table (task by task, in threads, bounded memory); scikit-learn and
  pandas fit an in-memory array / frame, whose load (``pq.read_table`` and conversion) is timed
  separately ("load") and shown next to the fit.
- apply: each transforms the whole in-memory data (an Arrow table for lakefeed, a numpy array
  for scikit-learn, a DataFrame for pandas).
- one row: ``transform_row`` on a dict of 100 values (lakefeed) against ``transform`` on a
  one-row array (scikit-learn), p50 and p99 over 2,000 rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import generate  # the loader benchmark's data
from peak_memory import peak_rss_bytes

ROW_SAMPLES = 2_000
BUCKETS = 8


def groups(columns: int) -> tuple[list[str], list[str], list[str]]:
    names = [f"f{j}" for j in range(columns)]
    a, b = int(columns * 0.6), int(columns * 0.9)
    return names[:a], names[a:b], names[b:]


def lakefeed_pipeline(columns: int) -> Any:
    import lakefeed.transforms as lt

    std, mm, bk = groups(columns)
    return lt.Pipeline(
        [
            lt.StandardScaler(columns=std),
            lt.MinMaxScaler(columns=mm),
            lt.Bucketizer(n_buckets=BUCKETS, columns=bk),
        ]
    )


def sklearn_pipeline(columns: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import KBinsDiscretizer, MinMaxScaler, StandardScaler

    std, mm, bk = groups(columns)
    idx = {name: i for i, name in enumerate([*std, *mm, *bk])}
    return ColumnTransformer(
        [
            ("std", StandardScaler(), [idx[c] for c in std]),
            ("mm", MinMaxScaler(), [idx[c] for c in mm]),
            ("kb", KBinsDiscretizer(n_bins=BUCKETS, encode="ordinal", strategy="quantile"), [idx[c] for c in bk]),
        ]
    )


def load_numpy(folder: Path, columns: int) -> np.ndarray:
    import pyarrow.parquet as pq

    table = pq.read_table(folder, columns=[f"f{j}" for j in range(columns)])
    out = np.empty((table.num_rows, columns), dtype=np.float32)
    for j, col in enumerate(table.columns):
        out[:, j] = col.to_numpy()
    return out


def run(name: str, folder: Path, columns: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name == "lakefeed":
        import pyarrow.parquet as pq

        import lakefeed as lf

        table = lf.open_table(str(folder))
        pipe = lakefeed_pipeline(columns)
        t0 = time.perf_counter()
        pipe.fit(table, progress=False)
        out["fit"] = time.perf_counter() - t0
        out["fit_rss"] = peak_rss()
        data = pq.read_table(folder, columns=[f"f{j}" for j in range(columns)])
        t0 = time.perf_counter()
        pipe.transform(data)
        out["apply"] = time.perf_counter() - t0
        rows = data.slice(0, ROW_SAMPLES).to_pylist()
        lat = []
        for row in rows:
            t0 = time.perf_counter()
            pipe.transform_row(row)
            lat.append(time.perf_counter() - t0)
        out["row_p50_us"], out["row_p99_us"] = np.percentile(lat, [50, 99]) * 1e6
    elif name == "scikit-learn":
        t0 = time.perf_counter()
        x = load_numpy(folder, columns)
        out["load"] = time.perf_counter() - t0
        ct = sklearn_pipeline(columns)
        t0 = time.perf_counter()
        ct.fit(x)
        out["fit"] = time.perf_counter() - t0
        out["fit_rss"] = peak_rss()
        t0 = time.perf_counter()
        ct.transform(x)
        out["apply"] = time.perf_counter() - t0
        lat = []
        for i in range(ROW_SAMPLES):
            one = x[i : i + 1]
            t0 = time.perf_counter()
            ct.transform(one)
            lat.append(time.perf_counter() - t0)
        out["row_p50_us"], out["row_p99_us"] = np.percentile(lat, [50, 99]) * 1e6
    elif name == "pandas":
        import pyarrow.parquet as pq

        std, mm, bk = groups(columns)
        t0 = time.perf_counter()
        df = pq.read_table(folder, columns=[*std, *mm, *bk]).to_pandas()
        out["load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mean, sd = df[std].mean(), df[std].std(ddof=0).replace(0, 1)
        lo, hi = df[mm].min(), df[mm].max()
        qs = df[bk].quantile(np.linspace(0, 1, BUCKETS + 1)[1:-1])
        out["fit"] = time.perf_counter() - t0
        out["fit_rss"] = peak_rss()
        t0 = time.perf_counter()
        scaled = (df[std] - mean) / sd
        ranged = (df[mm] - lo) / (hi - lo)
        buckets = {c: np.searchsorted(qs[c].to_numpy(), df[c].to_numpy(), side="right") for c in bk}
        _ = (scaled, ranged, buckets)
        out["apply"] = time.perf_counter() - t0
    out["rss"] = peak_rss()
    return out


def peak_rss() -> int:
    return peak_rss_bytes()


def spawn(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--run", name, "--rows", str(args.rows), "--columns", str(args.columns)]
    cmd += ["--files", str(args.files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "–"
    if unit == "MiB":
        return f"{value / 2**20:,.0f} MiB"
    if unit == "us":
        return f"{value:,.0f} µs"
    return f"{value:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = generate(args.rows, args.columns, args.files)
    if args.run:
        print(json.dumps(run(args.run, folder, args.columns)))
        return
    names = args.only or ["lakefeed", "scikit-learn", "pandas"]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(args.repeat):
        for name in names:
            result = spawn(name, args)
            runs[name].append(result)
            print(f"round {r + 1}: {name}: {result}", file=sys.stderr, flush=True)
    print(
        f"\n{args.rows:,} rows x {args.columns} float32 features, {args.files} files; {platform.machine()}, "
        f"{platform.python_version()}; median of {args.repeat} runs\n"
    )
    print("| contender | load | fit | fit peak RSS | apply | row p50 | row p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        rs = [r for r in runs[name] if "error" not in r]
        if not rs:
            print(f"| {name} | failed: {runs[name][0].get('error')} | | | | | |")
            continue
        print(
            f"| {name} | {fmt(med(rs, 'load'))} | {fmt(med(rs, 'fit'))} | {fmt(med(rs, 'fit_rss'), 'MiB')} | "
            f"{fmt(med(rs, 'apply'))} | {fmt(med(rs, 'row_p50_us'), 'us')} | {fmt(med(rs, 'row_p99_us'), 'us')} |"
        )
    lf_runs = [r for r in runs.get("lakefeed", []) if "error" not in r]
    sk_runs = [r for r in runs.get("scikit-learn", []) if "error" not in r]
    if lf_runs and sk_runs:
        lf_fit, sk_fit, sk_load = med(lf_runs, "fit"), med(sk_runs, "fit"), med(sk_runs, "load")
        lf_apply, sk_apply = med(lf_runs, "apply"), med(sk_runs, "apply")
        if not (lf_fit and sk_fit and sk_load is not None and lf_apply and sk_apply):
            return
        print(
            f"\nfit: lakefeed (streamed from the table) is {sk_fit / lf_fit:.2f}x scikit-learn's fit alone, "
            f"{(sk_load + sk_fit) / lf_fit:.2f}x its load + fit  (goal >= 1x)"
        )
        print(f"apply: lakefeed is {sk_apply / lf_apply:.2f}x scikit-learn  (goal >= 1x)")


if __name__ == "__main__":
    main()
