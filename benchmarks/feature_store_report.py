"""The feature-store benchmark's report: tables, ratios to Feast, the issue's goals, the latency plot.

Used by ``feature_store.py`` (run that one); it reads the results dictionary that script builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONCURRENCY = (1, 8, 32)


def spread(result: dict[str, Any] | None, key: str, spec: str) -> str:
    """`` (min-max of N)`` of ``key`` over a repeated phase's runs; empty for a single run."""
    values = [r[key] for r in (result or {}).get("runs", []) if key in r]
    if len(values) < 2:
        return ""
    return f" ({format(min(values), spec)}-{format(max(values), spec)} of {len(values)})"


# -- report -------------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ",.0f") -> str:
    return "—" if value is None else format(value, spec)


def ratio(ours: Any, theirs: Any, higher_is_better: bool) -> str:
    if not ours or not theirs:
        return "—"
    return f"{(ours / theirs if higher_is_better else theirs / ours):.1f}x"


def get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def report(results: dict[str, Any]) -> None:
    systems = ["lakefeed-sqlite", "lakefeed-redis", "feast-sqlite", "feast-redis"]
    print("\nmaterialize (whole history into a fresh online store)")
    print(f"  {'':16} {'rows/s':>10} {'peak RSS':>10} {'seconds':>8} {'imports':>8}")
    for s in systems:
        m = get(results, s, "materialize") or {}
        print(
            f"  {s:16} {fmt(m.get('rows_per_s')):>10} {fmt(m.get('peak_rss_mib')):>6} MiB"
            f" {fmt(m.get('seconds'), '.1f'):>8} {fmt(m.get('import_seconds'), '.2f'):>8}"
            + spread(m, "rows_per_s", ",.0f")
            + (f"  {m['error']}" if "error" in m else "")
        )
    for kind in ("sqlite", "redis"):
        bare = get(results, f"bare-{kind}", "materialize") or {}
        ours = get(results, f"lakefeed-{kind}", "materialize", "rows_per_s")
        if bare.get("rows_per_s"):
            share = f"; lakefeed materializes at {ours / bare['rows_per_s']:.0%} of it" if ours else ""
            print(
                f"  bare writes of 1 KB blobs into {kind} (no latest-wins logic, no reading or encoding): "
                f"{fmt(bare['rows_per_s'])} rows/s{spread(bare, 'rows_per_s', ',.0f')}{share}"
            )
    print("\nin-process lookups (ms)")
    print(f"  {'':16} {'1: p50':>8} {'p99':>8} {'100: p50':>9} {'p99':>8}")
    for s in systems:
        one, many = get(results, s, "lookup_1") or {}, get(results, s, "lookup_100") or {}
        print(
            f"  {s:16} {fmt(one.get('p50_ms'), '.3f'):>8} {fmt(one.get('p99_ms'), '.3f'):>8}"
            f" {fmt(many.get('p50_ms'), '.3f'):>9} {fmt(many.get('p99_ms'), '.3f'):>8}"
            + (f"  p99: 1{spread(one, 'p99_ms', '.3f')}, 100{spread(many, 'p99_ms', '.3f')}" if "runs" in many else "")
        )
    print("\nHTTP, one entity per request (wrk, one thread; latency in ms; server CPU per request in µs)")
    print(f"  {'':16} {'conns':>5} {'req/s':>8} {'p50':>7} {'p99':>7} {'p99.9':>7} {'CPU/req':>8} {'errors':>6}")
    for s in systems:
        http = get(results, s, "http") or {}
        if "error" in http:
            print(f"  {s:16} {http['error']}")
        for c in CONCURRENCY:
            r = http.get(str(c))
            if r:
                p = r["percentiles_us"]
                errors = r["non2xx"] + r["socket_errors"] + r["timeouts"]
                print(
                    f"  {s:16} {c:>5} {r['rps']:>8,.0f} {p['50'] / 1e3:>7.2f} {p['99'] / 1e3:>7.2f}"
                    f" {p['99.9'] / 1e3:>7.2f} {r['server_cpu_us_per_request']:>8.0f} {errors:>6}"
                )
    print("\npoint-in-time join (spine x history, all 11 features)")
    for s in ("lakefeed", "feast"):
        p = get(results, s, "pit") or {}
        print(
            f"  {s:16} {fmt(p.get('seconds'), '.2f')} s{spread(p, 'seconds', '.2f')} "
            f"(imports before it {fmt(p.get('import_seconds'), '.2f')} s), "
            f"{fmt(p.get('peak_rss_mib'))} MiB, rows out "
            f"{fmt(p.get('rows_out'))} of {fmt(p.get('rows_in'))}, with features {fmt(p.get('rows_with_features'))}"
            + (f"  {p['error']}" if "error" in p else "")
        )
    if results.get("pit_agreement"):
        print(f"  agreement: {results['pit_agreement']}")

    print("\nratios (lakefeed over Feast; > 1 means lakefeed is better)")
    for kind in ("sqlite", "redis"):
        ours, theirs = f"lakefeed-{kind}", f"feast-{kind}"
        cells = [
            (
                "materialize rows/s",
                ratio(
                    get(results, ours, "materialize", "rows_per_s"),
                    get(results, theirs, "materialize", "rows_per_s"),
                    True,
                ),
            ),
            (
                "materialize RSS",
                ratio(
                    get(results, ours, "materialize", "peak_rss_mib"),
                    get(results, theirs, "materialize", "peak_rss_mib"),
                    False,
                ),
            ),
            (
                "p99 1 entity",
                ratio(get(results, ours, "lookup_1", "p99_ms"), get(results, theirs, "lookup_1", "p99_ms"), False),
            ),
            (
                "p99 100 entities",
                ratio(get(results, ours, "lookup_100", "p99_ms"), get(results, theirs, "lookup_100", "p99_ms"), False),
            ),
        ]
        for c in CONCURRENCY:
            cells.append(
                (
                    f"HTTP req/s @{c}",
                    ratio(get(results, ours, "http", str(c), "rps"), get(results, theirs, "http", str(c), "rps"), True),
                )
            )
            cells.append(
                (
                    f"HTTP p99 @{c}",
                    ratio(
                        get(results, ours, "http", str(c), "percentiles_us", "99"),
                        get(results, theirs, "http", str(c), "percentiles_us", "99"),
                        False,
                    ),
                )
            )
        print(f"  {kind}: " + ", ".join(f"{name} {value}" for name, value in cells))
    pit_time = ratio(get(results, "lakefeed", "pit", "seconds"), get(results, "feast", "pit", "seconds"), False)
    pit_ram = ratio(
        get(results, "lakefeed", "pit", "peak_rss_mib"), get(results, "feast", "pit", "peak_rss_mib"), False
    )
    print(f"  point-in-time join: time {pit_time}, memory {pit_ram}")
    goals(results)


