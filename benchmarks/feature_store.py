"""The feature store: lakefeed (SQLite and Redis online stores) against Feast, same data, one run.

    python benchmarks/feature_store.py [--entities 1000000] [--spine 100000] [--duration 10]
                                       [--repeat 3] [--skip-feast] [--out results.json]

Data (generated once under bench-data/, the same Parquet files for both): a history of
``--entities`` rows, one per entity, with ``user_id``, an event time spread over 30 days, a
created time and 11 features (6 float64, 2 int64, a short category and two ~450-character
strings: ~1 KB a row), and a spine of ``--spine`` (user_id, event time, label) rows, ~5% of
them for entities that exist nowhere and times running 7 days past the history. Both stores
get the same feature group / feature view: keys ``user_id``, event time ``event_ts``, created
time ``created_ts``, TTL 3650 days (so online reads made today find every row).

Feast (``feast[redis]``, the version pinned in ``feast_runner.py``) runs in its own virtual
environment under bench-envs/feast, created on first use. Every measurement runs in a fresh
process (its peak memory is its own), with the contender's libraries imported before its clock
starts (import time is per process, not per call; lakefeed's lazily imported offline stack,
pyiceberg's catalog and DuckDB, is timed and printed beside the call), and the files a phase
reads (lakefeed's Iceberg table, Feast's Parquet source) read once, untimed, so every contender
starts with them in the page cache (see page_cache.py):

- materialize: the whole history into a fresh online store (SQLite file; Redis db flushed
  first): rows/s and peak RSS of the materializing process. Beside it, as a reference on the
  same machine, bare writes of as many 1 KB blobs (Redis ``MSET`` pre-packed in its protocol,
  SQLite ``executemany`` upsert; see ``phase_bare``): this VM's speed swings from day to day.
- in-process lookups: ``get_feature_vector(s)`` (lakefeed) / ``get_online_features`` (Feast)
  for 1 and 100 random existing entities: p50/p99 over 5,000 and 2,500 calls (after a tenth as warm-up).
- HTTP: ``lakefeed serve`` (one uvicorn process) against ``feast serve`` (one worker), each on
  the same online store it materialized; ``wrk`` (one thread, keep-alive, closed loop: each
  connection sends its next request when the last one is answered) at 1, 8 and 32
  connections, a random entity per request: req/s, p50/p99/p99.9, errors and server CPU per
  request (from /proc of the server's process tree).
- point-in-time join: ``view.training_data(spine)`` against ``get_historical_features``:
  seconds, peak RSS, rows returned, rows with features, and agreement of the two answers.

``--repeat N`` runs each materialization, lookup and point-in-time phase N times, each in a
fresh process, and reports the median of every figure (with the range beside the main one):
on a shared 2-core VM one process can run 1.5x slower than the next. Feast's materialization
(minutes) runs once; its lookups and point-in-time join are repeated like lakefeed's.

The ratios (lakefeed / Feast: higher is better for throughput, Feast / lakefeed for latency,
time and memory) are printed, then the feature-store issue's targets against the medians; a
latency plot goes to docs/img/feature_store_latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from feature_store_report import CONCURRENCY, plot, report  # noqa: E402
from loader import error_line  # noqa: E402
from page_cache import warm  # noqa: E402
from peak_memory import peak_rss_bytes  # noqa: E402

GROUP = "user_stats"
VIEW = "user_view"
REDIS = "redis://127.0.0.1:6379"
LAKEFEED_REDIS_DB = 13
FEAST_REDIS_DB = 12
BARE_REDIS_DB = 14
TTL_DAYS = 3650
START = datetime(2026, 10, 2, tzinfo=UTC)
PERCENTILES = (50, 75, 90, 95, 99, 99.9)


# -- data ---------------------------------------------------------------------------------------


def data_dir(entities: int, spine: int) -> Path:
    return ROOT / "bench-data" / f"feature_store-{entities}-{spine}"


def generate(entities: int, spine: int) -> Path:
    """Write history.parquet and spine.parquet once (deterministic)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = data_dir(entities, spine)
    if (folder / "spine.parquet").exists():
        return folder
    print(f"generating {entities:,} entities x 11 features and a {spine:,}-row spine (once) ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    ids = np.arange(entities, dtype=np.int64)
    month_us = 30 * 86_400 * 10**6
    start_us = int(START.timestamp() * 10**6)
    event = start_us + rng.integers(0, month_us, entities)
    created = event + rng.integers(0, 3_600 * 10**6, entities)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789 ", dtype=np.uint8)
    pool = pa.array(["".join(map(chr, rng.choice(letters, 442))) for _ in range(1024)])
    prefix = pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), 8, "0")

    def text() -> pa.Array:
        return pc.binary_join_element_wise(prefix, pool.take(pa.array(rng.integers(0, 1024, entities))), "")

    ts = pa.timestamp("us", tz="UTC")
    columns: dict[str, Any] = {
        "user_id": pa.array(ids),
        "event_ts": pa.array(event, ts),
        "created_ts": pa.array(created, ts),
    }
    for j in range(6):
        columns[f"f{j}"] = pa.array(rng.standard_normal(entities))
    columns["f6"] = pa.array(rng.integers(0, 1_000, entities))
    columns["f7"] = pa.array(rng.integers(0, 10**9, entities))
    columns["f8"] = pc.binary_join_element_wise(
        "cat_", pc.cast(pa.array(rng.integers(0, 50, entities)), pa.string()), ""
    )
    columns["f9"] = text()
    columns["f10"] = text()
    pq.write_table(pa.table(columns), folder / "history.parquet", row_group_size=128 * 1024)
    unknown = rng.random(spine) < 0.05
    spine_ids = np.where(unknown, entities + rng.integers(0, entities, spine), rng.integers(0, entities, spine))
    spine_ts = start_us + rng.integers(0, month_us + 7 * 86_400 * 10**6, spine)
    spine_table = pa.table(
        {
            "user_id": pa.array(spine_ids),
            "event_ts": pa.array(spine_ts, ts),
            "label": pa.array(rng.integers(0, 2, spine)),
        }
    )
    pq.write_table(spine_table, folder / "spine.parquet")
    return folder


