"""uvicorn's httptools protocol, sending each response in one write instead of two.

An ASGI response is two messages, ``http.response.start`` (status and headers) and
``http.response.body``, and uvicorn writes each to the socket as it comes: two ``send`` system
calls and two TCP segments for every small response, which the client also reads twice. For a
feature vector of about a kilobyte that is a good part of the server's work. The protocol here
hands uvicorn a transport that holds a response's head (between responses, a write that starts
with a final status line, ``HTTP/1.1 2xx`` to ``5xx``) and sends it with the next write, the
body's first part, in one call; the rest of the body is never held, whatever its bytes. A held
head waits at most until the end of the event loop's turn: an application that awaits something
before its body (a stream's slow first chunk) still sends its head in the same turn, and a body
sent in the same step (the usual case) cancels that and goes out with it.
An informational response (``100 Continue``, ``101 Switching Protocols``) and every other write
go out at once, and a held head is also sent when the response completes without a body
(``HEAD``, 204, 304) or when the connection is closed. A lone request is answered as soon as
with uvicorn's own protocol.

Measured with ``wrk`` against ``lakefeed serve`` on 2 cores (one entity a request, alternating
runs; see ``docs/performance.md``).

``lakefeed serve`` uses it. Running uvicorn yourself, pass
``http="lakefeed.serving.protocol:OneWriteHttpToolsProtocol"`` (or the class) to ``uvicorn.run`` or
``uvicorn.Config``. Importing this module needs uvicorn with httptools (``lakefeed[serve]``);
:mod:`lakefeed.serving` does not import it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lakefeed.errors import MissingDependencyError

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError as _exc:  # pragma: no cover - the serve extra installs uvicorn[standard]
    _msg = "the one-write HTTP protocol needs uvicorn with httptools; install it with: pip install 'lakefeed[serve]'"
    raise MissingDependencyError(_msg) from _exc

__all__ = ["OneWriteHttpToolsProtocol"]

_JOIN_BELOW = 64 << 10
"""Bodies up to this size are copied behind their head; larger ones are written beside it."""


class _OneWriteTransport(asyncio.Transport):
    """A transport that holds a response's head until the next write and sends the two together."""

    __slots__ = ("_due", "_head", "_in_response", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._due: asyncio.Handle | None = None  # sends a held head at the end of this loop turn
        self._in_response = False  # a head went by: what follows is its body, never held

    def _take_head(self) -> bytes | None:
        head, self._head = self._head, None
        if self._due is not None:
            self._due.cancel()
            self._due = None
        return head

    def flush(self) -> None:
        """Send a held head now (the loop turn ends, the connection closes, or the response ended bodiless)."""
        head = self._take_head()
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def end_response(self) -> None:
        """The response is complete: send a head still held; the next write may be a head again."""
        self.flush()
        self._in_response = False

    # writing ---------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._take_head() if self._head is not None else None
        if head is not None:
            if (data.nbytes if isinstance(data, memoryview) else len(data)) <= _JOIN_BELOW:
                self._transport.write(head + data if data else head)
            else:  # a large body is not copied again: one vectored write where the loop has one (uvloop)
                self._transport.writelines([head, data])
        elif not self._in_response and data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # a final head
            self._head = bytes(data)  # a copy: the caller may reuse its buffer
            self._in_response = True
            # an app that awaits before its body (streaming, a slow first chunk) still sends its
            # head now; a body sent in the same step (the usual case) cancels this
            self._due = self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (len(self._head) if self._head is not None else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    # closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._take_head()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    # the rest is the wrapped transport's ----------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each response (headers and body) in one write.

    Example:
        >>> import lakefeed as lf, tempfile, uvicorn
        >>> from lakefeed.serving import create_app
        >>> app = create_app(lf.FeatureStore(tempfile.mkdtemp()))
        >>> config = uvicorn.Config(app, http="lakefeed.serving.protocol:OneWriteHttpToolsProtocol")
        >>> config.load()
        >>> config.http_protocol_class is OneWriteHttpToolsProtocol
        True
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Set the connection up as uvicorn does, over a transport that sends a head with its body."""
        super().connection_made(transport)
        self.transport = _OneWriteTransport(transport, self.loop)

    def on_response_complete(self) -> None:
        """Send a head still held (a response without a body), then go on as uvicorn does."""
        if isinstance(self.transport, _OneWriteTransport):
            self.transport.end_response()
        super().on_response_complete()
