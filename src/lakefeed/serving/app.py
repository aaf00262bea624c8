"""The feature server: a raw ASGI application serving feature vectors over HTTP.

The hot path (``POST /features/{view}``) is plain ASGI: no framework routing or middleware per
request. Bodies are decoded and validated with msgspec, responses encoded with orjson, and the
views (with their group definitions and fitted pipelines) are cached per process; a request
naming a view the process has not seen reloads it from the registry, so views created after the
server started are served without a restart.

Routes (see :func:`openapi_document` for the full contract):

* ``POST /features/{view}``: body ``{"entity": {"user_id": 7}}`` answers
  ``{"features": {"user_id": 7, "clicks": 15, ...}}``; body ``{"entities": [{...}, ...]}``
  answers ``{"features": [{...}, ...]}`` in the request's order. Each vector is the entity's
  keys plus the view's features, as :meth:`FeatureView.get_feature_vectors` returns them
  (``null`` where a group has no live row); ``"features": ["clicks", ...]`` in the body keeps
  only those. An entity field that is not a key of the view, or an unknown feature, is a 422.
* ``GET /health``: 200 ``{"status": "ok", "online_store": "ok"}``, or 503 when the online store
  cannot be reached.
* ``GET /metrics``: Prometheus text: requests by route, method and status, and a latency histogram.
* ``GET /openapi.json``: the OpenAPI 3.1 document.

Errors are ``{"error": {"code", "message"[, "request_id"]}}`` with the status from
:mod:`lakefeed.serving.errors`: malformed JSON 400, missing or wrong API key 401, unknown view or
route 404, wrong method 405, body too large 413, wrong shape, a missing or unknown key column or an
unknown feature 422, online
store down 503, anything unexpected 500 with a request id only.

Lookups of concurrent requests are coalesced: a request queues its entities and the first one
schedules a flush for the next turn of the event loop, which reads every queued entity of a view
in one online read (one SQLite query, one Redis ``MGET``) and hands each request its own vectors.
Under load a Redis round trip then serves every request that arrived meanwhile instead of one;
alone, a request waits one loop turn (microseconds). If the joint read fails for a reason other
than the store being down, each request is read alone, so one bad request fails only itself.
The read runs on the event loop thread (an embedded SQLite read takes tens of microseconds;
handing it to a thread pool would cost more than it saves). Run several uvicorn workers to use
more cores.
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from lakefeed.errors import MissingDependencyError, NotFoundError, OnlineStoreUnavailableError
from lakefeed.serving.errors import HTTPError, error_body, from_exception
from lakefeed.store.views import FeatureView

if TYPE_CHECKING:
    from lakefeed.store.definitions import FeatureGroupSpec, FeatureViewSpec
    from lakefeed.store.feature_store import FeatureStore
    from lakefeed.transforms import Pipeline

try:
    import orjson
except ImportError as _exc:  # pragma: no cover - the serve extra installs it
    _msg = "the feature server needs 'orjson'; install it with: pip install 'lakefeed[serve]'"
    raise MissingDependencyError(_msg) from _exc

__all__ = ["FeatureServer", "create_app", "openapi_document"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FEATURES_PREFIX = "/features/"
FEATURES_ROUTE = "/features/{view}"
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Upper bounds (seconds) of the request latency histogram's buckets."""

PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


_Key = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | str  # what an online store keys by


class _FeatureRequest(msgspec.Struct, forbid_unknown_fields=True):
    entity: dict[str, _Key] | None = None
    entities: list[dict[str, _Key]] | None = None
    features: list[str] | None = None


_DECODER = msgspec.json.Decoder(_FeatureRequest)


def _check_request(view: FeatureView, entities: list[dict[str, Any]], features: list[str] | None) -> str | None:
    """Why a request for ``view`` is refused (an unknown entity field or feature), or None."""
    keys = view.keys
    for entity in entities:
        if len(entity) != len(keys) or any(k not in keys for k in entity):
            unknown = [k for k in entity if k not in keys]
            if unknown:
                return f"entity field(s) {unknown} are not keys of feature view {view.name!r}; its keys are {keys}"
            break  # a missing key is named by the lookup
    if features:
        served = view.served_features
        known = set(served)
        unknown = [f for f in features if f not in known]
        if unknown:
            return f"feature view {view.name!r} has no feature(s) {unknown}; its features are {served}"
    return None


