"""Feast side of the feature-store benchmark: runs inside the Feast virtual environment.

``benchmarks/feature_store.py`` (the orchestrator, in the project's ``.venv``) imports this module
only for its constants and stdlib helpers (``ensure_env``, ``request_body``, ``SERVE_PATH``), so the
top level imports nothing but the standard library. It then runs this file under the Feast
environment's Python, one measurement per process, and reads the JSON object printed as the last
line of stdout (Feast's own chatter is sent to stderr)::

    python feast_runner.py --data DATA --repo REPO --online {sqlite,redis} [--redis HOST:PORT,db=N] COMMAND

Commands:

- ``setup``: write ``REPO/feature_store.yaml`` (local provider, file registry, file offline store,
  SQLite or Redis online store) and apply the entity ``user_id``, the ``FileSource`` over
  ``DATA/history.parquet``, the feature view ``user_stats`` (ttl ``TTL_DAYS``, ``f0..f10``) and the
  feature service ``user_stats_all``.
- ``materialize``: empty the online store, then ``store.materialize`` over all of history.
- ``lookup --entities K --n N --warmup W``: in-process ``get_online_features`` latency.
- ``pit``: ``get_historical_features(DATA/spine.parquet).to_df()``; the answer goes to
  ``REPO/pit_result.parquet``. Feast's file (Dask) offline store drops a spine row whose id is in
  history but whose one candidate falls outside [ts - ttl, ts], and keeps unknown ids with nulls,
  so ``rows_out`` is usually well below ``rows_in``.
- ``serve --port P``: exec ``feast serve`` (HTTP, one gunicorn worker) in the foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from page_cache import warm  # this script's folder is first on sys.path
from peak_memory import peak_rss_bytes

FEAST_SPEC = "feast[redis]==0.67.0"
# Versions Feast's resolver picked with FEAST_SPEC when it was verified; pinned so reruns match.
FEAST_PINS = ("pandas==2.3.3", "pyarrow==26.0.1", "numpy==2.4.6", "dask==2026.8.0")
FEATURES = [f"f{i}" for i in range(11)]
VIEW = "user_stats"
ENTITY = "user_id"
SERVICE = "user_stats_all"
PROJECT = "lakefeed_bench"
TTL_DAYS = 3650  # as in feature_store.py: online reads made today find every row
SERVE_PATH = "/get-online-features"
MARKER = ".lakefeed-feast-spec"


def ensure_env(env_dir: Path) -> Path:
    """Create (or reuse) the Feast virtual environment in ``env_dir``; return its Python."""
    python = env_dir / "bin" / "python"
    wanted = "\n".join((FEAST_SPEC, *FEAST_PINS)) + "\n"
    marker = env_dir / MARKER
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if env_dir.exists():
        shutil.rmtree(env_dir)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", FEAST_SPEC, *FEAST_PINS],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install {FEAST_SPEC} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    marker.write_text(wanted)
    return python


def request_body(user_id: int) -> bytes:
    """JSON body for ``POST SERVE_PATH`` asking for all features of one entity."""
    body = {"features": [f"{VIEW}:{f}" for f in FEATURES], "entities": {ENTITY: [user_id]}}
    return json.dumps(body).encode()


def response_values(payload: bytes) -> dict[str, Any]:
    """Feature name -> value of the first entity in a ``SERVE_PATH`` response (entity key included)."""
    answer = json.loads(payload)
    names = answer["metadata"]["feature_names"]
    return {name: result["values"][0] for name, result in zip(names, answer["results"], strict=True)}


def parse_redis(target: str) -> tuple[str, int, int]:
    """``"host:port,db=N"`` -> (host, port, db)."""
    address, *options = target.split(",")
    host, _, port = address.partition(":")
    db = 0
    for option in options:
        key, _, value = option.partition("=")
        if key.strip() == "db":
            db = int(value)
    return host or "127.0.0.1", int(port or 6379), db


def peak_rss_mib() -> float:
    """Peak resident set size of this process or any waited-for child, in MiB."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return round(max(peak_rss_bytes(), children) / 2**20, 1)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send what Feast prints to stderr, keeping stdout for the result line."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last line of stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def write_config(args: argparse.Namespace) -> None:
    """Write ``feature_store.yaml`` (absolute paths: Feast resolves relative ones from the cwd)."""
    repo: Path = args.repo
    if args.online == "redis":
        online = f"  type: redis\n  connection_string: {json.dumps(args.redis)}\n"
    else:
        online = f"  type: sqlite\n  path: {json.dumps(str(repo / 'online.db'))}\n"
    (repo / "feature_store.yaml").write_text(
        f"project: {PROJECT}\n"
        "provider: local\n"
        "registry:\n"
        "  registry_type: file\n"
        f"  path: {json.dumps(str(repo / 'registry.db'))}\n"
        "  cache_ttl_seconds: 60\n"
        "offline_store:\n"
        "  type: file\n"
        f"online_store:\n{online}"
        "entity_key_serialization_version: 3\n"
    )