GOALS: list[tuple[str, tuple[str, ...], str, float, str]] = [
    # (goal, path to the median, comparison, target, format)
    ("materialize into Redis >= 300k rows/s", ("lakefeed-redis", "materialize", "rows_per_s"), ">=", 300_000, ",.0f"),
    ("materialize into SQLite >= 150k rows/s", ("lakefeed-sqlite", "materialize", "rows_per_s"), ">=", 150_000, ",.0f"),
    ("materialize RSS <= 2 GB (Redis)", ("lakefeed-redis", "materialize", "peak_rss_mib"), "<=", 2e9 / 2**20, ",.0f"),
    ("in-process p99, 1 entity (SQLite) <= 0.1 ms", ("lakefeed-sqlite", "lookup_1", "p99_ms"), "<=", 0.1, ".3f"),
    ("in-process p99, 100 entities (SQLite) <= 1 ms", ("lakefeed-sqlite", "lookup_100", "p99_ms"), "<=", 1.0, ".3f"),
    ("HTTP @32 >= 15,000 req/s (SQLite)", ("lakefeed-sqlite", "http", "32", "rps"), ">=", 15_000, ",.0f"),
    ("HTTP @32 p99 <= 5,000 µs (SQLite)", ("lakefeed-sqlite", "http", "32", "percentiles_us", "99"), "<=", 5e3, ",.0f"),
    ("point-in-time join <= 1 s", ("lakefeed", "pit", "seconds"), "<=", 1.0, ".2f"),
    ("point-in-time join <= 1 GB", ("lakefeed", "pit", "peak_rss_mib"), "<=", 1e9 / 2**20, ",.0f"),
]


def goals(results: dict[str, Any]) -> None:
    """The feature-store issue's targets, checked against this run's medians."""
    print("\ngoals of the feature-store issue (medians of this run)")
    for name, path, op, target, spec in GOALS:
        value = get(results, *path)
        if not isinstance(value, int | float) or "error" in (get(results, *path[:-1]) or {}):
            print(f"  {name:52} {'not measured':>12}")
            continue
        met = value >= target if op == ">=" else value <= target
        print(f"  {name:52} {format(value, spec):>12}   {'met' if met else 'NOT met'}")


def plot(results: dict[str, Any], path: Path) -> bool:
    """In-process latency histograms (1 entity) and HTTP latency percentiles at 32 connections."""
    try:
        import matplotlib
    except ImportError:
        print(f"\nno plot ({path} left as it was): matplotlib is missing; pip install -e '.[bench]'")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems = [s for s in ("lakefeed-sqlite", "lakefeed-redis", "feast-sqlite", "feast-redis") if s in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    bins = np.logspace(-3, 2.5, 80)
    for s in systems:
        samples = get(results, s, "lookup_1", "samples_ms")
        if samples:
            left.hist(samples, bins=bins, histtype="step", linewidth=1.5, label=s)
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log scale)")
    left.set_ylabel("calls")
    left.set_title("in-process lookup, 1 entity")
    left.legend()
    for s in systems:
        pct = get(results, s, "http", "32", "percentiles_us")
        if pct:
            points = sorted((float(p), v / 1e3) for p, v in pct.items())
            right.plot([p for p, _ in points], [v for _, v in points], marker=".", label=s)
    right.set_yscale("log")
    right.set_xlabel("percentile")
    right.set_ylabel("latency (ms, log scale)")
    right.set_title("HTTP, 32 connections, 1 entity per request")
    right.legend()
    fig.suptitle(
        f"lakefeed vs Feast: {results['meta']['entities']:,} entities x 11 features ({results['meta']['machine']})"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True
