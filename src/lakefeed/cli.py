"""The ``lakefeed`` command: a quickstart, and a look at tables from the shell."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from lakefeed.errors import ConfigError, LakefeedError, MissingDependencyError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.loader import Loader
    from lakefeed.store import FeatureStore
    from lakefeed.tables import Table

app = typer.Typer(help="lakefeed: lakehouse tables for machine learning.", no_args_is_help=True, add_completion=False)
tables_app = typer.Typer(help="List and inspect tables.", no_args_is_help=True)
app.add_typer(tables_app, name="tables")
console = Console()

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Embedded warehouse folder (default: $LAKEFEED_HOME or ~/.lakefeed).")
]


def _open(name: str, home: Path | None) -> Table:
    from lakefeed.tables import Warehouse, open_table

    if "://" in name or "/" in name:
        return open_table(name)
    return Warehouse(home).table(name)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _arrow_preview(table: pa.Table, title: str | None) -> RichTable:
    out = RichTable(title=title, show_lines=False)
    for name in table.column_names:
        out.add_column(name)
    for row in table.to_pylist():
        out.add_row(*[_cell(v) for v in row.values()])
    return out


def _cell(value: object) -> str:
    if value is None:
        return "∅"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def synthetic_clicks(rows: int, *, seed: int = 0) -> pa.Table:
    """A synthetic click-through table: ids, time, categories, 8 float features and a label.

    Example:
        >>> synthetic_clicks(5).num_rows
        5
    """
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-01-01T00:00:00", "us")
    ts = start + rng.integers(0, 7 * 24 * 3600, rows).astype("timedelta64[s]")
    features = rng.standard_normal((rows, 8), dtype=np.float32)
    logit = features[:, 0] * 1.5 - features[:, 1] + 0.5 * features[:, 2] - 2.0
    clicked = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    countries = np.array(["US", "DE", "FR", "BR", "IN", "JP"])
    devices = np.array(["ios", "android", "web"])
    columns: dict[str, pa.Array[Any]] = {
        "event_id": pa.array(np.arange(rows, dtype=np.int64)),
        "user_id": pa.array(rng.integers(0, max(rows // 20, 1), rows)),
        "item_id": pa.array(rng.integers(0, 50_000, rows)),
        "ts": pa.array(ts, pa.timestamp("us")),
        "country": pa.array(countries[rng.integers(0, len(countries), rows)]),
        "device": pa.array(devices[rng.integers(0, len(devices), rows)]),
        "price": pa.array(np.round(rng.gamma(2.0, 10.0, rows), 2).astype(np.float32)),
    }
    for j in range(8):
        columns[f"f{j}"] = pa.array(features[:, j])
    columns["clicked"] = pa.array(clicked)
    return pa.table(columns)


@app.command()
def quickstart(
    home: HomeOption = None,
    rows: Annotated[int, typer.Option(help="Rows in the synthetic click table.", min=1000)] = 1_000_000,
) -> None:
    """Build a click-through table in an embedded warehouse, change it, time-travel and scan it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    import lakefeed as lf

    t0 = time.perf_counter()
    wh = lf.Warehouse(home)
    name = "quickstart.clicks"
    if wh.table_exists(name):
        wh.drop_table(name, purge=True)
    data = synthetic_clicks(rows)
    console.print(f"[bold]1.[/] generated {rows:,} click events ({_human(data.nbytes)} in memory)")
    table = wh.create_table(name, data, primary_key=["event_id"], partition_by=["day(ts)"])
    first = table.snapshot_id
    console.print(f"[bold]2.[/] created Iceberg table [cyan]{name}[/] partitioned by day(ts), key event_id")
    console.print(f"   catalog  {wh}\n   files    {table.location}")

    changed = data.slice(0, 1_000)
    changed = changed.set_column(
        changed.schema.get_field_index("clicked"),
        "clicked",
        pc.subtract(pa.scalar(1, pa.int8()), changed.column("clicked")),
    )
    table.upsert(changed)
    console.print("[bold]3.[/] upserted 1,000 events (labels flipped) in one commit")
    table.delete(lf.col("device") == "web")
    console.print("[bold]4.[/] deleted every event from device 'web' in one commit")

    snaps = RichTable(title="snapshots")
    for col in ("snapshot id", "committed (UTC)", "operation"):
        snaps.add_column(col)
    for s in table.snapshots():
        snaps.add_row(str(s.snapshot_id), s.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], s.operation or "")
    console.print(snaps)

    expr = (lf.col("country").isin(["US", "DE"])) & (lf.col("price") > 30.0) & (lf.col("clicked") == 1)
    scan = table.scan(columns=["event_id", "user_id", "country", "price", "clicked"], filter=expr)
    t_scan = time.perf_counter()
    result = scan.to_arrow()
    scan_s = time.perf_counter() - t_scan
    console.print(f"[bold]5.[/] scan where {expr}: {result.num_rows:,} rows in {scan_s:.2f} s")
    console.print(_arrow_preview(result.slice(0, 5), "first rows"))
    now_rows = table.scan().count()
    then_rows = table.scan(snapshot=first).count()
    console.print(f"[bold]6.[/] time travel: {then_rows:,} rows at the first snapshot, {now_rows:,} now")
    tasks = table.scan().tasks(target_bytes=16 << 20)
    console.print(
        f"[bold]7.[/] planned {len(tasks)} read tasks of ~16 MiB decoded each "
        f"(estimates {_human(min(t.estimated_bytes for t in tasks))}…{_human(max(t.estimated_bytes for t in tasks))})"
    )
    features = [f"f{j}" for j in range(8)]
    loader = lf.Loader(table, batch_size=1024, features=features, label="clicked", seed=0)
    _train(loader, len(features), "[bold]8.[/]", "f0..f7")
    _feature_store_steps(home, data)
    console.print(
        f"\ndone in {time.perf_counter() - t0:.1f} s. Try: [green]lakefeed tables show {name}[/] or "
        f'[green]lakefeed scan {name} --filter "clicked == 1 and price > 50" --limit 5[/]'
    )


