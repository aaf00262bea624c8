"""Full-scan throughput: lakefeed vs pyiceberg vs pyarrow.dataset (and vs pypaimon), same files, one run.

    python benchmarks/scan.py [--rows 2000000] [--columns 100] [--files 16] [--repeat 3]

Builds (once, cached under bench-data/) a table of random float32 columns as an Iceberg table
written in ``--files`` appends, then times a full scan to one Arrow table through each reader
on the same files: the median of ``--repeat`` interleaved rounds after a warm-up. In an
environment with pypaimon it also writes the same data as a Paimon table and compares lakefeed
with pypaimon's own ``to_arrow()``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

import lakefeed as lf


def make_chunk(rows: int, columns: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((rows, columns), dtype=np.float32)
    return pa.table({f"f{j}": block[:, j] for j in range(columns)})


def interleaved(repeat: int, readers: dict[str, Callable[[], pa.Table]]) -> dict[str, tuple[float, int]]:
    """Median seconds and row count per reader; rounds rotate the order so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    rows: dict[str, int] = {}
    names = list(readers)
    for _ in range(1):  # warm-up: page cache, footers, imports
        for name in names:
            rows[name] = readers[name]().num_rows
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            t0 = time.perf_counter()
            table = readers[name]()
            times[name].append(time.perf_counter() - t0)
            del table
    return {name: (statistics.median(times[name]), rows[name]) for name in names}


def build_iceberg(home: Path, rows: int, columns: int, files: int) -> lf.Table:
    wh = lf.Warehouse(home)
    name = f"bench.f{rows}x{columns}x{files}"
    if wh.table_exists(name):
        return wh.table(name)
    per = rows // files
    t = wh.create_table(name, make_chunk(per, columns, 0))
    for i in range(1, files):
        t.append(make_chunk(per, columns, i))
    return t


def build_paimon(root: Path, rows: int, columns: int, files: int) -> lf.Table:
    from lakefeed.tables.paimon import PaimonTable, create_paimon_table

    name = f"bench.f{rows}x{columns}x{files}"
    try:
        return PaimonTable(root, name)
    except lf.TableNotFoundError:
        pass
    per = rows // files
    t = create_paimon_table(str(root), name, make_chunk(per, columns, 0))
    for i in range(1, files):
        t.append(make_chunk(per, columns, i))
    return t


def report(title: str, results: dict[str, tuple[float, int]], baseline: str) -> None:
    print(f"\n{title}")
    print(f"{'reader':<30}{'seconds':>9}{'rows/s':>14}   vs {baseline}")
    base = results[baseline][0]
    for name, (secs, rows) in results.items():
        print(f"{name:<30}{secs:>9.3f}{rows / secs:>14,.0f}   {base / secs:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "bench-data")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}; data: {args.rows:,} rows x {args.columns} float32 columns in {args.files} files"
    )

    table = build_iceberg(args.data / "iceberg", args.rows, args.columns, args.files)
    ice = table.pyiceberg_table  # type: ignore[attr-defined]
    files = [t.file.file_path.removeprefix("file://") for t in ice.scan().plan_files()]
    decoded = table.scan().parts()
    print(
        f"iceberg: {len(files)} files, {sum(os.path.getsize(f) for f in files) / 2**20:,.0f} MiB on disk, "
        f"{sum(p.estimated_bytes for p in decoded) / 2**20:,.0f} MiB decoded (estimated)"
    )

    def lakefeed_cold() -> pa.Table:
        from lakefeed.tables import iceberg, planning

        iceberg._plan_cache.clear()  # as on a first scan of this snapshot in a new process
        planning._cache.clear()
        return table.scan().to_arrow()

    results = interleaved(
        args.repeat,
        {
            "lakefeed scan().to_arrow()": lambda: table.scan().to_arrow(),
            "lakefeed, cold caches": lakefeed_cold,
            "pyiceberg scan().to_arrow()": lambda: ice.scan().to_arrow(),
            "pyarrow.dataset to_table()": lambda: ds.dataset(files, format="parquet").to_table(),
        },
    )
    report(f"Iceberg full scan (median of {args.repeat}, interleaved)", results, "pyiceberg scan().to_arrow()")
    lakefeed_s = results["lakefeed scan().to_arrow()"][0]
    print(f"lakefeed vs pyarrow.dataset: {results['pyarrow.dataset to_table()'][0] / lakefeed_s:.2f}x")

    if importlib.util.find_spec("pypaimon") is not None:
        ptable = build_paimon(args.data / "paimon", args.rows, args.columns, args.files)
        native = ptable.paimon_table  # type: ignore[attr-defined]

        def pypaimon_read() -> pa.Table:
            builder = native.new_read_builder()
            return builder.new_read().to_arrow(builder.new_scan().plan().splits())

        presults = interleaved(
            args.repeat,
            {"lakefeed scan().to_arrow()": lambda: ptable.scan().to_arrow(), "pypaimon to_arrow()": pypaimon_read},
        )
        report(f"Paimon full scan (median of {args.repeat}, interleaved)", presults, "pypaimon to_arrow()")
    else:
        print("\n(pypaimon not installed here: run this script with .venv-paimon/bin/python for the Paimon figures)")


if __name__ == "__main__":
    main()
