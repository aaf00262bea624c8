"""The embedded online store: one SQLite file in WAL mode, no server.

Layout: a table ``lakefeed_online_groups(name, spec)`` with each group's JSON, and per group a
table ``"lakefeed_online__<group>"(k BLOB PRIMARY KEY, e, c, o, v)``: the encoded entity key, the
record's event time, created time and write order (int64; see ``_codec``) and the record. A batch
is one ``BEGIN IMMEDIATE`` transaction of ``INSERT ... ON CONFLICT(k) DO UPDATE ... WHERE
(excluded.e, excluded.c, excluded.o) >= (e, c, o)``: latest wins inside SQLite, all or nothing.

Each thread gets its own connection (readers never wait for writers in WAL mode); writers from
several threads or processes are serialised by SQLite's lock (waiting up to ``timeout_s``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pyarrow.types as pt

from lakefeed.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailableError, SchemaError
from lakefeed.store.online._batch import PreparedBatch
from lakefeed.store.online.base import OnlineGroup, OnlineStore

__all__ = ["SqliteOnlineStore"]

_GROUPS = "lakefeed_online_groups"
_IN_CHUNK = 500
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
_PAGE_BYTES = 16384
_CHECKPOINT_EVERY_S = 0.05  # bulk(): how often the background thread copies the log into the database
_MMAP_BYTES = 1 << 34  # reads through a memory map (SQLite caps it at its compile-time maximum)


def _table(name: str) -> str:
    return f'"lakefeed_online__{name}"'


def _integer_key(group: OnlineGroup) -> bool:
    """Whether the group's key is one integer column that fits SQLite's INTEGER PRIMARY KEY (the rowid)."""
    if len(group.keys) != 1:
        return False
    t = group.schema.field(group.keys[0]).type
    return bool(pt.is_integer(t) and not (pt.is_unsigned_integer(t) and t.bit_width == 64))


class SqliteOnlineStore(OnlineStore):
    """Online store in a SQLite file (the embedded default).

    Args:
        path: The database file (created with its parent folders if missing).
        timeout_s: How long a writer waits for another writer's lock before giving up.

    Raises:
        ConfigError: ``path`` is ``:memory:`` (each thread would see its own database).
        OnlineStoreError: The file cannot be opened as a SQLite database.

    Example:
        >>> import pyarrow as pa, tempfile, os
        >>> from datetime import datetime
        >>> from lakefeed.store.online import OnlineGroup, SqliteOnlineStore
        >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
        >>> with SqliteOnlineStore(os.path.join(tempfile.mkdtemp(), "online.db")) as store:
        ...     store.register_group(OnlineGroup("user_stats", schema, keys=["user_id"], event_time="ts"))
        ...     rows = pa.table({"user_id": [1, 2, 1], "ts": [datetime(2024, 1, 2), datetime(2024, 1, 1),
        ...                      datetime(2024, 1, 1)], "clicks": [5, 7, 3]}, schema=schema)
        ...     store.write_batch("user_stats", rows)
        ...     store.read("user_stats", [1, 2, 3])
        2
        [{'clicks': 5}, {'clicks': 7}, None]
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> None:
        super().__init__()
        if str(path) in ("", ":memory:") or str(path).startswith("file::memory:"):
            msg = f"SqliteOnlineStore needs a file, got {str(path)!r}; use a temporary file instead of memory"
            raise ConfigError(msg)
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}
        self._sql: dict[tuple[str, int], str] = {}
        self._integer_keys: dict[int, bool] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the folder of the online store {str(self.path)!r}: {exc}"
            raise OnlineStoreError(msg) from exc
        with self._transaction() as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_GROUPS} (name TEXT PRIMARY KEY, spec TEXT NOT NULL)")

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({str(self.path)!r})"

    # -- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        self._check_open()
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            conn.execute(f"PRAGMA page_size={_PAGE_BYTES}")  # a new database only: records of ~1 KB, fewer pages
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        except sqlite3.Error as exc:
            raise _translate(exc, f"opening the online store {str(self.path)!r}") from exc
        with self._lock:
            for ident, (thread, other) in list(self._conns.items()):
                if not thread.is_alive():
                    other.close()
                    del self._conns[ident]
            self._conns[threading.get_ident()] = (threading.current_thread(), conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, f"starting a write in {str(self.path)!r}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, f"writing to {str(self.path)!r}") from exc
            raise

    def _close(self) -> None:
        with self._lock:
            for _, conn in self._conns.values():
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    # -- hooks --------------------------------------------------------------------------------

    def _load_spec(self, name: str) -> str | None:
        try:
            row = self._conn().execute(f"SELECT spec FROM {_GROUPS} WHERE name = ?", (name,)).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, f"reading group {name!r}") from exc
        return None if row is None else str(row[0])

    def _list_specs(self) -> list[str]:
        try:
            return [str(r[0]) for r in self._conn().execute(f"SELECT name FROM {_GROUPS}")]
        except sqlite3.Error as exc:
            raise _translate(exc, "listing groups") from exc

    def _save_spec(self, group: OnlineGroup) -> None:
        table = _table(group.name)
        with self._transaction() as conn:
            row = conn.execute(f"SELECT spec FROM {_GROUPS} WHERE name = ?", (group.name,)).fetchone()
            if row is not None and OnlineGroup.from_json(row[0]).fingerprint != group.fingerprint:
                if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                    msg = f"online feature group {group.name!r} holds records of another layout; delete_group() first"
                    raise SchemaError(msg)
                conn.execute(f"DROP TABLE IF EXISTS {table}")  # empty; its key column may change type
            key_type = "INTEGER" if self._int_pk(group) else "BLOB"
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (k {key_type} PRIMARY KEY, e INTEGER NOT NULL, "
                "c INTEGER NOT NULL, o INTEGER NOT NULL, v BLOB NOT NULL)"
            )
            conn.execute(
                f"INSERT INTO {_GROUPS}(name, spec) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec",
                (group.name, group.to_json()),
            )

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Many writes follow: the write-ahead log is copied into the database by a background thread.

        SQLite normally checkpoints inside the commit that fills its log past 1000 pages: the
        writer waits while the log is copied and flushed to disk. Here the writing connection
        does not checkpoint; a thread of its own runs passive checkpoints (they never block the
        writer or readers) while the next batches are encoded and written, and a last one runs
        at the end. Each batch is still one transaction in WAL mode.
        """
        conn = self._conn()
        stop = threading.Event()
        thread = threading.Thread(target=self._checkpoints, args=(stop,), name="lakefeed-checkpoint", daemon=True)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            # back to SQLite's own checkpoints, and the rest of the log now; an error here (the
            # store closed meanwhile) must not hide the one that ended the writes, and loses nothing
            with suppress(sqlite3.Error):
                conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpoints(self, stop: threading.Event) -> None:
        """Passive checkpoints until ``stop`` (an error ends them: the log is then checkpointed later)."""
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
            while not stop.wait(_CHECKPOINT_EVERY_S):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            return  # nothing is lost: the writes are committed, and SQLite checkpoints at the next commits
        finally:
            if conn is not None:
                conn.close()

    def _write(self, batch: PreparedBatch) -> int:
        table = _table(batch.group.name)
        sql = (
            f"INSERT INTO {table}(k, e, c, o, v) VALUES (?, ?, ?, ?, ?) ON CONFLICT(k) DO UPDATE SET "
            "e = excluded.e, c = excluded.c, o = excluded.o, v = excluded.v "
            f"WHERE (excluded.e, excluded.c, excluded.o) >= ({table}.e, {table}.c, {table}.o)"
        )
        key_array = batch.key_columns[0] if self._int_pk(batch.group) else batch.keys
        with self._transaction() as conn:
            self._check_layout(conn, batch.group)
            before = conn.total_changes
            for start, stop in batch.slices():
                keys = key_array.slice(start, stop - start).to_pylist()
                records = batch.records(start, stop).to_pylist()
                rows = zip(
                    keys,
                    batch.event[start:stop].tolist(),
                    batch.created[start:stop].tolist(),
                    batch.order[start:stop].tolist(),
                    records,
                    strict=True,
                )
                conn.executemany(sql, rows)
            return conn.total_changes - before

    def _check_layout(self, conn: sqlite3.Connection, group: OnlineGroup) -> None:
        """Refuse to write if another client deleted or re-registered the group meanwhile."""
        row = conn.execute(f"SELECT spec FROM {_GROUPS} WHERE name = ?", (group.name,)).fetchone()
        if row is None or (
            row[0] != group.to_json() and OnlineGroup.from_json(row[0]).fingerprint != group.fingerprint
        ):
            self._groups.pop(group.name, None)
            msg = f"online feature group {group.name!r} was deleted or re-registered with another layout meanwhile"
            raise OnlineStoreError(msg)

    def _get(self, group: OnlineGroup, keys: list[bytes]) -> list[bytes | None]:
        conn = self._conn()
        params: list[bytes] | list[int] = [int(k) for k in keys] if self._int_pk(group) else keys
        try:
            if len(params) == 1:
                row = conn.execute(self._select(group.name, 1), params).fetchone()
                return [None if row is None else row[0]]
            found: dict[object, bytes] = {}
            for start in range(0, len(params), _IN_CHUNK):
                chunk = params[start : start + _IN_CHUNK]
                found.update(conn.execute(self._select(group.name, len(chunk)), chunk).fetchall())
        except sqlite3.Error as exc:
            raise _translate(exc, f"reading group {group.name!r}") from exc
        return [found.get(k) for k in params]

    def _int_pk(self, group: OnlineGroup) -> bool:
        found = self._integer_keys.get(group.fingerprint)
        if found is None:
            found = self._integer_keys[group.fingerprint] = _integer_key(group)
        return found

    def _select(self, name: str, n: int) -> str:
        sql = self._sql.get((name, n))
        if sql is None:
            if n == 1:
                sql = f"SELECT v FROM {_table(name)} WHERE k = ?"
            else:
                sql = f"SELECT k, v FROM {_table(name)} WHERE k IN ({', '.join('?' * n)})"
            self._sql[(name, n)] = sql
        return sql

    def _count(self, group: OnlineGroup) -> int:
        try:
            row = self._conn().execute(f"SELECT count(*) FROM {_table(group.name)}").fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, f"counting group {group.name!r}") from exc
        return int(row[0])

    def _delete(self, name: str) -> None:
        with self._transaction() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {_table(name)}")
            conn.execute(f"DELETE FROM {_GROUPS} WHERE name = ?", (name,))


def _translate(exc: sqlite3.Error, doing: str) -> OnlineStoreError:
    """A SQLite error as a lakefeed error: a busy/locked database is temporarily unavailable."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return OnlineStoreUnavailableError(f"{doing}: the SQLite database is locked by another writer ({text})")
    return OnlineStoreError(f"{doing}: {type(exc).__name__}: {text}")