def _default(value: Any) -> Any:
    """Encode the Arrow values orjson does not know (Decimal, timedelta, bytes)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    msg = f"cannot encode {type(value).__name__} as JSON"
    raise TypeError(msg)


def _dumps(value: object) -> bytes:
    return orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS)


class _ServedView(FeatureView):
    """A feature view whose group definitions and pipeline are read once, at construction."""

    def __init__(self, store: FeatureStore, spec: FeatureViewSpec) -> None:
        super().__init__(store, spec)
        self._cached_groups = super()._groups()
        self._cached_pipeline = super().pipeline

    def _groups(self) -> dict[str, FeatureGroupSpec]:
        return self._cached_groups

    @property
    def pipeline(self) -> Pipeline | None:
        """The view's transform pipeline, parsed once."""
        return self._cached_pipeline


class _Metrics:
    """Request counts and latency histograms per route, rendered as Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            buckets = self._buckets.get(route)
            if buckets is None:
                buckets = self._buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
                self._sums[route] = 0.0
            buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._sums[route] += seconds

    def render(self) -> bytes:
        lines = [
            "# HELP lakefeed_http_requests_total HTTP requests served, by route, method and status.",
            "# TYPE lakefeed_http_requests_total counter",
        ]
        with self._lock:
            counts = sorted(self._counts.items())
            buckets = {r: list(b) for r, b in self._buckets.items()}
            sums = dict(self._sums)
        for (route, method, status), n in counts:
            lines.append(f'lakefeed_http_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}')
        lines += [
            "# HELP lakefeed_http_request_duration_seconds Time from request start to response sent, by route.",
            "# TYPE lakefeed_http_request_duration_seconds histogram",
        ]
        for route in sorted(buckets):
            cumulative = 0
            for bound, n in zip([*LATENCY_BUCKETS, None], buckets[route], strict=True):
                cumulative += n
                le = "+Inf" if bound is None else repr(bound)
                lines.append(f'lakefeed_http_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {cumulative}')
            lines.append(f'lakefeed_http_request_duration_seconds_sum{{route="{route}"}} {sums[route]!r}')
            lines.append(f'lakefeed_http_request_duration_seconds_count{{route="{route}"}} {cumulative}')
        return ("\n".join(lines) + "\n").encode()


class FeatureServer:
    """The ASGI application :func:`create_app` returns (an ``async (scope, receive, send)`` callable).

    Args:
        store: The feature store whose views are served.
        api_key: If set, ``/features/...`` and ``/metrics`` need this value in ``X-API-Key``.
        max_body_bytes: Larger request bodies are refused with 413.
    """

    def __init__(self, store: FeatureStore, *, api_key: str | None = None, max_body_bytes: int = 1 << 20) -> None:
        if max_body_bytes <= 0:
            msg = f"max_body_bytes must be positive, got {max_body_bytes}"
            raise ValueError(msg)
        if api_key is not None and not api_key:
            msg = "api_key must be a non-empty string or None"
            raise ValueError(msg)
        self.store = store
        self.max_body_bytes = max_body_bytes
        self._api_key = api_key.encode() if api_key is not None else None
        self._views: dict[str, _ServedView] = {}
        self._views_lock = threading.Lock()
        self._lookups = _Coalescer()
        self.metrics = _Metrics()

    # -- views ----------------------------------------------------------------------------------

    def view(self, name: str) -> FeatureView:
        """The served view ``name``, cached; an unknown name is looked up in the registry again.

        Raises:
            NotFoundError: No such view; the message names the views there are.
        """
        found = self._views.get(name)
        if found is not None:
            return found
        with self._views_lock:
            names = self.store.list_feature_views()
            if name not in names:
                msg = f"no feature view {name!r}; the views are {names}"
                raise NotFoundError(msg)
            found = _ServedView(self.store, self.store.registry.get_view(name))
            self._views[name] = found
            return found

    def reload(self) -> None:
        """Forget the cached views (changed definitions are read again on their next request)."""
        with self._views_lock:
            self._views.clear()

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (``http`` or ``lifespan``)."""
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":  # pragma: no cover - websockets are not served
            return
        start = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        route = path
        content_type = b"application/json"
        try:
            if path.startswith(FEATURES_PREFIX):
                route = FEATURES_ROUTE
                status, body = await self._features(scope, receive, path[len(FEATURES_PREFIX) :], method)
            elif path == "/health":
                status, body = self._get_only(method) or self._health()
            elif path == "/metrics":
                status, body = self._get_only(method) or self._check_key(scope) or (200, self.metrics.render())
                if status == 200:
                    content_type = PROMETHEUS_CONTENT_TYPE
            elif path == "/openapi.json":
                status, body = self._get_only(method) or (200, _dumps(openapi_document(self)))
            else:
                route = "other"
                status, body = 404, _dumps(error_body("route-not-found", f"no route {path!r}; see /openapi.json"))
        except Exception as exc:  # the boundary: everything becomes a safe response
            err = from_exception(exc)
            status, body = err.status, _dumps(err.body())
        await _send(send, status, body, content_type=content_type)
        self.metrics.observe(route, method, status, time.perf_counter() - start)

    def _get_only(self, method: str) -> tuple[int, bytes] | None:
        if method in ("GET", "HEAD"):
            return None
        return 405, _dumps(error_body("method-not-allowed", f"{method} is not allowed here; use GET"))

    def _check_key(self, scope: Scope) -> tuple[int, bytes] | None:
        if self._api_key is None:
            return None
        given = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                given = value
                break
        if given is None:
            return 401, _dumps(error_body("unauthorized", "this server needs an API key in the X-API-Key header"))
        if not hmac.compare_digest(given, self._api_key):
            return 401, _dumps(error_body("unauthorized", "the X-API-Key header does not hold a valid key"))
        return None

    async def _features(self, scope: Scope, receive: Receive, name: str, method: str) -> tuple[int, bytes]:
        if method != "POST":
            return 405, _dumps(error_body("method-not-allowed", f"{method} is not allowed here; use POST"))
        refused = self._check_key(scope)
        if refused is not None:
            return refused
        view = self.view(name)
        raw = await self._body(scope, receive)
        if isinstance(raw, HTTPError):
            return raw.status, _dumps(raw.body())
        try:
            request = _DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            return 422, _dumps(
                error_body(
                    "invalid-request", f'{exc}; expected {{"entity": {{...}}}} or {{"entities": [{{...}}, ...]}}'
                )
            )
        except msgspec.DecodeError as exc:
            return 400, _dumps(error_body("malformed-json", f"the body is not valid JSON: {exc}"))
        if (request.entity is None) == (request.entities is None):
            msg = 'the body needs exactly one of "entity" (an object) or "entities" (a list of objects)'
            return 422, _dumps(error_body("invalid-request", msg))
        entities = [request.entity] if request.entity is not None else request.entities or []
        reason = _check_request(view, entities, request.features)
        if reason is not None:
            return 422, _dumps(error_body("invalid-request", reason))
        vectors = await self._lookups.lookup(view, entities) if entities else []
        if request.features is not None:
            keep = {*view.keys, *request.features}
            vectors = [{k: v for k, v in vector.items() if k in keep} for vector in vectors]
        return 200, _dumps({"features": vectors[0] if request.entity is not None else vectors})

    async def _body(self, scope: Scope, receive: Receive) -> bytes | HTTPError:
        too_large = HTTPError(413, "body-too-large", f"the request body is larger than {self.max_body_bytes} bytes")
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return too_large
                except ValueError:
                    return HTTPError(400, "bad-request", "the Content-Length header is not a number")
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _health(self) -> tuple[int, bytes]:
        store = self.store.online_store
        if store is None:
            return 503, _dumps({"status": "unavailable", "online_store": "not configured"})
        try:
            store.groups()
        except Exception as exc:  # reachability is the answer, not an error
            err = from_exception(exc)
            body = {"status": "unavailable", "online_store": "unreachable", "error": err.body()["error"]}
            return 503, _dumps(body)
        return 200, _dumps({"status": "ok", "online_store": "ok"})


