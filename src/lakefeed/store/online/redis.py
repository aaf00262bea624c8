"""The production online store: Redis (standalone server; redis-py is imported lazily).

Keys, under the configured prefix ``P`` (default ``lakefeed:``):

- ``P groups``: a hash, group name -> group JSON;
- ``P v:<group>:<key>``: one string per entity, the encoded record (see ``_codec``);
- ``P t:<group>``: a hash, entity key -> 25 bytes (a 1, then event time, created time and write
  order as big-endian int64): the times to compare against, and the group's key set (``count``
  is its ``HLEN``, exact);
- ``P b:<group>``: a 2 MiB bitmap with the bit ``hash(key) mod 2**24`` set for every key ever
  written: a key whose bit is clear is new, so its stored times need not be fetched.

A batch is written with optimistic locking: ``WATCH`` the group's times hash and bitmap and the
groups hash; fetch the stored times of the batch's keys that may exist (a short Lua script returns
them as one string); compare them with the batch's times in numpy; then ``MULTI``, ``MSET`` the
winning records, ``HSET`` their times (in chunks, all queued), set their bits, ``EXEC``. EXEC
applies everything or, if another writer touched the group meanwhile, nothing (then the batch is
tried again). Commands are packed into the Redis protocol with Arrow and numpy in bulk, not
argument by argument. A batch's commands are queued in Redis until EXEC, so Redis needs memory for
about twice the batch while it runs; batches of up to 1M rows x 1 KB were tested. Redis Cluster is
not supported (a batch spans many hash slots).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from lakefeed._utils import import_optional
from lakefeed.config import RedisOnlineConfig
from lakefeed.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailableError
from lakefeed.store.online import _codec
from lakefeed.store.online._batch import PreparedBatch, newer_or_equal
from lakefeed.store.online.base import OnlineGroup, OnlineStore

__all__ = ["RedisOnlineStore"]

_STORED = np.dtype([("f", "u1"), ("e", ">i8"), ("c", ">i8"), ("o", ">i8")])
_FETCH_KEYS = 65_536
_ATTEMPTS = 20
_BITMAP_BITS = 1 << 24
_BITMAP_MIN_ROWS = 1024

# Stored times of ARGV's fields in hash KEYS[1], as one string: 25 bytes per field, zeros if missing.
_FETCH = """
local out = {}
local miss = string.rep('\\0', 25)
for s = 1, #ARGV, 4000 do
  local r = redis.call('HMGET', KEYS[1], unpack(ARGV, s, math.min(s + 3999, #ARGV)))
  for i = 1, #r do out[#out + 1] = r[i] or miss end
end
return table.concat(out)
"""

# Delete group ARGV[1]: its records (ARGV[2] .. field for each field of KEYS[2]), KEYS[2] (times),
# KEYS[3] (key bitmap) and its entry in KEYS[1]; one script, so readers see all of it or nothing.
_DELETE = """
local fields = redis.call('HKEYS', KEYS[2])
for s = 1, #fields, 1000 do
  local ks = {}
  for i = s, math.min(s + 999, #fields) do ks[#ks + 1] = ARGV[2] .. fields[i] end
  redis.call('UNLINK', unpack(ks))
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], ARGV[1])
return #fields
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

    def __repr__(self) -> str:
        return f"RedisOnlineStore({_redact(self.config.url)!r}, prefix={self.config.prefix!r})"

    def _times_key(self, name: str) -> bytes:
        return self._prefix + b"t:" + name.encode()

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
        return int(self._call(f"counting group {group.name!r}", "hlen", self._times_key(group.name)))

    def _delete(self, name: str) -> None:
        keys = [self._groups_key, self._times_key(name), self._bits_key(name)]
        self._call(f"deleting group {name!r}", "eval", _DELETE, 3, *keys, name, self._value_prefix(name))

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
        name = batch.group.name
        for attempt in range(_ATTEMPTS):
            pool = self._client.connection_pool
            doing = f"writing to group {name!r}"
            try:
                conn = pool.get_connection()
            except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
                raise self._unavailable(doing, exc) from exc
            try:
                written = self._attempt(conn, batch)
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
            if written is not None:
                return written
            time.sleep(min(0.001 * 2**attempt, 0.1))
        msg = f"writing to group {name!r}: other writers kept changing the group; gave up after {_ATTEMPTS} attempts"
        raise OnlineStoreError(msg)

    def _attempt(self, conn: Any, batch: PreparedBatch) -> int | None:
        """One optimistic try: the number of keys written, or None if another writer interfered."""
        group = batch.group
        tkey, bkey = self._times_key(group.name), self._bits_key(group.name)
        n = batch.num_rows
        bits = _codec.key_hashes(batch.keys) & np.uint64(_BITMAP_BITS - 1)
        large = n >= _BITMAP_MIN_ROWS
        head = [_pack(b"WATCH", tkey, bkey, self._groups_key), _pack(b"HGET", self._groups_key, group.name.encode())]
        conn.send_packed_command([*head, _pack(b"GET", bkey)] if large else head)
        conn.read_response()
        spec = conn.read_response()
        bitmap = np.zeros(_BITMAP_BITS // 8, dtype=np.uint8)
        if large:
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
            old[ask] = self._fetch(conn, tkey, batch.keys.take(ask))
        rows = np.flatnonzero((old["f"] == 0) | newer_or_equal(batch.times(), old))
        if len(rows) == 0:
            self._unwatch(conn)
            return 0
        everything = len(rows) == n
        vprefix = self._value_prefix(group.name)
        conn.send_packed_command([_pack(b"MULTI")])
        queued = 0
        sending: Future[None] | None = None  # the previous slice, sent while this one is built
        try:
            for start, stop in batch.slices(None if everything else rows):
                idx = np.arange(start, stop) if everything else rows[start:stop]
                m = len(idx)
                keys = batch.keys.slice(start, m) if everything else batch.keys.take(idx)
                records = batch.record_parts(start, stop, None if everything else rows)
                times = np.empty(m, dtype=_STORED)
                times["f"] = 1
                times["e"], times["c"], times["o"] = batch.event[idx], batch.created[idx], batch.order[idx]
                mset = _command([b"MSET"], [[_codec.constant(vprefix, m), keys], records], m)
                hset = _command([b"HSET", tkey], [[keys], [times.view(np.uint8).reshape(m, -1)]], m)
                if sending is not None:
                    sending.result()
                sending = self._sender.submit(conn.send_packed_command, mset + hset)
                queued += 2
        finally:
            if sending is not None:
                sending.result()
        written = bits[rows]
        if large:
            np.bitwise_or.at(bitmap, written >> np.uint64(3), (128 >> (written & np.uint64(7))).astype(np.uint8))
            conn.send_packed_command([_pack(b"SET", bkey, bitmap.tobytes())])
        else:
            ops = [arg for bit in written.tolist() for arg in (b"SET", b"u1", b"%d" % bit, b"1")]
            conn.send_packed_command([_pack(b"BITFIELD", bkey, *ops)])
        conn.send_packed_command([_pack(b"EXEC")])
        return self._exec_result(conn, queued + 1, len(rows))

    def _fetch(self, conn: Any, tkey: bytes, keys: _codec.Arr) -> np.ndarray[Any, Any]:
        """The stored times of ``keys`` (zeros where missing), by the _FETCH script in chunks."""
        out: list[bytes | memoryview] = []
        for start in range(0, len(keys), _FETCH_KEYS):
            chunk = keys.slice(start, _FETCH_KEYS)
            out += _command([b"EVAL", _FETCH.encode(), b"1", tkey], [[chunk]], len(chunk))
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


def _redact(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


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
        length = pa.array(_codec.part_lengths(pieces, n)).cast(pa.string())
        parts += [_codec.constant(b"$", n), length, _codec.constant(b"\r\n", n), *pieces, _codec.constant(b"\r\n", n)]
    body = _codec.buffer_of(_codec.assemble(parts))
    header = b"*%d\r\n" % (len(head) + n * len(args)) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in head)
    return [header, body]
