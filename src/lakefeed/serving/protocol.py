"""uvicorn's httptools protocol, sending each response in one write instead of two.

An ASGI response is two messages, ``http.response.start`` (status and headers) and
``http.response.body``, and uvicorn writes each to the socket as it comes: two ``send`` system
calls and two TCP segments for every small response, which the client also reads twice. For a
feature vector of about a kilobyte that is a fifth of the server's work. The protocol here hands
uvicorn a transport that keeps what is written during one turn of the event loop and writes it
all at the end of that turn, in one call: the two messages of a response go out together, and
so do the responses to pipelined requests answered in the same turn. Order is kept (one buffer
per connection), ``close()`` writes what is held before closing, and a connection the peer has
already closed drops it.

Measured with ``wrk`` against ``lakefeed serve`` on 2 cores (32 connections, one entity a
request, see ``docs/performance.md``): 9 of 10 alternating pairs faster, server CPU per request
55-67 µs instead of 63-72.

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


class _OneWriteTransport(asyncio.Transport):
    """A transport that holds the writes of one event-loop turn and writes them together at its end."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def _flush(self) -> None:
        if not self._held:
            return
        held, self._held = self._held, []
        if self._transport.is_closing():  # the peer went away: nobody left to read it
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    # writing ---------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data if type(data) is bytes else bytes(data))  # the caller may reuse its buffer

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._held)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    # closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
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
        """Set the connection up as uvicorn does, then hold its writes until the end of each loop turn."""
        super().connection_made(transport)
        self.transport = _OneWriteTransport(transport, self.loop)
