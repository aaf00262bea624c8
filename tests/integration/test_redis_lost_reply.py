"""A connection to Redis lost after a write's EXEC was sent: applied or not, the stores stay consistent.

A real TCP proxy sits between lakefeed and the real Redis. When the client's bytes hold an
``EXEC``, the proxy either drops them and cuts the connection (the transaction never ran), or
forwards them, lets Redis apply them, and cuts the connection before the reply comes back (the
client cannot tell from the reply). The store then asks Redis, on a new connection, whether its
transaction ran; when the proxy refuses that too, the outcome is unknown, and an insert keeps its
rows in the history (for the next materialization) instead of undoing them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import CommitError, OnlineStoreUnavailableError, OnlineWriteUnknownError

pytestmark = pytest.mark.redis

T0 = datetime(2026, 1, 1)
USERS = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
EXEC = b"*1\r\n$4\r\nEXEC\r\n"

Mode = Literal["pass", "drop-exec", "lose-reply", "lose-reply-and-go", "delay-exec"]


class CuttingProxy:
    """A TCP proxy to Redis that cuts a connection at its first EXEC, as ``mode`` says.

    - ``pass``: relays everything;
    - ``drop-exec``: the chunk holding the EXEC is not forwarded; the connection is cut;
    - ``lose-reply``: the chunk is forwarded, Redis applies it, then the connection is cut
      before any reply is relayed; new connections still work;
    - ``lose-reply-and-go``: as ``lose-reply``, but first every other connection is cut and new
      ones are refused (closed at once), as when the network to Redis is gone;
    - ``delay-exec``: the client's side is cut at once, and the chunk reaches Redis only
      ``delay`` seconds later (a packet stuck in the network), after the client asked.
    """

    def __init__(self, host: str, port: int, *, delay: float = 0.6) -> None:
        self.target = (host, port)
        self.mode: Mode = "pass"
        self.delay = delay
        self.cuts = 0
        self._gone = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._gone:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            cut = threading.Event()
            self._start(self._upstream, client, server, cut)
            self._start(self._downstream, server, client, cut)

    def _upstream(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        tail = b""  # the end of the last chunk: an EXEC may span two
        try:
            while data := client.recv(1 << 16):
                seen = EXEC in tail + data
                tail = (tail + data)[-(len(EXEC) - 1) :]
                if self.mode == "pass" or not seen:
                    server.sendall(data)
                    continue
                mode, self.mode = self.mode, "pass"  # one cut per arming
                self.cuts += 1
                cut.set()  # from now on no reply goes back to the client (they are dropped)
                if mode == "lose-reply-and-go":  # first every other connection, idle ones too
                    self._gone = True
                    with self._lock:
                        others = self._open - {client, server}
                    for other in others:
                        _close(other)
                if mode == "delay-exec":
                    _close(client)  # the client sees the connection lost and asks Redis
                    time.sleep(self.delay)
                if mode != "drop-exec":
                    server.sendall(data)
                    time.sleep(0.3)  # Redis handles the transaction (its replies are dropped)
                break
        except OSError:
            pass
        finally:
            self._forget(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        try:
            while data := server.recv(1 << 16):
                if not cut.is_set():
                    client.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(client)

    def _forget(self, *sockets: socket.socket) -> None:
        for s in sockets:
            _close(s)
        with self._lock:
            self._open -= set(sockets)

    def come_back(self) -> None:
        """Accept connections again."""
        self._gone = False

    def close(self) -> None:
        """Stop accepting, cut every connection, and wait for the proxy's threads."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            remaining = list(self._open)
        self._forget(*remaining)
        for thread in self._threads:
            thread.join(timeout=5)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[CuttingProxy]:
    url = urlparse(redis_url)
    p = CuttingProxy(url.hostname or "127.0.0.1", url.port or 6379)
    yield p
    p.close()


@pytest.fixture
def via_proxy(proxy: CuttingProxy, redis_url: str) -> str:
    db = urlparse(redis_url).path or "/0"
    return f"redis://127.0.0.1:{proxy.port}{db}"


