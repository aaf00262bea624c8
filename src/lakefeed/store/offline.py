"""Point-in-time joins: leak-free training data from feature histories.

:func:`point_in_time_join` attaches to every row of a *spine* (entity keys, a time, usually a
label) the features each feature group held for those keys at that time. The rule, exactly:

* **Candidates.** For a spine row with time ``ts`` and one :class:`FeatureSource`: the history
  rows whose keys equal the spine row's keys and whose event time is ``<= ts``. A null in any
  spine key or in the spine time matches nothing; history rows with a null key or a null event
  time are never candidates.
* **Winner.** The candidate with the greatest event time. Rows tied on event time are ordered
  by ``created_time`` (greater wins), then by ``write_order`` (greater wins), then by position
  in the source as read (the later row wins). A null created time or write order ranks below
  every value. The created time is only a tie break: it is not compared with ``ts``.
* **TTL.** With a TTL, the winner counts only if ``ts - event_time < ttl``, i.e.
  ``event_time > ts - ttl``: a row exactly ``ttl`` old has expired. Otherwise the spine row gets
  nulls (the report counts it as ``expired``). Every older candidate is older still, so this is
  the same as taking the newest row inside the window ``(ts - ttl, ts]``.
* **Output.** Every spine row comes back exactly once, in the spine's order, with all its
  columns unchanged, followed by each source's features (in source order, under their output
  names, with their Arrow types, made nullable). Where no row qualifies the features are null.
  A winning row whose feature values are null counts as found: nulls are values.

Types:

* Times are Arrow timestamps (any unit, with or without a time zone), dates or integers. Spine
  time and event time are compared as instants after lossless casts only: the coarser
  timestamp unit is widened to the finer (out-of-range values raise :class:`SchemaError`),
  ``date64`` becomes ``date32``, any integer ``int64``, and a date compared with a *naive*
  timestamp is midnight of that day. A time zone-aware time against a naive one (or a date),
  integers against calendar times, or any other type raise :class:`SchemaError` naming both
  columns. Aware timestamps in different zones compare as instants.
* A TTL is a ``timedelta`` for calendar times (any precision; exact at every unit) and an
  ``int`` in the column's own units for integer times.
* Keys are integers (any width, signed or not), strings, binary, booleans or dates, one column
  or several; dictionary-encoded keys are decoded. A spine key must be of the same family as
  the group's key.

The engine is DuckDB: one ``ASOF LEFT JOIN`` per feature group over Arrow data, on a private
connection with a memory limit (spilling to a temporary folder) and one thread per CPU. Only
keys, times and row positions go through DuckDB; the features are gathered with Arrow
``take``. A source is read in two phases over one row order, and only the columns the join
needs: first the join columns (keys, times, write order) of every row, which DuckDB matches
to the spine, giving each spine row the position of its winning row; then the feature
columns, of the winning rows only. For a lakefeed :class:`~lakefeed.Scan` the second phase
reads the same scan tasks as the first, in threads, skips tasks without a winning row and
keeps of each decoded batch only the winning rows, so a wide table is never held whole; a
task that gives the two phases different row counts raises an internal error. In-memory
Arrow is taken from chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from lakefeed.errors import ColumnNotFoundError, ConfigError
from lakefeed.store._pit_gather import History, read_history
from lakefeed.store._pit_sql import Match, connect, match_rows
from lakefeed.store._pit_types import (
    TimeAxis,
    check_key_types,
    check_order_type,
    key_column,
    order_column,
    time_axis,
    time_ticks,
    ttl_ticks,
)
from lakefeed.tables.base import Scan

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "FeatureData",
    "FeatureSource",
    "GroupReport",
    "PointInTimeResult",
    "point_in_time_join",
]

FeatureData: TypeAlias = pa.Table | pa.RecordBatch | pa.RecordBatchReader | Scan
"""What a feature group's history may be: in-memory Arrow, a stream of batches, or a table scan."""

DEFAULT_MEMORY_LIMIT = "2GB"
"""DuckDB's memory limit for one join; beyond it DuckDB spills to a temporary folder."""