def _train(loader: Loader, width: int, step: str, what: str, epochs: int = 2) -> None:
    """A logistic regression learns the click label through ``loader`` (steps 8 and 10)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        console.print(f"{step} training skipped: torch is not installed ([green]pip install 'lakefeed[torch]'[/])")
        return
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(width, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    report = max(1, len(loader) // 4)
    console.print(f"{step} training a logistic regression on {what} -> clicked, {epochs} shuffled epochs:")
    rows, seconds, window = 0, 0.0, []
    for epoch in range(epochs):
        start = time.perf_counter()
        for i, batch in enumerate(loader.torch(), start=1):
            logits = model(batch["features"]).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"].float())
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            window.append(float(loss.detach()))
            if i % report == 0 or i == len(loader) or (epoch, i) == (0, 1):
                console.print(f"   epoch {epoch} batch {i:>5,}/{len(loader):,}  loss {sum(window) / len(window):.4f}")
                window = []
        rows += int(loader.stats()["rows"] or 0)
        seconds += time.perf_counter() - start
    console.print(f"   {rows / seconds:,.0f} rows/s through the loader and the model")


def _feature_store_steps(home: Path | None, data: pa.Table) -> None:
    """Steps 9-11: a feature group from the clicks, point-in-time training data, online and HTTP serving."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    import lakefeed as lf

    fs = lf.FeatureStore(home)
    # quickstart can run again: it replaces its own view, dataset and group
    if "quickstart_ctr" in fs.list_feature_views():
        fs.delete_feature_view("quickstart_ctr")
    if "quickstart_ctr_v1" in fs.list_training_datasets():
        fs.delete_training_dataset("quickstart_ctr_v1")
    if "user_daily" in fs.list_feature_groups():
        fs.delete_feature_group("user_daily")
    day = pc.floor_temporal(data.column("ts"), unit="day")
    columns: dict[str, Any] = {
        "user_id": data.column("user_id"),
        "day": day,
        "clicked": pc.cast(data.column("clicked"), pa.int64()),
        "price": data.column("price"),
    }
    daily = (
        pa.table(columns)
        .group_by(["user_id", "day"])
        .aggregate([("clicked", "sum"), ("clicked", "count"), ("price", "mean")])
    )
    # a day's aggregates become known when the day is over: event time = the next midnight
    features: dict[str, Any] = {
        "user_id": daily.column("user_id"),
        "ts": pc.add(daily.column("day"), pa.scalar(86_400_000_000, pa.duration("us"))),
        "clicks_day": daily.column("clicked_sum"),
        "events_day": daily.column("clicked_count"),
        "price_day": pc.cast(daily.column("price_mean"), pa.float64()),
    }
    rows = pa.table(features)
    group = fs.create_feature_group(
        "user_daily",
        keys=["user_id"],
        event_time="ts",
        schema=rows.schema,
        description="per-user daily clicks (quickstart)",
    )
    result = group.insert(rows)
    console.print(
        f"[bold]9.[/] feature group [cyan]user_daily[/]: {result.rows:,} daily rows, "
        f"{result.online_rows:,} users written online"
    )
    view = fs.create_feature_view("quickstart_ctr", ["user_daily.*"])
    rng = np.random.default_rng(1)
    pick = np.sort(rng.choice(data.num_rows, size=min(50_000, data.num_rows), replace=False))
    spine = data.select(["user_id", "ts", "clicked"]).take(pick)
    t_join = time.perf_counter()
    train = view.training_data(spine, label="clicked")
    found = train.num_rows - view.last_report["user_daily"]
    console.print(
        f"[bold]10.[/] point-in-time training data: {train.num_rows:,} spine rows in "
        f"{time.perf_counter() - t_join:.2f} s, {found:,} with features as of their own time (no leakage)"
    )
    clicks_column: Any = train.column("clicks_day")
    clicks = pc.fill_null(clicks_column, 0).to_numpy()
    label = train.column("clicked").to_numpy()
    rate = [float(label[clicks == c].mean()) for c in (0, 1) if (clicks == c).any()]
    console.print(f"    click rate by the user's clicks the day before: {', '.join(f'{r:.3f}' for r in rate)}")
    dataset = view.create_training_dataset(spine, name="quickstart_ctr_v1", label="clicked")
    console.print(
        f"    saved as training dataset [cyan]quickstart_ctr_v1[/] (pinned to snapshot "
        f"{dataset.spec.snapshots['user_daily']} of user_daily: re-reading it later gives the same rows)"
    )
    inputs = ["clicks_day", "events_day", "price_day"]
    loader = dataset.loader(batch_size=1024, features=inputs, label="clicked", fill_null=0.0, seed=0)
    _train(loader, len(inputs), "   ", "the point-in-time features")
    fs.materialize("user_daily")
    user = int(rows.column("user_id")[0].as_py())
    vector = view.get_feature_vector({"user_id": user}, now=_last_day(rows))
    console.print(f"[bold]11.[/] online vector of user {user}: {vector}")
    _serve_one(fs, user)
    fs.close()