def open_store(args: argparse.Namespace) -> Any:
    """The ``FeatureStore`` of ``--repo``, with the store modules Feast loads lazily imported.

    Every contender's libraries are imported before its clock starts (import time is per
    process, not per call): here Feast's file offline store and its online stores.
    """
    import importlib

    from feast import FeatureStore

    stores = ("offline_stores.file", "online_stores.sqlite", "online_stores.redis")
    for module in (f"feast.infra.{store}" for store in stores):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    return FeatureStore(repo_path=str(args.repo))


def feature_refs() -> list[str]:
    return [f"{VIEW}:{f}" for f in FEATURES]


def cmd_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Write the repository and apply the definitions (what ``feast apply`` does)."""
    from datetime import timedelta

    import feast
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    args.repo.mkdir(parents=True, exist_ok=True)
    for stale in ("registry.db", "online.db"):
        (args.repo / stale).unlink(missing_ok=True)
    write_config(args)
    types = {**{f: Float64 for f in FEATURES[:6]}, "f6": Int64, "f7": Int64, "f8": String, "f9": String, "f10": String}
    entity = Entity(name=ENTITY, join_keys=[ENTITY], value_type=ValueType.INT64)
    source = FileSource(
        name="history",
        path=str((args.data / "history.parquet").resolve()),
        timestamp_field="event_ts",
        created_timestamp_column="created_ts",
    )
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=timedelta(days=TTL_DAYS),
        schema=[Field(name=ENTITY, dtype=Int64), *(Field(name=f, dtype=types[f]) for f in FEATURES)],
        source=source,
        online=True,
    )
    service = FeatureService(name=SERVICE, features=[view])
    with quiet_stdout():
        open_store(args).apply([entity, source, view, service])
    return {"ok": True, "feast_version": feast.__version__, "online": args.online}


def empty_online_store(args: argparse.Namespace) -> None:
    """Make a rerun start from an empty online store: FLUSHDB the Redis db, or empty the SQLite tables."""
    if args.online == "redis":
        import redis

        host, port, db = parse_redis(args.redis)
        redis.Redis(host=host, port=port, db=db).flushdb()
        return
    import sqlite3

    path = args.repo / "online.db"
    if not path.exists():
        return
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')
        conn.commit()
        conn.execute("VACUUM")


def cmd_materialize(args: argparse.Namespace) -> dict[str, Any]:
    """Load all of history into the online store."""
    from datetime import timedelta

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ts = pq.read_table(args.data / "history.parquet", columns=["event_ts"]).column("event_ts")
    bounds = pc.min_max(ts)
    start = bounds["min"].as_py() - timedelta(seconds=1)
    end = bounds["max"].as_py() + timedelta(seconds=1)
    store = open_store(args)
    empty_online_store(args)
    warm([args.data / "history.parquet"])
    with quiet_stdout():
        began = time.perf_counter()
        store.materialize(start_date=start, end_date=end)
        seconds = time.perf_counter() - began
    rows = len(ts)
    return {
        "rows": rows,
        "seconds": round(seconds, 4),
        "rows_per_s": round(rows / seconds, 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cmd_lookup(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``get_online_features`` for ``--entities`` random existing ids, ``--n`` times."""
    import pyarrow.parquet as pq

    history = pq.read_table(args.data / "history.parquet", columns=[ENTITY, "f0", "f10"])
    ids = history.column(ENTITY).to_pylist()
    rng = random.Random(0)
    store = open_store(args)
    refs = feature_refs()

    def call() -> dict[str, list[Any]]:
        rows = [{ENTITY: uid} for uid in rng.choices(ids, k=args.entities)]
        answer: dict[str, list[Any]] = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        return answer

    with quiet_stdout():
        for _ in range(args.warmup):
            call()
        samples = []
        for _ in range(args.n):
            began = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - began) / 1e6)
        probe = rng.randrange(len(ids))
        got = store.get_online_features(features=refs, entity_rows=[{ENTITY: ids[probe]}]).to_dict()
    want = {"f0": history.column("f0")[probe].as_py(), "f10": history.column("f10")[probe].as_py()}
    if got[ENTITY] != [ids[probe]] or got["f0"] != [want["f0"]] or got["f10"] != [want["f10"]]:
        raise AssertionError(f"online vector for {ENTITY}={ids[probe]} differs from history: {got} != {want}")
    ordered = sorted(samples)
    return {
        "entities": args.entities,
        "n": args.n,
        "p50_ms": round(percentile(ordered, 50), 4),
        "p90_ms": round(percentile(ordered, 90), 4),
        "p99_ms": round(percentile(ordered, 99), 4),
        "mean_ms": round(sum(samples) / len(samples), 4),
        "samples_ms": [round(s, 4) for s in samples],
        "checked": True,
    }