# -- lakefeed phases (each in its own process) --------------------------------------------------


def peak_rss_mib() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return max(peak_rss_bytes(), children) / 2**20


def online_target(kind: str, work: Path) -> str:
    return f"{REDIS}/{LAKEFEED_REDIS_DB}" if kind == "redis" else str(work / "online.db")


def lakefeed_store(work: Path, online: str | None) -> Any:
    import lakefeed as lf

    return lf.FeatureStore(work / "home", online=online)


def phase_build(data: Path, work: Path) -> dict[str, Any]:
    """The offline side: the feature group (one Iceberg insert of the history) and the view."""
    import pyarrow.parquet as pq

    if (work / "home").exists():
        shutil.rmtree(work / "home")
    history = pq.read_table(data / "history.parquet")
    began = time.perf_counter()
    with lakefeed_store(work, str(work / "scratch-online.db")) as fs:
        fg = fs.create_feature_group(
            GROUP,
            keys=["user_id"],
            event_time="event_ts",
            created_time="created_ts",
            schema=history.schema,
            ttl=timedelta(days=TTL_DAYS),
        )
        fg.insert(history)  # the online side goes to a scratch file: materialize is timed on its own
        fs.create_feature_view(VIEW, features=[f"{GROUP}.*"])
    for suffix in ("", "-wal", "-shm"):
        (work / f"scratch-online.db{suffix}").unlink(missing_ok=True)
    return {"rows": history.num_rows, "seconds": time.perf_counter() - began}


def import_offline_stack() -> float:
    """Import what the offline side loads lazily (Iceberg's catalog, DuckDB): seconds taken.

    Every contender's libraries are imported before its clock starts (import time is per
    process, not per call; the Feast runner does the same for its stores); the seconds are
    reported beside the timed call.
    """
    began = time.perf_counter()
    import duckdb  # noqa: F401
    import pyarrow as pa
    import pyiceberg.catalog.sql
    import pyiceberg.io.pyarrow
    import pyiceberg.manifest
    import pyiceberg.table  # noqa: F401
    import redis  # noqa: F401

    import lakefeed.store.materialize
    import lakefeed.store.offline
    import lakefeed.store.online.redis
    import lakefeed.store.online.sqlite  # noqa: F401

    pa.array([0])  # pyarrow's first conversion of Python objects imports pandas (0.15-0.2 s)
    return time.perf_counter() - began