def _names(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        msg = f"{what} must be a list of column names, got {value!r}" + (
            f"; write [{value!r}]" if isinstance(value, str) else ""
        )
        raise ConfigError(msg)
    if len(set(value)) != len(value):
        msg = f"{what} names a column twice: {list(value)!r}"
        raise ConfigError(msg)
    return tuple(value)


@dataclass(frozen=True, eq=False)
class FeatureSource:
    """One feature group's history, as :func:`point_in_time_join` reads it.

    Attributes:
        name: The group's name (used in the report, in ``spine_keys`` and in messages).
        data: The history: a ``pyarrow.Table`` or ``RecordBatch``, a ``RecordBatchReader``
            (consumed by the join) or a lakefeed :class:`~lakefeed.Scan` (its snapshot and
            filter are kept; only the columns the join needs are read).
        keys: The entity key columns (one or more; none for a group of global features).
        event_time: The column saying when each feature row became true.
        features: The feature columns to attach; all other columns when None.
        created_time: Breaks ties on event time (greater wins); optional.
        ttl: How long a feature row stays valid: a ``timedelta``, or an ``int`` for integer times.
        write_order: A column giving the write sequence (greater = later), the final tie break
            after created time; without it the later row in the source's order wins.
        output_names: Output column name per feature (default: the feature's own name).

    Example:
        >>> import pyarrow as pa
        >>> history = pa.table({"user_id": [1], "ts": [5], "clicks": [3], "views": [9]})
        >>> src = FeatureSource("user_stats", history, keys=["user_id"], event_time="ts",
        ...                     output_names={"clicks": "user_clicks"})
        >>> src.feature_columns, src.output_name("clicks"), src.output_name("views")
        (('clicks', 'views'), 'user_clicks', 'views')
    """

    name: str
    data: FeatureData
    _: KW_ONLY
    keys: Sequence[str]
    event_time: str
    features: Sequence[str] | None = None
    created_time: str | None = None
    ttl: timedelta | int | None = None
    write_order: str | None = None
    output_names: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            msg = f"a feature source needs a non-empty name, got {self.name!r}"
            raise ConfigError(msg)
        if not isinstance(self.data, (pa.Table, pa.RecordBatch, pa.RecordBatchReader, Scan)):
            msg = (
                f"feature source {self.name!r}: data must be a pyarrow Table, RecordBatch or RecordBatchReader, "
                f"or a lakefeed Scan, got {type(self.data).__name__}; convert it with pa.Table.from_pandas(df)"
            )
            raise ConfigError(msg)
        object.__setattr__(self, "keys", _names(self.keys, f"keys of feature source {self.name!r}"))
        if self.features is not None:
            object.__setattr__(self, "features", _names(self.features, f"features of feature source {self.name!r}"))
        for what in ("event_time", "created_time", "write_order"):
            value = getattr(self, what)
            if not (isinstance(value, str) or (value is None and what != "event_time")):
                msg = f"feature source {self.name!r}: {what} must be a column name, got {value!r}"
                raise ConfigError(msg)
        self._check_ttl()
        schema = self.schema
        missing = [c for c in self.columns if c not in schema.names]
        if missing:
            msg = f"feature source {self.name!r} has no column(s) {missing}; its columns are {schema.names}"
            raise ColumnNotFoundError(msg)
        if self.output_names is not None and not isinstance(self.output_names, Mapping):
            msg = (
                f"feature source {self.name!r}: output_names must map feature -> column name, got {self.output_names!r}"
            )
            raise ConfigError(msg)
        names = dict(self.output_names or {})
        unknown = [f for f in names if f not in self.feature_columns]
        if unknown:
            msg = (
                f"feature source {self.name!r}: output_names renames {unknown}, which are not among its features "
                f"{list(self.feature_columns)}"
            )
            raise ConfigError(msg)
        bad = [v for v in names.values() if not isinstance(v, str) or not v]
        if bad:
            msg = (
                f"feature source {self.name!r}: output_names gives invalid column name(s) {bad}; use non-empty strings"
            )
            raise ConfigError(msg)
        object.__setattr__(self, "output_names", names)
        outputs = [self.output_name(f) for f in self.feature_columns]
        twice = sorted({o for o in outputs if outputs.count(o) > 1})
        if twice:
            msg = f"feature source {self.name!r}: several features write column(s) {twice}; fix output_names"
            raise ConfigError(msg)

    def _check_ttl(self) -> None:
        ttl = self.ttl
        if ttl is None:
            return
        if isinstance(ttl, bool) or not isinstance(ttl, (timedelta, int)):
            msg = f"feature source {self.name!r}: ttl must be a timedelta (or an int for integer times), got {ttl!r}"
            raise ConfigError(msg)
        if (ttl <= timedelta(0)) if isinstance(ttl, timedelta) else (ttl <= 0):
            msg = f"feature source {self.name!r}: ttl must be positive, got {ttl!r}; use ttl=None for no expiry"
            raise ConfigError(msg)

    @property
    def schema(self) -> pa.Schema:
        """The columns ``data`` offers (for a scan, all columns of its table at its snapshot)."""
        if isinstance(self.data, Scan):
            return self.data.plan.table_schema
        return self.data.schema

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The feature columns the join attaches."""
        if self.features is not None:
            return tuple(self.features)
        used = {*self.keys, self.event_time, self.created_time, self.write_order}
        return tuple(n for n in self.schema.names if n not in used)

    @property
    def join_columns(self) -> list[str]:
        """The columns the join matches on (keys, times, write order): read for every row."""
        wanted = [*self.keys, self.event_time, self.created_time, self.write_order]
        return list(dict.fromkeys(c for c in wanted if c is not None))

    @property
    def columns(self) -> list[str]:
        """Every column the join reads from ``data``."""
        return list(dict.fromkeys([*self.join_columns, *self.feature_columns]))

    def output_name(self, feature: str) -> str:
        """The output column of ``feature``."""
        return (self.output_names or {}).get(feature, feature)


@dataclass(frozen=True)
class GroupReport:
    """How one feature group did in a point-in-time join.

    Attributes:
        name: The feature group.
        spine_rows: Rows in the spine.
        matched: Spine rows that got a feature row (whatever its values, nulls included).
        without_features: Spine rows left with nulls: ``spine_rows - matched``.
        expired: Of those, rows whose newest feature row was older than the TTL.
    """

    name: str
    spine_rows: int
    matched: int
    without_features: int
    expired: int


@dataclass(frozen=True)
class PointInTimeResult:
    """The spine with its features, and a report per feature group.

    Attributes:
        table: The spine's columns followed by the features, one row per spine row, in order.
        report: One :class:`GroupReport` per feature group, by name, in source order.
    """

    table: pa.Table
    report: Mapping[str, GroupReport]


def _spine_keys(
    spine: pa.Table, sources: Sequence[FeatureSource], spine_keys: Mapping[str, Sequence[str]] | None
) -> dict[str, tuple[str, ...]]:
    if spine_keys is not None and not isinstance(spine_keys, Mapping):
        msg = f"spine_keys must map a source name to spine columns, e.g. {{'users': ['user_id']}}; got {spine_keys!r}"
        raise ConfigError(msg)
    given = dict(spine_keys or {})
    names = [s.name for s in sources]
    unknown = [n for n in given if n not in names]
    if unknown:
        msg = f"spine_keys names feature source(s) {unknown} that are not joined; the sources are {names}"
        raise ConfigError(msg)
    out: dict[str, tuple[str, ...]] = {}
    for src in sources:
        cols = _names(given[src.name], f"spine_keys[{src.name!r}]") if src.name in given else tuple(src.keys)
        if len(cols) != len(src.keys):
            msg = f"spine_keys[{src.name!r}] = {list(cols)} must name one spine column per group key {list(src.keys)}"
            raise ConfigError(msg)
        missing = [c for c in cols if c not in spine.column_names]
        if missing:
            msg = (
                f"the spine has no key column(s) {missing} for feature source {src.name!r}; its columns are "
                f"{spine.column_names}; name the spine's key columns with spine_keys={{{src.name!r}: [...]}}"
            )
            raise ColumnNotFoundError(msg)
        out[src.name] = cols
    return out


def _check_outputs(spine: pa.Table, sources: Sequence[FeatureSource]) -> None:
    owner = {c: f"spine column {c!r}" for c in spine.column_names}
    for src in sources:
        for feature in src.feature_columns:
            out = src.output_name(feature)
            if out in owner:
                msg = (
                    f"feature {feature!r} of feature group {src.name!r} would be written to column {out!r}, "
                    f"which {owner[out]} already uses; rename it with output_names={{{feature!r}: "
                    f"'{src.name}__{feature}'}}"
                )
                raise ConfigError(msg)
            owner[out] = f"feature {feature!r} of feature group {src.name!r}"


class _Plan:
    """One source's checked types, before any data is read."""

    def __init__(self, spine: pa.Table, source: FeatureSource, spine_time: str, keys: tuple[str, ...]) -> None:
        schema = source.schema
        for spine_col, key in zip(keys, source.keys, strict=True):
            check_key_types(
                spine.schema.field(spine_col).type,
                schema.field(key).type,
                spine_col=spine_col,
                key_col=key,
                group=source.name,
            )
        for what, col in (("created_time", source.created_time), ("write_order", source.write_order)):
            if col is not None:
                check_order_type(schema.field(col).type, what=f"{what} column {col!r} of feature group {source.name!r}")
        self.axis: TimeAxis = time_axis(
            spine.schema.field(spine_time).type,
            schema.field(source.event_time).type,
            spine_col=spine_time,
            event_col=source.event_time,
            group=source.name,
        )
        self.ttl = ttl_ticks(source.ttl, self.axis, group=source.name)
        self.source = source
        self.spine_keys = keys

    def narrow_spine(self, spine: pa.Table, spine_time: str, row_numbers: pa.Array[Any]) -> pa.Table:
        arrays: list[pa.Array[Any] | pa.ChunkedArray[Any]] = [row_numbers]
        arrays.extend(key_column(spine.column(c)) for c in self.spine_keys)
        what = f"spine time {spine_time!r}"
        arrays.append(time_ticks(spine.column(spine_time), self.axis.spine_type, what=what))
        return pa.Table.from_arrays(arrays, names=["r", *(f"k{j}" for j in range(len(self.spine_keys))), "t"])

    def narrow_history(self, hist: pa.Table) -> pa.Table:
        src = self.source
        arrays: list[pa.Array[Any] | pa.ChunkedArray[Any]] = [key_column(hist.column(k)) for k in src.keys]
        names = [f"k{j}" for j in range(len(src.keys))]
        what = f"event time {src.event_time!r} of feature group {src.name!r}"
        arrays.append(time_ticks(hist.column(src.event_time), self.axis.event_type, what=what))
        names.append("t")
        for name, col in (("c", src.created_time), ("w", src.write_order)):
            if col is not None:
                arrays.append(order_column(hist.column(col), what=f"column {col!r} of feature group {src.name!r}"))
                names.append(name)
        arrays.append(pa.array(np.arange(hist.num_rows, dtype=np.int64)))
        names.append("i")
        return pa.Table.from_arrays(arrays, names=names)


def point_in_time_join(
    spine: pa.Table,
    sources: Sequence[FeatureSource],
    *,
    spine_time: str,
    spine_keys: Mapping[str, Sequence[str]] | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
) -> PointInTimeResult:
    """Attach to each spine row the features each group held for its keys at its time.

    The exact rule (ties, TTL boundary, types) is in this module's documentation: per group,
    the row with equal keys and the greatest event time ``<= ts``, ties broken by created time,
    then write order, then the later row; valid while ``ts - event_time < ttl``.

    Args:
        spine: Keys, a time and any other columns (labels); every row comes back once, in order.
        sources: The feature groups to join, each a :class:`FeatureSource`.
        spine_time: The spine's time column.
        spine_keys: Per source name, the spine columns matching its keys (in the same order),
            where they are named differently; by default the spine uses the group's key names.
        memory_limit: DuckDB's memory limit (e.g. ``"2GB"``); beyond it, DuckDB spills to disk.
        threads: DuckDB threads, and threads reading a scan's tasks; one per CPU this process
            may use when None.

    Returns:
        The joined table and a report per group (rows matched, rows without features, expired).

    Raises:
        ConfigError: Bad arguments, or two outputs with the same name (two groups' features, or
            a feature and a spine column): the message says which, and how to rename.
        ColumnNotFoundError: A key, time or feature column is missing from the spine or a source.
        SchemaError: Spine and group times (or keys) cannot be compared, e.g. a naive timestamp
            with a zoned one, or a value cannot be converted losslessly.

    Example:
        >>> import pyarrow as pa
        >>> from datetime import datetime as dt
        >>> history = pa.table({"user_id": [1, 1, 2], "clicks": [3, 5, 7],
        ...                     "ts": [dt(2024, 1, 1), dt(2024, 1, 3), dt(2024, 1, 2)]})
        >>> spine = pa.table({"user_id": [1, 2, 3, 1], "label": [0, 1, 0, 1],
        ...                   "ts": [dt(2024, 1, 2), dt(2024, 1, 5), dt(2024, 1, 5), dt(2024, 1, 4)]})
        >>> source = FeatureSource("user_stats", history, keys=["user_id"], event_time="ts")
        >>> result = point_in_time_join(spine, [source], spine_time="ts")
        >>> result.table.column("clicks").to_pylist()
        [3, 7, None, 5]
        >>> result.report["user_stats"].without_features
        1
    """
    if not isinstance(spine, pa.Table):
        msg = f"spine must be a pyarrow Table, got {type(spine).__name__}; convert it with pa.Table.from_pandas(df)"
        raise ConfigError(msg)
    if isinstance(sources, FeatureSource) or not isinstance(sources, Sequence):
        msg = f"sources must be a list of FeatureSource, got {type(sources).__name__}; write [source]"
        raise ConfigError(msg)
    bad = [s for s in sources if not isinstance(s, FeatureSource)]
    if bad:
        msg = f"sources must be FeatureSource objects, got {type(bad[0]).__name__}: {bad[0]!r}"
        raise ConfigError(msg)
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        msg = f"feature source name(s) {twice} appear more than once; give each source its own name"
        raise ConfigError(msg)
    twice = sorted({n for n in spine.column_names if spine.column_names.count(n) > 1})
    if twice:
        msg = f"the spine has several columns named {twice}; rename them (e.g. spine.rename_columns([...]))"
        raise ConfigError(msg)
    if not isinstance(spine_time, str) or spine_time not in spine.column_names:
        msg = f"the spine has no time column {spine_time!r}; its columns are {spine.column_names}"
        raise ColumnNotFoundError(msg)
    keys = _spine_keys(spine, sources, spine_keys)
    _check_outputs(spine, sources)
    plans = [_Plan(spine, s, spine_time, keys[s.name]) for s in sources]

    arrays: list[pa.ChunkedArray[Any]] = list(spine.columns)
    fields: list[pa.Field[Any]] = []
    report: dict[str, GroupReport] = {}
    row_numbers = pa.array(np.arange(spine.num_rows, dtype=np.int64))
    # Every group's join runs first and DuckDB is closed before any features are read: the
    # gathers then reuse the memory the joins had instead of adding to it.
    matched: list[tuple[_Plan, History, Match]] = []
    with connect(memory_limit=memory_limit, threads=threads) as con:
        for plan in plans:
            src = plan.source
            history = read_history(src.data, join=src.join_columns, features=src.feature_columns, threads=threads)
            match = match_rows(
                con,
                plan.narrow_spine(spine, spine_time, row_numbers),
                plan.narrow_history(history.join),
                n_keys=len(src.keys),
                ttl=plan.ttl,
                group=src.name,
                memory_limit=memory_limit,
            )
            history.join = history.join.slice(0, 0)  # the positions are all the gather needs
            matched.append((plan, history, match))
    for plan, history, match in matched:
        src = plan.source
        taken = history.gather(match.rows)
        for feature, column in zip(src.feature_columns, taken.columns, strict=True):
            field = taken.schema.field(feature)
            fields.append(pa.field(src.output_name(feature), field.type, nullable=True, metadata=field.metadata))
            arrays.append(column)
        report[src.name] = GroupReport(
            name=src.name,
            spine_rows=spine.num_rows,
            matched=match.matched,
            without_features=spine.num_rows - match.matched,
            expired=match.candidates - match.matched,
        )
    del matched
    schema = spine.schema  # keeps the spine's metadata
    for field in fields:
        schema = schema.append(field)
    table = pa.Table.from_arrays(arrays, schema=schema)
    return PointInTimeResult(table, report)