@dataclass
class Setup:
    """A store reaching Redis through the proxy, with a group of two rows (clicks 10 and 20)."""

    fs: lf.FeatureStore
    group: lf.FeatureGroup
    proxy: CuttingProxy

    @property
    def name(self) -> str:
        return self.group.name

    def insert_cut(self, mode: Mode) -> Any:
        """Insert users 1 and 3 with the proxy armed to cut at ``mode``: the insert's result."""
        self.proxy.mode = mode
        return self.group.insert({"user_id": [1, 3], "ts": [T0, T0], "clicks": [11, 30]})

    def history(self) -> list[int]:
        return sorted(self.group.read().column("clicks").to_pylist())

    def online(self) -> list[object]:
        view = self.fs.create_feature_view(f"{self.name}_v", [f"{self.name}.clicks"], exist_ok=True)
        return [v["clicks"] for v in view.get_feature_vectors([{"user_id": 1}, {"user_id": 2}, {"user_id": 3}])]


@pytest.fixture
def setup(tmp_path: Path, proxy: CuttingProxy, via_proxy: str) -> Iterator[Setup]:
    wh = tmp_path / "wh"
    with lf.FeatureStore(catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=wh, online=via_proxy) as fs:
        name = f"lost_{uuid.uuid4().hex[:8]}"  # the Redis db is shared between tests: a group of its own
        group = fs.create_feature_group(name, keys=["user_id"], event_time="ts", schema=USERS)
        group.insert({"user_id": [1, 2], "ts": [T0, T0], "clicks": [10, 20]})
        yield Setup(fs, group, proxy)
        proxy.come_back()
        if f"{name}_v" in fs.list_feature_views():
            fs.delete_feature_view(f"{name}_v")
        fs.delete_feature_group(name)


def test_an_exec_that_never_ran_rolls_the_insert_back(setup: Setup) -> None:
    before = setup.group.table.snapshot_id
    with pytest.raises(OnlineStoreUnavailableError) as raised:
        setup.insert_cut("drop-exec")
    assert not isinstance(raised.value, OnlineWriteUnknownError)
    assert setup.proxy.cuts == 1
    assert setup.history() == [10, 20]  # the append was undone
    assert setup.group.table.snapshot_id != before  # (by a delete commit)
    assert setup.online() == [10, 20, None]


def test_a_late_exec_after_the_answer_not_applied_is_fenced_off(setup: Setup) -> None:
    with pytest.raises(OnlineStoreUnavailableError) as raised:
        setup.insert_cut("delay-exec")
    assert not isinstance(raised.value, OnlineWriteUnknownError)
    assert setup.history() == [10, 20]  # undone
    time.sleep(setup.proxy.delay + 0.5)  # the transaction has reached Redis by now, and aborted
    assert setup.proxy.cuts == 1
    assert setup.online() == [10, 20, None]


def test_an_exec_that_ran_but_lost_its_reply_is_found_applied(setup: Setup) -> None:
    result = setup.insert_cut("lose-reply")
    assert setup.proxy.cuts == 1
    assert result.online_rows == 2
    assert setup.history() == [10, 11, 20, 30]
    assert setup.online() == [11, 20, 30]
    assert setup.fs.registry.materialized(setup.name) == result.write  # nothing left to materialize


def test_an_unknown_outcome_keeps_the_rows_for_the_next_materialization(setup: Setup) -> None:
    fs, name = setup.fs, setup.name
    watermark = fs.registry.materialized(name)
    with pytest.raises(CommitError, match=r"unknown.*stay in the history.*materialize") as raised:
        setup.insert_cut("lose-reply-and-go")
    assert isinstance(raised.value.__cause__, OnlineWriteUnknownError)
    # the history keeps the rows (the online write may have landed: undoing them could leave
    # online values that the history lacks); the watermark stays below the insert
    assert setup.history() == [10, 11, 20, 30]
    assert fs.registry.materialized(name) == watermark
    assert fs.registry.in_flight(name) == {}
    setup.proxy.come_back()
    result = fs.materialize(name)
    assert (result.inserts, result.rows) == (1, 2)
    assert setup.online() == [11, 20, 30]