def phase_materialize(data: Path, work: Path, kind: str) -> dict[str, Any]:
    """Everything into a fresh online store (a window covering all history rewrites every row)."""
    imports = import_offline_stack()
    if kind == "redis":
        import redis

        redis.Redis.from_url(f"{REDIS}/{LAKEFEED_REDIS_DB}").flushdb()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{online_target(kind, work)}{suffix}").unlink(missing_ok=True)
    warm([work / "home" / "warehouse"])
    with lakefeed_store(work, online_target(kind, work)) as fs:
        began = time.perf_counter()
        result = fs.materialize(GROUP, start=START - timedelta(days=1), progress=False)
        seconds = time.perf_counter() - began
    return {
        "rows": result.rows,
        "seconds": seconds,
        "import_seconds": imports,
        "rows_per_s": result.rows / seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


BARE_BYTES = 1024
BARE_CHUNK = 16_384


def phase_bare(work: Path, kind: str, entities: int) -> dict[str, Any]:
    """The reference under materialization: bare writes of ``entities`` 1 KB blobs, no logic on top.

    Redis: ``MSET`` commands of 16,384 keys, packed in the Redis protocol before the clock starts,
    sent on one connection, then their replies read (what the server alone can absorb); SQLite: one
    ``executemany`` upsert transaction per 16,384 rows into a two-column table, WAL mode,
    ``synchronous=NORMAL``, default page size. The blobs are made before the clock starts. A
    reference measured on the same machine in the same run, so that materialization can be read
    against it (this VM's speed swings from day to day).
    """
    import numpy as np

    blobs = np.random.default_rng(3).integers(0, 256, (entities, BARE_BYTES), dtype=np.uint8)
    values = [row.tobytes() for row in blobs]
    del blobs
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(f"{REDIS}/{BARE_REDIS_DB}")  # its own db: the stores' stay as they are
        client.flushdb()
        commands = []  # packed in the Redis protocol before the clock: the server's side alone is timed
        for start in range(0, entities, BARE_CHUNK):
            chunk = values[start : start + BARE_CHUNK]
            parts = [b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * len(chunk))]
            for i, value in enumerate(chunk, start):
                key = b"bare:%d" % i
                parts.append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
            commands.append(b"".join(parts))
        del values, parts
        conn = client.connection_pool.get_connection()
        began = time.perf_counter()
        for command in commands:
            conn.send_packed_command([command])
        for _ in commands:
            conn.read_response()
        seconds = time.perf_counter() - began
        client.connection_pool.release(conn)
        client.flushdb()
    else:
        import sqlite3

        path = work / "bare.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        sql = "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v"
        began = time.perf_counter()
        for start in range(0, entities, BARE_CHUNK):
            chunk = values[start : start + BARE_CHUNK]
            conn.execute("BEGIN")
            conn.executemany(sql, zip(range(start, start + len(chunk)), chunk, strict=True))
            conn.execute("COMMIT")
        seconds = time.perf_counter() - began
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {"rows": entities, "seconds": seconds, "rows_per_s": entities / seconds, "peak_rss_mib": peak_rss_mib()}