class _Coalescer:
    """Reads the entities of the requests queued within one event-loop turn together, per view."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[FeatureView, list[tuple[list[Any], asyncio.Future[list[Any]]]]]] = {}

    async def lookup(self, view: FeatureView, entities: list[Any]) -> list[Any]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.setdefault(view.name, (view, []))[1].append((entities, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        now = datetime.now(UTC)
        for view, queued in pending.values():
            if len(queued) > 1:
                try:
                    vectors = view.get_feature_vectors([e for entities, _ in queued for e in entities], now=now)
                except OnlineStoreUnavailableError as exc:  # down for all alike: no point asking again
                    for _, future in queued:
                        _settle(future, exc)
                    continue
                except Exception:  # a bad request among them: read each alone, so it fails alone
                    pass
                else:
                    start = 0
                    for entities, future in queued:
                        _settle(future, vectors[start : start + len(entities)])
                        start += len(entities)
                    continue
            for entities, future in queued:
                try:
                    _settle(future, view.get_feature_vectors(entities, now=now))
                except Exception as exc:
                    _settle(future, exc)


def _settle(future: asyncio.Future[list[Any]], outcome: list[Any] | Exception) -> None:
    if future.done():  # the request went away (client disconnected, task cancelled)
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def _send(send: Send, status: int, body: bytes, *, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(store: FeatureStore, *, api_key: str | None = None, max_body_bytes: int = 1 << 20) -> FeatureServer:
    """The feature server's ASGI application over ``store`` (run it with uvicorn or ``lakefeed serve``).

    Args:
        store: The feature store whose views are served (it needs an online store).
        api_key: If set, ``POST /features/...`` and ``GET /metrics`` need it in the ``X-API-Key``
            header (``/health`` and ``/openapi.json`` stay open for probes and tooling).
        max_body_bytes: Request bodies above this size are refused with 413.

    Returns:
        An ASGI application.

    Raises:
        ValueError: ``max_body_bytes`` is not positive or ``api_key`` is empty.

    Example:
        >>> import lakefeed as lf, tempfile
        >>> from lakefeed.serving import create_app
        >>> app = create_app(lf.FeatureStore(tempfile.mkdtemp()), api_key="s3cret")
        >>> sorted(openapi_document(app)["paths"])
        ['/features/{view}', '/health', '/metrics', '/openapi.json']
    """
    return FeatureServer(store, api_key=api_key, max_body_bytes=max_body_bytes)


def _error_response(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(app: FeatureServer) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s routes; ``{view}`` is enumerated with the registered views.

    Example:
        >>> import lakefeed as lf, tempfile
        >>> doc = openapi_document(create_app(lf.FeatureStore(tempfile.mkdtemp())))
        >>> doc["openapi"], doc["paths"]["/features/{view}"]["post"]["operationId"]
        ('3.1.0', 'getFeatureVectors')
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        lakefeed_version = version("lakefeed")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        lakefeed_version = "0.0.0"
    secured = app._api_key is not None
    security: list[dict[str, list[str]]] = [{"ApiKey": []}] if secured else []
    key_value = {"oneOf": [{"type": "integer"}, {"type": "string"}]}
    entity = {"type": "object", "additionalProperties": key_value, "description": "Key column -> key value."}
    vector = {
        "type": "object",
        "description": "The entity's keys plus the view's features (null where a group has no live row).",
        "additionalProperties": True,
    }
    views = app.store.list_feature_views()
    feature_post: dict[str, Any] = {
        "operationId": "getFeatureVectors",
        "summary": "The latest feature vector(s) of one or many entities from the online store.",
        "parameters": [
            {
                "name": "view",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": views} if views else {"type": "string"},
                "description": "A registered feature view.",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeatureRequest"}}},
        },
        "responses": {
            "200": {
                "description": "One vector for `entity`, a list in request order for `entities`.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeatureResponse"}}},
            },
            "400": _error_response("The body is not valid JSON."),
            "401": _error_response("Missing or wrong X-API-Key."),
            "404": _error_response("Unknown view; the message names the views."),
            "413": _error_response(f"The body is larger than {app.max_body_bytes} bytes."),
            "422": _error_response(
                "Wrong body shape, a key of the wrong type, a missing or unknown key column, or an unknown "
                "feature (named)."
            ),
            "500": _error_response("Unexpected error; the body holds a request id only."),
            "503": _error_response("The online store cannot be reached."),
        },
        "security": security,
    }
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "lakefeed feature server", "version": lakefeed_version},
        "paths": {
            FEATURES_ROUTE: {"post": feature_post},
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness and online store reachability.",
                    "responses": {
                        "200": {"description": "Serving; the online store answers."},
                        "503": {"description": "The online store cannot be reached."},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics: requests by route/method/status, latency histogram.",
                    "responses": {"200": {"description": "Prometheus text format 0.0.4.", **text}},
                    "security": security,
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI 3.1 JSON."}},
                }
            },
        },
        "components": {
            "schemas": {
                "Entity": entity,
                "FeatureRequest": {
                    "type": "object",
                    "description": "Exactly one of `entity` or `entities`; optionally the features wanted.",
                    "properties": {
                        "entity": {"$ref": "#/components/schemas/Entity"},
                        "entities": {"type": "array", "items": {"$ref": "#/components/schemas/Entity"}},
                        "features": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Only these features of the view (default: all of them).",
                        },
                    },
                    "additionalProperties": False,
                    "oneOf": [{"required": ["entity"]}, {"required": ["entities"]}],
                },
                "FeatureResponse": {
                    "type": "object",
                    "required": ["features"],
                    "properties": {"features": {"oneOf": [vector, {"type": "array", "items": vector}]}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "request_id": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}} if secured else {},
        },
    }
    return doc
