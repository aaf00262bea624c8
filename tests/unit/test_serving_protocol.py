"""The one-write HTTP protocol under a real uvicorn server, over real sockets.

What reaches the socket is recorded by a transport placed under the protocol's own: each
response must be one write (headers and body together), in order, and nothing held may be lost
when the server closes a connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakefeed as lf

pytestmark = pytest.mark.serve

uvicorn = pytest.importorskip("uvicorn")
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402

from lakefeed.serving import create_app  # noqa: E402
from lakefeed.serving.protocol import OneWriteHttpToolsProtocol  # noqa: E402

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
SCHEMA = pa.schema(
    [pa.field("user_id", pa.int64()), pa.field("ts", pa.timestamp("us")), pa.field("clicks", pa.int64())]
)


class _Recorded(asyncio.Transport):
    """A real transport, every write to which is also kept (in order) for the test to read."""

    def __init__(self, transport: asyncio.Transport, log: list[bytes]) -> None:
        super().__init__()
        self._t = transport
        self._log = log

    def write(self, data: Any) -> None:
        self._log.append(bytes(data))
        self._t.write(data)

    def close(self) -> None:
        self._t.close()

    def is_closing(self) -> bool:
        return self._t.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._t.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._t.pause_reading()

    def resume_reading(self) -> None:
        self._t.resume_reading()

    def is_reading(self) -> bool:
        return self._t.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._t.get_write_buffer_size()


WRITES: list[list[bytes]] = []  # one list per connection, in connection order


def _recording(base: type[HttpToolsProtocol]) -> type[HttpToolsProtocol]:
    class Recording(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            WRITES.append([])
            super().connection_made(_Recorded(transport, WRITES[-1]))

    return Recording


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[lf.FeatureStore]:
    store = lf.FeatureStore(tmp_path / "home")
    users = store.create_feature_group(
        "users", keys=["user_id"], event_time="ts", schema=SCHEMA, ttl=timedelta(days=30)
    )
    users.insert(
        {"user_id": list(range(50)), "ts": [NOW - timedelta(hours=1)] * 50, "clicks": [i * 7 for i in range(50)]}
    )
    store.create_feature_view("clicks", ["users.clicks"])
    yield store
    store.close()


@contextmanager
def _serve(app: Any, protocol: type[HttpToolsProtocol], loop: str = "auto") -> Iterator[int]:
    """A uvicorn server running ``app`` with ``protocol`` (writes recorded) in a thread: its port."""
    WRITES.clear()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", access_log=False, http=_recording(protocol), loop=loop
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(params=["uvloop", "asyncio"])
def server(fs: lf.FeatureStore, request: pytest.FixtureRequest) -> Iterator[int]:
    """A feature server on each event loop uvicorn runs (uvloop where installed, else asyncio's)."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    with _serve(create_app(fs), OneWriteHttpToolsProtocol, request.param) as port:
        yield port


def _get_until(port: int, done: Callable[[bytes], bool], timed: Callable[[bytes], bool]) -> tuple[bytes, float]:
    """GET / on a fresh connection, reading until ``done(data)``: the data, and the seconds until ``timed(data)``."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        began = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        data, seconds = b"", None
        while not done(data):
            data += sock.recv(65536)
            if seconds is None and timed(data):
                seconds = time.monotonic() - began
        assert seconds is not None
        return data, seconds


def _post(user: int, *, close: bool = False) -> bytes:
    body = json.dumps({"entity": {"user_id": user}}).encode()
    head = "POST /features/clicks HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
    head += f"content-length: {len(body)}\r\n"
    return head.encode() + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


def _responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read ``count`` responses (status, body) off a keep-alive connection, by their content-length."""
    data, out = b"", []
    sock.settimeout(10)
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end].decode().split("\r\n")
            length = next(int(h.split(":")[1]) for h in head if h.lower().startswith("content-length:"))
            if len(data) >= end + 4 + length:
                out.append((int(head[0].split()[1]), data[end + 4 : end + 4 + length]))
                data = data[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {len(out)} of {count} responses"
        data += chunk
    return out


def test_each_response_is_one_write_and_pipelined_answers_keep_their_order(server: int) -> None:
    users = [3, 17, 42, 0, 49]
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for user in users[:2]:  # one at a time
            sock.sendall(_post(user))
            ((status, body),) = _responses(sock, 1)
            assert (status, json.loads(body)) == (200, {"features": {"user_id": user, "clicks": user * 7}})
        sock.sendall(b"".join(_post(u) for u in users[2:]))  # pipelined in one segment
        answers = _responses(sock, 3)
    assert [json.loads(body)["features"] for _, body in answers] == [{"user_id": u, "clicks": u * 7} for u in users[2:]]
    (writes,) = WRITES
    assert len(writes) == len(users)  # one write each: status line, headers and body together
    for write, user in zip(writes, users, strict=True):
        assert write.startswith(b"HTTP/1.1 200 OK\r\n")
        assert write.count(b"HTTP/1.1") == 1
        assert write.endswith(b'{"features":{"user_id":%d,"clicks":%d}}' % (user, user * 7))


def test_a_head_response_without_a_body_is_not_held_back(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.settimeout(10)
        sock.sendall(b"HEAD /health HTTP/1.1\r\nhost: t\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:  # a held head would time out here
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b"\r\n\r\n")  # headers only
        sock.sendall(_post(4))  # the connection goes on
        assert json.loads(_responses(sock, 1)[0][1]) == {"features": {"user_id": 4, "clicks": 28}}


def test_100_continue_goes_out_at_once(server: int) -> None:
    request = _post(6)
    head, body = request.split(b"\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.settimeout(10)
        sock.sendall(head + b"\r\nexpect: 100-continue\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:  # the server asks for the body before it answers
            interim += sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert json.loads(_responses(sock, 1)[0][1]) == {"features": {"user_id": 6, "clicks": 42}}


def test_uvicorns_own_protocol_writes_twice_so_the_recording_can_tell(fs: lf.FeatureStore) -> None:
    with _serve(create_app(fs), HttpToolsProtocol) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_post(5))
        assert _responses(sock, 1)[0][0] == 200
    (writes,) = WRITES
    assert len(writes) == 2
    assert writes[0].endswith(b"\r\n\r\n")  # the headers alone
    assert writes[1].endswith(b"}}")


def test_a_response_before_the_server_closes_is_sent_whole(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(_post(9, close=True))
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):  # until the server closes
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b'{"features":{"user_id":9,"clicks":63}}')


def test_a_malformed_request_gets_its_400_before_the_connection_closes(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400")


def test_a_client_that_leaves_before_its_answer_does_not_disturb_the_next(server: int) -> None:
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server)) as gone:
            gone.sendall(_post(1))
            gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(_post(2))
        assert json.loads(_responses(sock, 1)[0][1]) == {"features": {"user_id": 2, "clicks": 14}}


def test_a_large_answer_arrives_whole_and_in_order(server: int) -> None:
    users = [(i * 31) % 50 for i in range(4000)]  # an answer of about 100 KB, above the size joined to its head
    body = json.dumps({"entities": [{"user_id": u} for u in users]}).encode()
    head = "POST /features/clicks HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body + _post(8))
        (status, answer), (_, after) = _responses(sock, 2)
    assert status == 200
    assert len(answer) > 64 << 10
    assert json.loads(answer)["features"] == [{"user_id": u, "clicks": u * 7} for u in users]
    assert json.loads(after) == {"features": {"user_id": 8, "clicks": 56}}
    (writes,) = WRITES
    assert b"".join(writes).count(b"HTTP/1.1 200 OK\r\n") == 2


async def _streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A response in three parts, the second of which looks like a response head, then a pause."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"24")]})
    await send({"type": "http.response.body", "body": b"0123", "more_body": True})
    await send({"type": "http.response.body", "body": b"HTTP/1.1 200 0123456", "more_body": True})
    await asyncio.sleep(3)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def test_a_body_part_that_looks_like_a_head_is_not_held() -> None:
    with _serve(_streaming, OneWriteHttpToolsProtocol) as port:
        part = b"HTTP/1.1 200 0123456"
        data, seconds = _get_until(port, lambda d: d.endswith(part), lambda d: d.endswith(part))
    assert seconds < 2  # sent as it came, not after the pause
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert WRITES[0][0].endswith(b"\r\n\r\n0123")  # the head went with the first part


async def _slow_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A response whose head is sent well before its body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await asyncio.sleep(3)
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_head_sent_long_before_its_body_is_not_held() -> None:
    with _serve(_slow_body, OneWriteHttpToolsProtocol) as port:
        data, seconds = _get_until(port, lambda d: d.endswith(b"ok"), lambda d: b"\r\n\r\n" in d)
    assert seconds < 2  # the head came at once, not with the body 3 s later
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert [w[-2:] for w in WRITES[0]] == [b"\r\n", b"ok"]  # two writes: the head could not wait
