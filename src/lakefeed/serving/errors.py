"""Map exceptions to HTTP responses: a status, a stable error code and a safe message.

Lakefeed errors carry messages written for users (they name the object, the value and the fix),
so their text is returned. Any other exception is a bug or an outage: the response is a 500 with
a fresh request id and nothing else, and the traceback goes to the ``lakefeed.serving`` logger
under that id. No exception text of an unknown error ever reaches a client.

The mapping (first match wins, most specific classes first):

=============================== ====== ==================================================
Exception                        Status Meaning
=============================== ====== ==================================================
``OnlineStoreUnavailableError``  503    the online store cannot be reached; retry later
``OnlineStoreError``             500    the online store refused or holds unreadable data
``ColumnNotFoundError``          422    an entity lacks a key column of the view
``NotFoundError``                404    something named does not exist
``SchemaError``                  422    a key value has the wrong type
``ConfigError``                  500    the server is misconfigured (e.g. no online store)
``LakefeedError``                500    any other lakefeed error, with its code
anything else                    500    ``internal``, with a request id only
=============================== ====== ==================================================
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from lakefeed.errors import (
    ColumnNotFoundError,
    ConfigError,
    LakefeedError,
    NotFoundError,
    OnlineStoreError,
    OnlineStoreUnavailableError,
    SchemaError,
    UnknownCategoryError,
)

__all__ = ["HTTPError", "error_body", "from_exception"]

logger = logging.getLogger("lakefeed.serving")

_STATUS: tuple[tuple[type[LakefeedError], int], ...] = (
    (OnlineStoreUnavailableError, 503),
    (OnlineStoreError, 500),
    (ColumnNotFoundError, 422),
    (NotFoundError, 404),
    (SchemaError, 422),
    (UnknownCategoryError, 422),
    (ConfigError, 500),
    (LakefeedError, 500),
)


@dataclass(frozen=True)
class HTTPError:
    """An error response: HTTP status, stable code, message and (for 500s) a request id.

    Example:
        >>> HTTPError(404, "view-not-found", "no feature view 'x'").body()
        {'error': {'code': 'view-not-found', 'message': "no feature view 'x'"}}
    """

    status: int
    code: str
    message: str
    request_id: str | None = None

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON body: ``{"error": {"code", "message"[, "request_id"]}}``."""
        return error_body(self.code, self.message, request_id=self.request_id)


def error_body(code: str, message: str, *, request_id: str | None = None) -> dict[str, dict[str, str]]:
    """The JSON error body every non-2xx response of the server has.

    Example:
        >>> error_body("unauthorized", "missing X-API-Key header")
        {'error': {'code': 'unauthorized', 'message': 'missing X-API-Key header'}}
    """
    error = {"code": code, "message": message}
    if request_id is not None:
        error["request_id"] = request_id
    return {"error": error}


def from_exception(exc: BaseException) -> HTTPError:
    """Translate an exception raised while serving a request into an :class:`HTTPError`.

    Lakefeed errors keep their code and message; any other exception becomes a 500 with code
    ``internal`` and a request id, its traceback logged under that id, its text never returned.

    Example:
        >>> from lakefeed.errors import OnlineStoreUnavailableError
        >>> err = from_exception(OnlineStoreUnavailableError("redis at 127.0.0.1:6379 is down"))
        >>> (err.status, err.code)
        (503, 'online-store-unavailable')
        >>> err = from_exception(RuntimeError("secret: password=hunter2"))
        >>> (err.status, err.code, "hunter2" in err.message, len(err.request_id or ""))
        (500, 'internal', False, 32)
    """
    if isinstance(exc, LakefeedError):
        status = next(s for cls, s in _STATUS if isinstance(exc, cls))
        request_id = None
        if status == 500:
            request_id = uuid.uuid4().hex
            logger.error("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
        return HTTPError(status, exc.code, str(exc), request_id)
    request_id = uuid.uuid4().hex
    logger.error("request %s failed with an unexpected error", request_id, exc_info=exc)
    return HTTPError(500, "internal", f"internal server error; quote request id {request_id}", request_id)
