"""The production online store: Redis (standalone server; redis-py is imported lazily).

Keys, under the configured prefix ``P`` (default ``lakefeed:``):

- ``P groups``: a hash, group name -> group JSON;
- ``P v:<group>:<key>``: one string per entity, the encoded record (see ``_codec``);
- ``P n:<group>``: the number of keys the group holds (``count``, exact);
- ``P b:<group>``: a 2 MiB bitmap with the bit ``hash(key) mod 2**24`` set for every key ever
  written: a key whose bit is clear is new, so its stored times need not be fetched;
- ``P w:<group>``: a random token, replaced by every write: a client that knows the bitmap as of
  its own last write (the token it set is still there) does not read it again.

A record's times (event, created, write order) are in its fixed 29-byte header, so nothing else is
stored per key. A batch is written with optimistic locking: ``WATCH`` the group's token and the
groups hash; fetch the stored times of the batch's keys that may exist (a short Lua
script reads each record's header with ``GETRANGE`` and returns them all as one string); compare
them with the batch's times in numpy; then ``MULTI``, ``MSET`` the winning records (in chunks, all
queued), add the keys that were new to the counter, set their bits, set a new token, ``EXEC``. EXEC applies
everything or, if another writer touched the group meanwhile, nothing (then the batch is tried
again). If the connection is lost before EXEC's reply, another connection asks whether it ran
(``_FENCE``: the token is the transaction's, or still the watched one, which the script then
replaces so that a late EXEC aborts); only when that cannot tell is the outcome unknown
(``OnlineWriteUnknownError``). Deleting a group finds its records with ``SCAN``, inside one script. Commands are packed
into the Redis protocol with Arrow and numpy in bulk, not argument by argument. A batch's commands
are queued in Redis until EXEC, so Redis needs memory for about twice the batch while it runs;
batches of up to 1M rows x 1 KB were tested. ``write_batches`` pipelines: while Redis applies one
batch's transaction, the next batch's records are encoded. Redis Cluster is
not supported (a batch spans many hash slots).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakefeed._utils import import_optional
from lakefeed.config import RedisOnlineConfig
from lakefeed.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailableError, OnlineWriteUnknownError
from lakefeed.store.online import _codec
from lakefeed.store.online._batch import PreparedBatch, newer_or_equal
from lakefeed.store.online.base import OnlineGroup, OnlineStore

__all__ = ["RedisOnlineStore"]

_STORED = np.dtype([("f", "u1"), ("e", ">i8"), ("c", ">i8"), ("o", ">i8")])
_FETCH_KEYS = 65_536
_ATTEMPTS = 20
_BITMAP_BITS = 1 << 24
_BITMAP_MIN_ROWS = 1024
_SPECULATE_BYTES = 256 << 20
"""Largest batch (feature bytes) whose records _pipeline encodes ahead, before it knows the winners."""

# Stored times of the records ARGV[1] .. ARGV[i] (i >= 2), as one string: per record 25 bytes, a 1
# then bytes 5-28 of its header (event time, created time, write order), or 25 zeros if missing.
_FETCH = """
local out = {}
local miss = string.rep('\\0', 25)
local prefix = ARGV[1]
for i = 2, #ARGV do
  local t = redis.call('GETRANGE', prefix .. ARGV[i], 5, 28)
  if #t == 24 then out[#out + 1] = '\\1' .. t else out[#out + 1] = miss end
end
return table.concat(out)
"""

# After a lost EXEC reply: 1 if the token KEYS[1] is the transaction's (ARGV[1]); 0 if it is still
# the watched one (ARGV[2], or none when ARGV[3] == '1'), after replacing it by ARGV[4] so that the
# transaction, watching it, aborts if its EXEC arrives later; 2 if another writer's (cannot tell).
_FENCE = """
local t = redis.call('GET', KEYS[1])
if t == ARGV[1] then return 1 end
if (t == false and ARGV[3] == '1') or (t ~= false and ARGV[3] == '0' and t == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[4])
  return 0