def cmd_pit(args: argparse.Namespace) -> dict[str, Any]:
    """Point-in-time join of the spine against history through the file offline store."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    spine = pd.read_parquet(args.data / "spine.parquet")
    spine["event_ts"] = pd.to_datetime(spine["event_ts"], utc=True)  # Feast needs tz-aware timestamps
    store = open_store(args)
    warm([args.data / "history.parquet"])
    with quiet_stdout():
        began = time.perf_counter()
        df = store.get_historical_features(entity_df=spine, features=feature_refs()).to_df()
        seconds = time.perf_counter() - began
    result = {
        "seconds": round(seconds, 4),
        "peak_rss_mib": peak_rss_mib(),
        "rows_in": len(spine),
        "rows_out": len(df),
        "rows_with_features": int(df["f0"].notna().sum()),
    }
    out = df[[ENTITY, "event_ts", *FEATURES]].sort_values([ENTITY, "event_ts"], kind="stable")
    # back to the input's types: Feast hands out nanoseconds, and int features as float (NaN for misses)
    out["event_ts"] = out["event_ts"].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    out = out.astype({"f6": "Int64", "f7": "Int64"})
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), args.repo / "pit_result.parquet")
    return result


def cmd_serve(args: argparse.Namespace) -> None:
    """Replace this process with ``feast serve`` (HTTP, one worker, no worker recycling, no access log)."""
    feast_cli = Path(sys.executable).parent / "feast"
    argv = [str(feast_cli), "--chdir", str(args.repo), "--log-level", "WARNING", "serve"]
    # gunicorn recycles a worker every --max-requests requests (default 1000): 0 turns that off
    argv += ["--host", "127.0.0.1", "--port", str(args.port), "--workers", "1", "--no-access-log"]
    argv += ["--max-requests", "0"]
    sys.stdout.flush()
    os.execv(argv[0], argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with history.parquet and spine.parquet")
    parser.add_argument("--repo", type=Path, required=True, help="Feast repository folder (created by setup)")
    parser.add_argument("--online", choices=["sqlite", "redis"], required=True)
    parser.add_argument("--redis", default="127.0.0.1:6379,db=15", help="Redis connection string (host:port,db=N)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup")
    commands.add_parser("materialize")
    lookup = commands.add_parser("lookup")
    lookup.add_argument("--entities", type=int, default=1)
    lookup.add_argument("--n", type=int, default=1000)
    lookup.add_argument("--warmup", type=int, default=100)
    commands.add_parser("pit")
    serve = commands.add_parser("serve")
    serve.add_argument("--port", type=int, default=6566)
    args = parser.parse_args(argv)
    args.data = args.data.resolve()
    args.repo = args.repo.resolve()
    if args.command == "serve":
        cmd_serve(args)
        return
    run = {"setup": cmd_setup, "materialize": cmd_materialize, "lookup": cmd_lookup, "pit": cmd_pit}
    emit(run[args.command](args))


if __name__ == "__main__":
    main()
