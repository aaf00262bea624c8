"""The DuckDB side of the point-in-time join: one ``ASOF LEFT JOIN`` per feature group.

DuckDB sees only narrow Arrow tables with fixed column names (no user text reaches the SQL):

* the spine: ``r`` (row number), ``k0 … kN`` (keys), ``t`` (time ticks, ``int64``);
* the history: ``k0 … kN``, ``t``, optionally ``c`` (created time) and ``w`` (write order), and
  ``i``, the row's position in the history as read.

The history is first cut to the rows whose keys some spine row has (a hash semi join), then to
one row per (keys, event time): the greatest (``c``, ``w``, ``i``), nulls lowest. The ``ASOF
LEFT JOIN`` then picks, per spine row, the row with equal keys and the greatest ``t <= spine
t``; the TTL is checked on that row. The answer is the position ``i`` of the winning row per
spine row (null for none), in spine order; the features themselves never go through DuckDB, so
their Arrow types come back exactly as stored.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakefeed.errors import ConfigError

if TYPE_CHECKING:
    import duckdb

__all__ = ["Match", "connect", "match_rows"]


def default_threads() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - platforms without sched_getaffinity


@contextmanager
def connect(*, memory_limit: str, threads: int | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory DuckDB connection that may spill to a temporary folder; closed after use."""
    import duckdb

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        msg = f"threads must be a positive int or None (all CPUs), got {threads!r}"
        raise ConfigError(msg)
    with tempfile.TemporaryDirectory(prefix="lakefeed-pit-") as spill:
        config: dict[str, str | bool | int | float | list[str]] = {
            "threads": threads or default_threads(),
            "memory_limit": memory_limit,
            "temp_directory": spill,
            "preserve_insertion_order": False,
        }
        try:
            con = duckdb.connect(":memory:", config=config)
        except duckdb.Error as exc:
            msg = f"memory_limit={memory_limit!r} is not accepted by DuckDB ({exc}); give a size such as '2GB'"
            raise ConfigError(msg) from exc
        try:
            con.execute("SET enable_progress_bar = false")
            yield con
        finally:
            con.close()


class Match:
    """The winning history row per spine row, in spine order."""

    def __init__(self, rows: pa.Array[Any], candidates: int) -> None:
        self.rows = rows
        """Position of the winning history row per spine row (``int64``, null where none qualifies)."""
        self.candidates = candidates
        """Spine rows that found a row before the TTL was checked."""

    @property
    def matched(self) -> int:
        """Spine rows that got a feature row."""
        return len(self.rows) - self.rows.null_count


def _query(n_keys: int, *, created: bool, write_order: bool, ttl: int | None) -> str:
    keys = [f"k{j}" for j in range(n_keys)]
    order = [*(["c DESC NULLS LAST"] if created else []), *(["w DESC NULLS LAST"] if write_order else []), "i DESC"]
    on = " AND ".join([*(f"s.{k} = h.{k}" for k in keys), "s.t >= h.t"])
    # HUGEINT: the difference of two int64 ticks may not fit int64.
    row = "h.i" if ttl is None else f"CASE WHEN CAST(s.t AS HUGEINT) - h.t < CAST({int(ttl)} AS HUGEINT) THEN h.i END"
    if keys:
        # Only history rows whose keys some spine row has can win: a hash semi join drops the
        # others before the window and the ASOF join sort them (a spine that names a tenth of
        # the entities: a tenth of the rows to sort). Equality also drops null keys.
        kept = " AND ".join(f"hist.{k} = sk.{k}" for k in keys)
        source = (
            f"hist SEMI JOIN (SELECT DISTINCT {', '.join(keys)} FROM spine) AS sk ON {kept} WHERE hist.t IS NOT NULL"
        )
    else:
        source = "hist WHERE t IS NOT NULL"
    return (
        f"WITH h AS (SELECT {', '.join([*(f'hist.{k}' for k in keys), 'hist.t', 'hist.i'])} FROM {source} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join([*keys, 't'])} ORDER BY {', '.join(order)}) = 1) "
        f"SELECT s.r AS r, {row} AS i, h.i AS candidate FROM spine AS s ASOF LEFT JOIN h ON {on} ORDER BY s.r"
    )


def match_rows(
    con: duckdb.DuckDBPyConnection,
    spine: pa.Table,
    hist: pa.Table,
    *,
    n_keys: int,
    ttl: int | None,
    group: str,
    memory_limit: str,
) -> Match:
    """Run the join of one feature group; ``spine`` and ``hist`` have the narrow layout above."""
    import duckdb

    query = _query(n_keys, created="c" in hist.column_names, write_order="w" in hist.column_names, ttl=ttl)
    con.register("spine", spine)
    con.register("hist", hist)
    try:
        result = con.sql(query).to_arrow_table()
    except duckdb.OutOfMemoryException as exc:
        msg = (
            f"the point-in-time join of feature group {group!r} ({hist.num_rows} history rows, "
            f"{spine.num_rows} spine rows) needs more than memory_limit={memory_limit!r}; raise memory_limit"
        )
        raise ConfigError(msg) from exc
    finally:
        con.unregister("spine")
        con.unregister("hist")
    if result.num_rows != spine.num_rows:  # pragma: no cover - an ASOF LEFT JOIN keeps every left row once
        msg = f"internal error: the join of feature group {group!r} gave {result.num_rows} rows for {spine.num_rows}"
        raise RuntimeError(msg)
    candidate = result.column("candidate")
    rows = result.column("i").combine_chunks() if result.num_rows else pa.array([], pa.int64())
    return Match(rows.cast(pa.int64()), len(candidate) - candidate.null_count)