def phase_lookup(data: Path, work: Path, kind: str, entities: int, n: int, total: int) -> dict[str, Any]:
    rng = random.Random(11)
    with lakefeed_store(work, online_target(kind, work)) as fs:
        view = fs.feature_view(VIEW)
        check = view.get_feature_vector({"user_id": 12345})
        if check["f0"] is None or check["f10"] is None or not str(check["f10"]).startswith("00012345"):
            raise SystemExit(f"lakefeed returned a wrong vector for user 12345: {check}")
        samples = []
        for i in range(n + n // 10):
            batch = [{"user_id": rng.randrange(total)} for _ in range(entities)]
            t0 = time.perf_counter_ns()
            if entities == 1:
                view.get_feature_vector(batch[0])
            else:
                view.get_feature_vectors(batch)
            if i >= n // 10:  # the first tenth warms up
                samples.append((time.perf_counter_ns() - t0) / 1e6)
    return summarize(samples) | {"entities": entities, "checked": True}


def summarize(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(samples),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": statistics.fmean(samples),
        "samples_ms": [round(s, 4) for s in samples],
    }


def phase_pit(data: Path, work: Path) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    spine = pq.read_table(data / "spine.parquet")
    imports = import_offline_stack()
    warm([work / "home" / "warehouse"])
    with lakefeed_store(work, None) as fs:
        view = fs.feature_view(VIEW)
        began = time.perf_counter()
        result = view.training_data(spine, label="label")
        seconds = time.perf_counter() - began
    pq.write_table(result.select(["user_id", "event_ts", "f0", "f10"]), work / "pit_result.parquet")
    with_features = result.num_rows - result.column("f0").null_count
    same_order = pc.all(pc.equal(result.column("user_id"), spine.column("user_id"))).as_py()
    return {
        "seconds": seconds,
        "import_seconds": imports,
        "peak_rss_mib": peak_rss_mib(),
        "rows_in": spine.num_rows,
        "rows_out": result.num_rows,
        "rows_with_features": with_features,
        "spine_order": bool(same_order),
    }


PHASES = {"bare", "build", "materialize", "lookup", "pit"}


def run_phase(args: argparse.Namespace) -> None:
    data, work = Path(args.data), Path(args.work)
    if args.phase == "build":
        out = phase_build(data, work)
    elif args.phase == "materialize":
        out = phase_materialize(data, work, args.online)
    elif args.phase == "bare":
        out = phase_bare(work, args.online, args.entities)
    elif args.phase == "lookup":
        out = phase_lookup(data, work, args.online, args.lookup_entities, args.n, args.entities)
    else:
        out = phase_pit(data, work)
    print(json.dumps(out))


# -- the parent ---------------------------------------------------------------------------------


def run_json(cmd: list[str], *, timeout: float = 3_600, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": error_line(proc.stderr or proc.stdout)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def lakefeed(args: argparse.Namespace, data: Path, work: Path, phase: str, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--data", str(data), "--work", str(work)]
    cmd += ["--entities", str(args.entities), "--spine", str(args.spine), *extra]
    return run_json(cmd)


def repeated(times: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run`` (a phase in a fresh process) ``times`` times: the median of each number, and every run.

    A phase with a failed run reports the error (its figures are not a median of all runs).
    """
    runs = [run() for _ in range(max(1, times))]
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    out = dict(good[0])
    for key, value in good[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in good if isinstance(r.get(key), int | float)]
            out[key] = statistics.median(values)
    if len(runs) > 1:
        out["runs"] = runs
    failed = [r for r in runs if "error" in r]
    if failed:
        out["error"] = f"{len(failed)} of {len(runs)} runs failed: {failed[0]['error']}"
    return out


def feast(args: argparse.Namespace, python: Path, data: Path, repo: Path, online: str, *command: str) -> dict[str, Any]:
    cmd = [str(python), str(HERE / "feast_runner.py"), "--data", str(data), "--repo", str(repo / online)]
    cmd += ["--online", online, "--redis", f"127.0.0.1:6379,db={FEAST_REDIS_DB}", *command]
    return run_json(cmd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on {port} within {timeout:.0f} s")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == pid)
    return total


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local template = [==[%(template)s]==]
local entities = %(entities)d
math.randomseed(%(seed)d)
request = function()
  return wrk.format(nil, "%(path)s", nil, string.format(template, math.random(0, entities - 1)))
end
done = function(summary, latency, requests)
  local out = {}
  for _, p in ipairs({%(percentiles)s}) do
    table.insert(out, string.format('"%%s": %%d', tostring(p), latency:percentile(p)))
  end
  io.write(string.format('WRKJSON {"requests": %%d, "seconds": %%.3f, "non2xx": %%d, "socket_errors": %%d, ' ..
    '"timeouts": %%d, "percentiles_us": {%%s}}\\n', summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
    table.concat(out, ", ")))
end
"""

CDF_POINTS = (*PERCENTILES, 10, 20, 30, 40, 60, 70, 80, 85, 97, 98, 99.5, 99.99)


def wrk(url_path: str, port: int, template: str, entities: int, connections: int, seconds: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        percentiles = ", ".join(str(p) for p in sorted(set(CDF_POINTS)))
        f.write(
            WRK_SCRIPT
            % {
                "template": template,
                "entities": entities,
                "seed": connections,
                "path": url_path,
                "percentiles": percentiles,
            }
        )
        script = f.name
    try:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script]
        proc = subprocess.run([*cmd, f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=False)
    finally:
        os.unlink(script)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {proc.stderr.strip() or proc.stdout.strip()}")
    result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def check_request(port: int, url_path: str, template: str) -> None:
    """One request for entity 12345 must answer 200 with that entity's f10 text (it starts with its id)."""
    import urllib.request

    body = (template % 12345).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{url_path}", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = response.read()
    if b"00012345" not in answer:
        raise RuntimeError(f"the server answered without entity 12345's features: {answer[:300]!r}")


def http_runs(
    server: list[str], env: dict[str, str] | None, url_path: str, template: str, args: argparse.Namespace, port: int
) -> dict[str, Any]:
    """Start a server, check one request, run wrk at each concurrency; CPU per request from /proc."""
    with tempfile.TemporaryFile() as log:
        return _http_runs(server, env, log, url_path, template, args, port)


def _http_runs(
    server: list[str],
    env: dict[str, str] | None,
    log: Any,
    url_path: str,
    template: str,
    args: argparse.Namespace,
    port: int,
) -> dict[str, Any]:
    proc = subprocess.Popen(server, stdout=log, stderr=log, env=env, start_new_session=True)
    results: dict[str, Any] = {}
    try:
        wait_port(port, proc)
        check_request(port, url_path, template)
        wrk(url_path, port, template, args.entities, 8, 2)  # warm up
        for c in CONCURRENCY:
            cpu0 = tree_cpu_seconds(proc.pid)
            r = wrk(url_path, port, template, args.entities, c, args.duration)
            r["server_cpu_us_per_request"] = (tree_cpu_seconds(proc.pid) - cpu0) / max(r["requests"], 1) * 1e6
            results[str(c)] = r
    except Exception as exc:
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
        results["error"] = f"{exc}; server log: {' | '.join(tail)}"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    return results


def lakefeed_http(args: argparse.Namespace, work: Path, kind: str) -> dict[str, Any]:
    port = free_port()
    lakefeed_cli = str(Path(sys.executable).with_name("lakefeed"))
    server = [lakefeed_cli, "serve", "--home", str(work / "home"), "--online", online_target(kind, work)]
    server += ["--port", str(port)]
    return http_runs(server, None, f"/features/{VIEW}", '{"entity": {"user_id": %d}}', args, port)


def feast_http(args: argparse.Namespace, python: Path, data: Path, repo: Path, kind: str) -> dict[str, Any]:
    port = free_port()
    server = [str(python), str(HERE / "feast_runner.py"), "--data", str(data), "--repo", str(repo / kind)]
    server += ["--online", kind, "--redis", f"127.0.0.1:6379,db={FEAST_REDIS_DB}", "serve", "--port", str(port)]
    import feast_runner  # stdlib only at import: the Feast side's interface

    marker = 987654321
    template = feast_runner.request_body(marker).decode().replace(str(marker), "%d")
    env = dict(os.environ, PATH=f"{python.parent}:{os.environ['PATH']}")
    return http_runs(server, env, feast_runner.SERVE_PATH, template, args, port)


def compare_pit(work: Path, repo: Path) -> dict[str, Any]:
    """Where both answers have a row for the same (user_id, event_ts): do their features agree?"""
    import pyarrow.parquet as pq

    ours = pq.read_table(work / "pit_result.parquet").to_pandas()
    path = repo / "sqlite" / "pit_result.parquet"
    if not path.exists():
        return {}
    theirs = pq.read_table(path).to_pandas()
    merged = ours.merge(theirs, on=["user_id", "event_ts"], suffixes=("", "_feast"))
    both = merged.dropna(subset=["f0", "f0_feast"])
    return {
        "common_rows": len(merged),
        "both_with_features": len(both),
        "equal_f0": int((both["f0"] == both["f0_feast"]).sum()),
        "only_lakefeed_has_features": int(merged["f0"].notna().sum() - merged["f0_feast"].notna().sum()),
    }


# -- main ---------------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--spine", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per concurrency")
    parser.add_argument(
        "--n",
        type=int,
        default=5_000,
        help="timed in-process calls (1 entity; half as many for 100: enough samples for a stable p99)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="fresh-process runs per phase (medians reported)")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--only", default="", help="comma list of: materialize,lookup,http,pit (default: all)")
    parser.add_argument("--out", default=str(ROOT / "bench-data" / "feature_store-results.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "feature_store_latency.png"))
    # a phase run in a child process
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--data")
    parser.add_argument("--work")
    parser.add_argument("--online", choices=["sqlite", "redis"])
    parser.add_argument("--lookup-entities", type=int, default=1)
    args = parser.parse_args()
    if args.phase:
        run_phase(args)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the HTTP part: apt-get install wrk")
    only = set(filter(None, args.only.split(","))) or {"materialize", "lookup", "http", "pit"}
    data = generate(args.entities, args.spine)
    work = data / "lakefeed"
    repo = data / "feast"
    work.mkdir(exist_ok=True)
    results: dict[str, Any] = {"meta": {"entities": args.entities, "spine": args.spine, "machine": machine()}}

    print("lakefeed: building the feature group (one insert of the history) ...", flush=True)
    results["lakefeed_build"] = lakefeed(args, data, work, "build")
    if "error" in results["lakefeed_build"]:
        raise SystemExit(f"lakefeed build failed: {results['lakefeed_build']['error']}")
    python = None
    if not args.skip_feast:
        print("Feast: preparing its environment (bench-envs/feast, once) ...", flush=True)
        import feast_runner

        if feast_runner.TTL_DAYS != TTL_DAYS:
            raise SystemExit("feast_runner.TTL_DAYS must equal TTL_DAYS: both stores get the same feature view")
        python = feast_runner.ensure_env(ROOT / "bench-envs" / "feast")
        results["meta"]["feast"] = feast_runner.FEAST_SPEC
    for kind in ("sqlite", "redis"):
        ours: dict[str, Any] = results.setdefault(f"lakefeed-{kind}", {})
        print(f"lakefeed-{kind}: materialize, lookups, HTTP ...", flush=True)
        ours["materialize"] = repeated(
            args.repeat, lambda kind=kind: lakefeed(args, data, work, "materialize", "--online", kind)
        )
        results[f"bare-{kind}"] = {
            "materialize": repeated(args.repeat, lambda kind=kind: lakefeed(args, data, work, "bare", "--online", kind))
        }
        if "lookup" in only:
            for entities, n in ((1, args.n), (100, args.n // 2)):
                lookup = ["--online", kind, "--n", str(n), "--lookup-entities", str(entities)]
                ours[f"lookup_{entities}"] = repeated(
                    args.repeat, lambda lookup=lookup: lakefeed(args, data, work, "lookup", *lookup)
                )
        if "http" in only:
            ours["http"] = lakefeed_http(args, work, kind)
        if python is None:
            continue
        theirs: dict[str, Any] = results.setdefault(f"feast-{kind}", {})
        print(f"feast-{kind}: setup, materialize, lookups, HTTP ...", flush=True)
        setup = feast(args, python, data, repo, kind, "setup")
        if "error" in setup:
            theirs["error"] = setup["error"]
            continue
        theirs["materialize"] = feast(args, python, data, repo, kind, "materialize")
        if "lookup" in only:
            for entities, n in ((1, args.n), (100, args.n // 2)):
                lookup = ["lookup", "--entities", str(entities), "--n", str(n), "--warmup", str(n // 10)]
                theirs[f"lookup_{entities}"] = repeated(
                    args.repeat, lambda kind=kind, lookup=lookup: feast(args, python, data, repo, kind, *lookup)
                )
        if "http" in only:
            theirs["http"] = feast_http(args, python, data, repo, kind)
    if "pit" in only:
        print("point-in-time joins ...", flush=True)
        results["lakefeed"] = {"pit": repeated(args.repeat, lambda: lakefeed(args, data, work, "pit"))}
        if python is not None:
            results["feast"] = {"pit": repeated(args.repeat, lambda: feast(args, python, data, repo, "sqlite", "pit"))}
            results["pit_agreement"] = compare_pit(work, repo)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results))
    report(results)
    plotted = plot(results, Path(args.plot))
    print(f"\nresults: {args.out}" + (f"; plot: {args.plot}" if plotted else ""))


if __name__ == "__main__":
    main()