def _last_day(rows: pa.Table) -> Any:
    import pyarrow.compute as pc

    return pc.max(rows.column("ts")).as_py()


def _serve_one(fs: Any, user: int) -> None:
    """Serve the view over HTTP on a free local port for one request, if the serving extra is installed."""
    import importlib.util

    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("orjson") is None:
        console.print("    HTTP serving skipped: [green]pip install 'lakefeed[serve]'[/] for `lakefeed serve`")
        return
    import json
    import socket
    import threading
    import urllib.request

    import uvicorn

    from lakefeed.serving import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # log_config=None: uvicorn must not reconfigure logging (to streams that may be gone later)
    config = uvicorn.Config(
        create_app(fs), host="127.0.0.1", port=port, log_config=None, lifespan="off", http=_http_protocol()
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.perf_counter() + 20
        while not server.started and thread.is_alive() and time.perf_counter() < deadline:
            time.sleep(0.02)
        if not server.started:
            console.print("    HTTP serving skipped: the local server did not start")
            return
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/features/quickstart_ctr",
            data=json.dumps({"entity": {"user_id": user}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
        console.print(f"    POST http://127.0.0.1:{port}/features/quickstart_ctr -> {body}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@tables_app.command("list")
def tables_list(home: HomeOption = None) -> None:
    """List the warehouse's tables."""
    from lakefeed.tables import Warehouse

    wh = Warehouse(home)
    names = wh.list_tables()
    if not names:
        console.print(f"no tables in {wh}")
        return
    out = RichTable(title=f"tables in {wh.home or wh}")
    for col in ("table", "format", "snapshot", "rows"):
        out.add_column(col)
    for name in names:
        t = wh.table(name)
        out.add_row(name, t.format, str(t.snapshot_id), f"{t.stats().num_rows:,}")
    console.print(out)


@tables_app.command("show")
def tables_show(name: str, home: HomeOption = None) -> None:
    """Schema, snapshots, files, rows and bytes of a table (a warehouse name or a URI)."""
    table = _open(name, home)
    stats = table.stats()
    console.print(f"[bold]{table.name}[/] ({table.format}) at {table.location}")
    console.print(
        f"primary key: {list(table.primary_key) or 'none'}   partitioned by: {list(table.partition_by) or 'nothing'}"
    )
    schema = RichTable(title="schema")
    schema.add_column("column")
    schema.add_column("type")
    schema.add_column("nullable")
    for f in table.schema:
        schema.add_row(f.name, str(f.type), "yes" if f.nullable else "no")
    console.print(schema)
    rows = f"{stats.num_rows:,}" + ("" if stats.exact_rows else " (before merges/deletes)")
    console.print(
        f"rows: {rows}   files: {stats.num_files}   on storage: {_human(stats.file_bytes)}   "
        f"in memory (estimated): {_human(stats.estimated_bytes)}"
    )
    snaps = table.snapshots()
    if snaps:
        out = RichTable(title=f"snapshots ({len(snaps)}, newest last)")
        for col in ("snapshot id", "committed (UTC)", "operation"):
            out.add_column(col)
        for s in snaps[-10:]:
            out.add_row(str(s.snapshot_id), s.timestamp.strftime("%Y-%m-%d %H:%M:%S"), s.operation or "")
        console.print(out)


@app.command()
def scan(
    name: str,
    filter: Annotated[str | None, typer.Option("--filter", "-f", help="e.g. \"a > 3 and b in ('x', 'y')\"")] = None,
    columns: Annotated[str | None, typer.Option("--columns", "-c", help="Comma-separated columns.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0)] = 20,
    snapshot: Annotated[int | None, typer.Option(help="Snapshot id to read.")] = None,
    home: HomeOption = None,
) -> None:
    """Print rows of a table, filtered and projected."""
    import pyarrow as pa

    from lakefeed.expr import parse_filter

    table = _open(name, home)
    expr = parse_filter(filter) if filter else None
    cols = [c.strip() for c in columns.split(",")] if columns else None
    s = table.scan(columns=cols, filter=expr, snapshot=snapshot)
    batches: list[pa.RecordBatch] = []
    taken = 0
    for batch in s.to_batches():
        if taken >= limit:
            break
        batches.append(batch.slice(0, limit - taken))
        taken += batches[-1].num_rows
    result = pa.Table.from_batches(batches, schema=s.schema)
    console.print(f"{table.name} at snapshot {s.snapshot_id}: first {result.num_rows} rows", soft_wrap=True)
    console.print(_arrow_preview(result, None))


@app.command()
def serve(
    home: HomeOption = None,
    catalog_uri: Annotated[
        str | None, typer.Option("--catalog-uri", help="Production: SQLAlchemy URL of the catalog and registry.")
    ] = None,
    warehouse: Annotated[str | None, typer.Option(help="With --catalog-uri: where table files go.")] = None,
    online: Annotated[
        str | None, typer.Option(help="Online store: redis://host:port/db or a SQLite path (default: home/online.db).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=0, max=65535)] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="LAKEFEED_API_KEY", help="Require this key in X-API-Key (default: $LAKEFEED_API_KEY)."),
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Refuse larger request bodies with 413.", min=1)] = 1 << 20,
) -> None:
    """Serve feature vectors over HTTP: POST /features/{view}, /health, /metrics, /openapi.json."""
    from lakefeed._utils import import_optional
    from lakefeed.store.feature_store import FeatureStore

    uvicorn = import_optional("uvicorn", extra="serve", purpose="lakefeed serve")
    from lakefeed.serving import create_app

    # an empty $LAKEFEED_API_KEY (a secret that was not filled in) reaches here as None: never
    # serve without the key the deployment meant to set
    if api_key is None and "LAKEFEED_API_KEY" in os.environ:
        api_key = os.environ["LAKEFEED_API_KEY"]
    if api_key is not None and not api_key.strip():
        msg = "the API key is empty (--api-key or LAKEFEED_API_KEY): give a key, or unset both to serve without one"
        raise ConfigError(msg)
    store = FeatureStore(home, catalog_uri=catalog_uri, warehouse=warehouse, online=online)
    server = create_app(store, api_key=api_key, max_body_bytes=max_body_bytes)
    views = store.list_feature_views()
    console.print(f"serving {len(views)} feature view(s) {views} on http://{host}:{port} (OpenAPI at /openapi.json)")
    try:
        uvicorn.run(
            server, host=host, port=port, log_level="warning", access_log=False, lifespan="on", http=_http_protocol()
        )
    finally:
        store.close()


def _http_protocol() -> Any:
    """The ``http=`` for uvicorn: a protocol writing each response at once (uvicorn's pick without httptools)."""
    try:
        from lakefeed.serving.protocol import OneWriteHttpToolsProtocol
    except MissingDependencyError:
        return "auto"
    return OneWriteHttpToolsProtocol


fg_app = typer.Typer(help="Feature groups of a feature store.", no_args_is_help=True)
app.add_typer(fg_app, name="fg")
CatalogOption = Annotated[
    str | None, typer.Option("--catalog-uri", help="Production: SQLAlchemy URL of the catalog and registry.")
]
WarehouseOption = Annotated[str | None, typer.Option(help="With --catalog-uri: where table files go.")]
OnlineOption = Annotated[
    str | None, typer.Option(help="Online store: redis://host:port/db or a SQLite path (default: home/online.db).")
]


def _feature_store(
    home: Path | None, catalog_uri: str | None, warehouse: str | None, online: str | None
) -> FeatureStore:
    from lakefeed.store import FeatureStore

    return FeatureStore(home, catalog_uri=catalog_uri, warehouse=warehouse, online=online)


@fg_app.command("list")
def fg_list(
    home: HomeOption = None,
    catalog_uri: CatalogOption = None,
    warehouse: WarehouseOption = None,
    online: OnlineOption = None,
) -> None:
    """List the feature groups with their keys, event time, rows and online state."""
    with _feature_store(home, catalog_uri, warehouse, online) as store:
        out = RichTable(title="feature groups")
        for col in ("group", "keys", "event time", "features", "rows", "online", "materialized"):
            out.add_column(col)
        for name in store.list_feature_groups():
            group = store.feature_group(name)
            spec = group.spec
            rows = group.table.scan().count()
            watermark = f"{store.registry.materialized(name)}/{store.registry.writes(name)}" if spec.online else "-"
            out.add_row(
                name,
                ", ".join(spec.keys),
                spec.event_time,
                str(len(spec.features)),
                f"{rows:,}",
                str(spec.online),
                watermark,
            )
        console.print(out)


@fg_app.command("show")
def fg_show(
    name: str,
    home: HomeOption = None,
    catalog_uri: CatalogOption = None,
    warehouse: WarehouseOption = None,
    online: OnlineOption = None,
) -> None:
    """A feature group's definition, history table and latest rows."""
    with _feature_store(home, catalog_uri, warehouse, online) as store:
        group = store.feature_group(name)
        spec = group.spec
        console.print(f"[bold]{name}[/]  {spec.description}")
        console.print(
            f"keys: {spec.keys}   event time: {spec.event_time}   created time: {spec.created_time}   "
            f"ttl: {spec.ttl}   online: {spec.online}   table: {spec.table} ({spec.source_format})"
        )
        console.print(f"features: {spec.features}")
        console.print(_arrow_preview(group.latest().slice(0, 10), "latest rows (10 at most)"))


@fg_app.command("insert")
def fg_insert(
    name: str,
    path: Annotated[Path, typer.Argument(help="A Parquet or CSV file of rows with the group's columns.")],
    home: HomeOption = None,
    catalog_uri: CatalogOption = None,
    warehouse: WarehouseOption = None,
    online: OnlineOption = None,
) -> None:
    """Insert a Parquet or CSV file into a feature group (offline history and online store)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        msg = f"cannot insert {str(path)!r}: give a .parquet or .csv file"
        raise ConfigError(msg)
    try:
        data = pcsv.read_csv(path) if suffix == ".csv" else pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        msg = f"cannot read {str(path)!r}: {exc}"
        raise ConfigError(msg) from exc
    with _feature_store(home, catalog_uri, warehouse, online) as store:
        result = store.feature_group(name).insert(data)
        console.print(
            f"inserted {result.rows:,} rows into {name} (insert {result.write}, snapshot {result.snapshot_id}); "
            f"{result.online_rows:,} keys updated online"
        )


@app.command()
def materialize(
    group: str,
    home: HomeOption = None,
    catalog_uri: CatalogOption = None,
    warehouse: WarehouseOption = None,
    online: OnlineOption = None,
) -> None:
    """Bring the online store up to date with a feature group's history (incremental, resumable)."""
    with _feature_store(home, catalog_uri, warehouse, online) as store:
        result = store.materialize(group, progress=True)
        console.print(
            f"{group}: {result.rows:,} rows from {result.inserts} insert(s) in {result.seconds:.2f} s "
            f"({result.rows_per_second:,.0f} rows/s); {result.updated:,} keys updated"
        )


@app.command("check-skew")
def check_skew(
    view: str,
    sample: Annotated[int, typer.Option(help="Entities to compare.", min=1)] = 1000,
    home: HomeOption = None,
    catalog_uri: CatalogOption = None,
    warehouse: WarehouseOption = None,
    online: OnlineOption = None,
) -> None:
    """Compare online vectors with an offline point-in-time read at the same instant; exit 1 on mismatches."""
    from lakefeed.store.skew import check_skew as run

    with _feature_store(home, catalog_uri, warehouse, online) as store:
        report = run(store.feature_view(view), sample=sample)
    console.print(
        f"{view}: {report.checked:,} entities compared at {report.at:%Y-%m-%d %H:%M:%S %Z}, "
        f"{len(report.mismatches)} mismatch(es)"
    )
    for m in report.mismatches[:20]:
        console.print(f"  {m.entity} {m.feature}: online {m.online!r}, offline {m.offline!r}")
    if not report.consistent:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: run the CLI, printing lakefeed errors without a traceback."""
    try:
        app()
    except LakefeedError as exc:
        console.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