end
return 2
"""

# Delete group ARGV[1]: its records (the keys matching the pattern ARGV[2]), KEYS[2] (counter),
# KEYS[3] (key bitmap), KEYS[4] (token) and its entry in KEYS[1]; one script, so readers see all
# of it or nothing.
_DELETE = """
local cursor, n = '0', 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = r[1]
  local found = r[2]
  for s = 1, #found, 1000 do
    redis.call('UNLINK', unpack(found, s, math.min(s + 999, #found)))
  end
  n = n + #found
until cursor == '0'
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[1], ARGV[1])
return n
"""


class RedisOnlineStore(OnlineStore):
    """Online store in Redis (production).

    Args:
        config: The Redis URL and options, or a URL (``redis://``, ``rediss://``, ``unix://``).

    Raises:
        MissingDependencyError: redis-py is not installed (``pip install 'lakefeed[redis]'``).

    Example:
        >>> from lakefeed.store.online import RedisOnlineStore
        >>> store = RedisOnlineStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> store.groups()  # doctest: +SKIP
        []
    """

    def __init__(self, config: RedisOnlineConfig | str) -> None:
        super().__init__()
        if isinstance(config, str):
            config = RedisOnlineConfig(url=config)
        self.config = config
        redis = import_optional("redis", extra="redis", purpose="the Redis online store")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors = redis.exceptions
        try:
            self._client: Any = redis.Redis.from_url(
                config.url,
                socket_timeout=config.socket_timeout_s,
                socket_connect_timeout=config.connect_timeout_s,
                max_connections=config.max_connections,
                retry=Retry(NoBackoff(), 1),
                protocol=2,
            )
        except ValueError as exc:
            msg = f"bad Redis URL {_redact(config.url)!r} for the online store: {exc}"
            raise ConfigError(msg) from exc
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakefeed-redis-send")
        prefix = config.prefix
        self._groups_key = f"{prefix}groups".encode()
        self._prefix = prefix.encode()
        self._bitmaps: dict[str, tuple[bytes, np.ndarray[Any, Any]]] = {}  # group -> (token, bitmap) it wrote

    def __repr__(self) -> str:
        return f"RedisOnlineStore({_redact(self.config.url)!r}, prefix={self.config.prefix!r})"

    def _count_key(self, name: str) -> bytes:
        return self._prefix + b"n:" + name.encode()

    def _token_key(self, name: str) -> bytes:
        return self._prefix + b"w:" + name.encode()

    def _bits_key(self, name: str) -> bytes:
        return self._prefix + b"b:" + name.encode()

    def _value_prefix(self, name: str) -> bytes:
        return self._prefix + b"v:" + name.encode() + b":"

    def _call(self, doing: str, method: str, *args: Any) -> Any:
        try:
            return getattr(self._client, method)(*args)
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            raise self._unavailable(doing, exc) from exc
        except self._errors.RedisError as exc:
            msg = f"{doing} in {self!r}: Redis refused: {exc}"
            raise OnlineStoreError(msg) from exc

    def _unavailable(self, doing: str, exc: BaseException) -> OnlineStoreUnavailableError:
        where = _redact(self.config.url)
        return OnlineStoreUnavailableError(f"{doing}: Redis at {where!r} is unavailable ({exc}); retry later")

    # -- hooks --------------------------------------------------------------------------------

    def _load_spec(self, name: str) -> str | None:
        raw = self._call(f"reading group {name!r}", "hget", self._groups_key, name)
        return None if raw is None else bytes(raw).decode()

    def _list_specs(self) -> list[str]:
        return [bytes(n).decode() for n in self._call("listing groups", "hkeys", self._groups_key)]

    def _save_spec(self, group: OnlineGroup) -> None:
        self._call(f"registering group {group.name!r}", "hset", self._groups_key, group.name, group.to_json())

    def _count(self, group: OnlineGroup) -> int:
        raw = self._call(f"counting group {group.name!r}", "get", self._count_key(group.name))
        return 0 if raw is None else int(raw)

    def _delete(self, name: str) -> None:
        keys = [self._groups_key, self._count_key(name), self._bits_key(name), self._token_key(name)]
        pattern = _glob_escape(self._value_prefix(name)) + b"*"
        self._call(f"deleting group {name!r}", "eval", _DELETE, len(keys), *keys, name, pattern)

    def _get(self, group: OnlineGroup, keys: list[bytes]) -> list[bytes | None]:
        prefix = self._value_prefix(group.name)
        doing = f"reading group {group.name!r}"
        if len(keys) == 1:
            return [self._call(doing, "get", prefix + keys[0])]
        return list(self._call(doing, "mget", [prefix + k for k in keys]))

    def _close(self) -> None:
        self._sender.shutdown()
        self._client.close()
        self._client.connection_pool.disconnect()

    def _write(self, batch: PreparedBatch) -> int:
        return self._on_connection(batch.group.name, lambda conn: self._retrying(conn, batch))

    def _write_many(self, batches: Iterator[PreparedBatch]) -> int:
        first = next(batches, None)
        if first is None:
            return 0
        return self._on_connection(first.group.name, lambda conn: self._pipeline(conn, first, batches))

    def _on_connection(self, name: str, work: Callable[[Any], int]) -> int:
        """Run ``work`` on a pooled connection, turning Redis errors into lakefeed's."""
        pool = self._client.connection_pool
        doing = f"writing to group {name!r}"
        try:
            conn = pool.get_connection()
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            raise self._unavailable(doing, exc) from exc
        try:
            return work(conn)
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            conn.disconnect()
            raise self._unavailable(doing, exc) from exc
        except self._errors.RedisError as exc:
            conn.disconnect()
            msg = f"writing to group {name!r} in {self!r}: Redis refused: {exc}"
            raise OnlineStoreError(msg) from exc
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def _retrying(self, conn: Any, batch: PreparedBatch) -> int:
        """Optimistic tries until one is not interfered with."""
        for attempt in range(_ATTEMPTS):
            written = self._attempt(conn, batch)
            if written is not None:
                return written
            time.sleep(min(0.001 * 2**attempt, 0.1))
        name = batch.group.name
        msg = f"writing to group {name!r}: other writers kept changing the group; gave up after {_ATTEMPTS} attempts"
        raise OnlineStoreError(msg)

    def _attempt(self, conn: Any, batch: PreparedBatch) -> int | None:
        """One optimistic try: the number of keys written, or None if another writer interfered."""
        plan = self._check(conn, batch)
        if plan is None:
            return 0
        conn.send_packed_command([_pack(b"MULTI")])
        queued = 0
        sending: Future[None] | None = None  # the previous slice, sent while this one is built
        try:
            for mset in self._msets(batch, plan.rows):
                if sending is not None:
                    sending.result()
                sending = self._sender.submit(conn.send_packed_command, mset)
                queued += 1
        finally:
            if sending is not None:
                sending.result()
        conn.send_packed_command(plan.tail)
        return self._finish(conn, plan, queued + 3)

    def _pipeline(self, conn: Any, first: PreparedBatch, rest: Iterator[PreparedBatch]) -> int:
        """Write ``first`` then ``rest``, one transaction each, encoding a batch while Redis applies the one before.

        The next batch's records are encoded on the guess that all of them win (true of new keys
        and of newer rows); if the stored times say otherwise, only the winners are encoded again.
        """
        total = 0
        pending: _Pending | None = None
        try:
            for batch in itertools.chain([first], rest):
                small = sum(f.nbytes for f in batch.features) <= _SPECULATE_BYTES
                guess = list(self._msets(batch, None)) if small else None
                bits = _key_bits(batch)
                if pending is not None:
                    settling, pending = pending, None
                    total += self._settle(conn, settling)
                plan = self._check(conn, batch, bits)
                if plan is None:
                    continue
                msets = guess if plan.rows is None and guess is not None else list(self._msets(batch, plan.rows))
                del guess
                commands = [_pack(b"MULTI"), *itertools.chain.from_iterable(msets), *plan.tail]
                sent = self._sender.submit(conn.send_packed_command, commands)
                pending = _Pending(batch, plan, len(msets) + 3, sent)
            if pending is not None:
                settling, pending = pending, None
                total += self._settle(conn, settling)
        except BaseException as exc:
            if pending is not None:  # a later batch failed to prepare: the one sent before it is still written
                try:
                    self._settle(conn, pending)
                except Exception as failure:  # the first error stays the one raised
                    exc.add_note(f"finishing the batch sent before it failed too: {failure!r}")
            raise
        return total

    def _settle(self, conn: Any, pending: _Pending) -> int:
        """Finish a transaction sent by _pipeline; if another writer interfered, write the batch again."""
        pending.sent.result()  # a failed send never ran: EXEC, the last bytes, did not get through
        written = self._finish(conn, pending.plan, pending.queued)
        return self._retrying(conn, pending.batch) if written is None else written

    def _done(self, plan: _Plan, written: int | None) -> int | None:
        """After EXEC: remember the bitmap this client wrote (with its token), if EXEC ran."""
        if written is not None and plan.bitmap is not None:
            self._bitmaps[plan.group] = (plan.token, plan.bitmap)
        return written

    def _finish(self, conn: Any, plan: _Plan, queued: int) -> int | None:
        """Read the replies of a sent transaction: keys written, or None if EXEC did not run (interference).

        If the connection is lost before EXEC's reply, the transaction may or may not have run:
        Redis is asked (:meth:`_applied`). Ran: it counts as written. Did not run: the connection
        error goes on. Cannot tell: :class:`OnlineWriteUnknownError`.
        """
        try:
            return self._done(plan, self._exec_result(conn, queued, plan.count))
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            applied = self._applied(conn, plan)
            if applied is None:
                where = _redact(self.config.url)
                msg = (
                    f"writing to group {plan.group!r}: the connection to Redis at {where!r} was lost after the "
                    f"transaction was sent ({exc}), and Redis could not be asked whether it ran: whether the "
                    "write was applied is unknown; writing the same records again is safe (the latest per key wins)"
                )
                raise OnlineWriteUnknownError(msg) from exc
            if not applied:
                raise
            return self._done(plan, plan.count)

    def _applied(self, conn: Any, plan: _Plan) -> bool | None:
        """Whether a transaction whose reply was lost ran: True, False, or None if Redis cannot tell.

        Asked on another connection, in one script (:data:`_FENCE`): the group's token is the
        transaction's own (it ran), or still the one it watched (it has not run, and the script
        replaces that token: the transaction watched it, so if its EXEC reaches Redis later, it
        aborts), or another writer's (cannot tell).
        """
        conn.disconnect()
        name = plan.group
        watched = plan.watched if plan.watched is not None else b""
        try:
            answer = self._client.eval(
                _FENCE,
                1,
                self._token_key(name),
                plan.token,
                watched,
                b"1" if plan.watched is None else b"0",
                os.urandom(16),
            )
        except self._errors.RedisError:
            return None
        return {1: True, 0: False}.get(int(answer))

    def _check(self, conn: Any, batch: PreparedBatch, bits: np.ndarray[Any, Any] | None = None) -> _Plan | None:
        """WATCH the group, compare the batch with the stored times: what to write, or None for nothing.

        ``bits`` are the batch's keys' bitmap positions (:func:`_key_bits`), if already computed.
        """
        group = batch.group
        ckey, bkey, wkey = self._count_key(group.name), self._bits_key(group.name), self._token_key(group.name)
        n = batch.num_rows
        bits = _key_bits(batch) if bits is None else bits
        large = n >= _BITMAP_MIN_ROWS
        # every write replaces the token (and a delete removes it): watching it sees them all
        conn.send_packed_command(
            [
                _pack(b"WATCH", wkey, self._groups_key),
                _pack(b"HGET", self._groups_key, group.name.encode()),
                _pack(b"GET", wkey),
            ]
        )
        conn.read_response()
        spec = conn.read_response()
        token = conn.read_response()
        bitmap = np.zeros(_BITMAP_BITS // 8, dtype=np.uint8)
        if large:
            known = self._bitmaps.get(group.name)
            if known is not None and token is not None and known[0] == bytes(token):
                bitmap[:] = known[1]  # what this client wrote last, unchanged since
            else:
                conn.send_packed_command([_pack(b"GET", bkey)])
                raw = conn.read_response()
                if raw:
                    stored_bits = np.frombuffer(raw, dtype=np.uint8)[: len(bitmap)]
                    bitmap[: len(stored_bits)] = stored_bits
        if spec is None or OnlineGroup.from_json(bytes(spec).decode()).fingerprint != group.fingerprint:
            self._unwatch(conn)
            self._groups.pop(group.name, None)
            msg = f"online feature group {group.name!r} was deleted or re-registered with another layout meanwhile"
            raise OnlineStoreError(msg)
        # Keys whose bit is clear were never written: only the others need their stored times.
        ask = np.flatnonzero((bitmap[bits >> np.uint64(3)] >> (7 - (bits & np.uint64(7))).astype(np.uint8)) & 1)
        ask = ask if large else np.arange(n)
        old = np.zeros(n, dtype=_STORED)
        if len(ask):
            old[ask] = self._fetch(conn, self._value_prefix(group.name), batch.keys.take(ask))
        rows = np.flatnonzero((old["f"] == 0) | newer_or_equal(batch.times(), old))
        if len(rows) == 0:
            self._unwatch(conn)
            return None
        new = int(np.count_nonzero(old["f"][rows] == 0))
        written = bits[rows]
        if large:
            np.bitwise_or.at(bitmap, written >> np.uint64(3), (128 >> (written & np.uint64(7))).astype(np.uint8))
            mark = _pack(b"SET", bkey, bitmap.tobytes())
        else:
            ops = [arg for bit in written.tolist() for arg in (b"SET", b"u1", b"%d" % bit, b"1")]
            mark = _pack(b"BITFIELD", bkey, *ops)
        fresh = os.urandom(16)
        tail = [mark, _pack(b"INCRBY", ckey, b"%d" % new), _pack(b"SET", wkey, fresh), _pack(b"EXEC")]
        watched = None if token is None else bytes(token)
        rows_or_all = None if len(rows) == n else rows
        return _Plan(group.name, rows_or_all, len(rows), tail, fresh, watched, bitmap if large else None)

    def _msets(self, batch: PreparedBatch, rows: np.ndarray[Any, Any] | None) -> Iterator[list[bytes | memoryview]]:
        """``MSET`` commands of the records of ``rows`` (all if None), a slice of rows each."""
        vprefix = self._value_prefix(batch.group.name)
        for start, stop in batch.slices(rows):
            m = stop - start
            keys = batch.keys.slice(start, m) if rows is None else batch.keys.take(rows[start:stop])
            records = batch.record_parts(start, stop, rows)
            yield _command([b"MSET"], [[_codec.constant(vprefix, m), keys], records], m)

    def _fetch(self, conn: Any, vprefix: bytes, keys: _codec.Arr) -> np.ndarray[Any, Any]:
        """The stored times of ``keys`` (zeros where missing), by the _FETCH script in chunks."""
        out: list[bytes | memoryview] = []
        for start in range(0, len(keys), _FETCH_KEYS):
            chunk = keys.slice(start, _FETCH_KEYS)
            out += _command([b"EVAL", _FETCH.encode(), b"0", vprefix], [[chunk]], len(chunk))
        conn.send_packed_command(out)
        stored = b"".join(conn.read_response() for _ in range(0, len(keys), _FETCH_KEYS))
        return np.frombuffer(stored, dtype=_STORED)

    def _unwatch(self, conn: Any) -> None:
        conn.send_packed_command([_pack(b"UNWATCH")])
        conn.read_response()

    def _exec_result(self, conn: Any, queued: int, written: int) -> int | None:
        """Read the replies of MULTI, ``queued`` commands and EXEC; None if EXEC did not run."""
        conn.read_response()  # OK for MULTI
        errors = []
        for _ in range(queued):
            try:
                conn.read_response()
            except self._errors.ResponseError as exc:  # a queued command refused: EXEC aborts
                errors.append(exc)
        try:
            result = conn.read_response()
        except self._errors.ResponseError as exc:
            raise errors[0] if errors else exc from None
        if result is None:
            return None
        for item in result:
            if isinstance(item, Exception):
                raise item
        return written


@dataclass(frozen=True)
class _Plan:
    """What one optimistic try writes: its rows (None: all), their number, and the commands that end it."""

    group: str
    rows: np.ndarray[Any, Any] | None
    count: int
    tail: list[bytes]
    token: bytes
    """The token the transaction sets."""
    watched: bytes | None
    """The token it watched (there before it; None: none yet)."""
    bitmap: np.ndarray[Any, Any] | None
    """The whole key bitmap the transaction sets (None for a small batch, which sets single bits)."""


@dataclass(frozen=True)
class _Pending:
    """A transaction _pipeline has handed to the sender thread; its replies are still to be read."""

    batch: PreparedBatch
    plan: _Plan
    queued: int
    sent: Future[None]


def _key_bits(batch: PreparedBatch) -> np.ndarray[Any, Any]:
    """The bitmap position of each key of the batch."""
    return _codec.key_hashes(batch.keys) & np.uint64(_BITMAP_BITS - 1)


def _redact(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


def _glob_escape(text: bytes) -> bytes:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    for special in (b"\\", b"*", b"?", b"[", b"]"):
        text = text.replace(special, b"\\" + special)
    return text


def _pack(*args: bytes) -> bytes:
    """A command with few arguments in the Redis protocol."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _command(head: list[bytes], args: list[list[_codec.Part]], n: int) -> list[bytes | memoryview]:
    """A command with constant arguments ``head`` then, per row, one argument per entry of ``args``.

    Each entry of ``args`` is a list of parts whose row-wise concatenation is the argument (e.g. a
    key prefix then the key; see ``_codec.assemble``). Returns the protocol bytes as buffers.
    """
    parts: list[_codec.Part] = []
    for pieces in args:
        length = _codec.decimal(_codec.part_lengths(pieces, n))
        parts += [_codec.constant(b"$", n), length, _codec.constant(b"\r\n", n), *pieces, _codec.constant(b"\r\n", n)]
    body = _codec.buffer_of(_codec.assemble(parts))
    header = b"*%d\r\n" % (len(head) + n * len(args)) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in head)
    return [header, body]
