"""The feature server over real HTTP (starlette's TestClient) against a real store with a SQLite online store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

import lakefeed as lf
from lakefeed.errors import ConfigError, OnlineStoreUnavailableError
from lakefeed.serving import FeatureServer, create_app

pytestmark = pytest.mark.serve

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
_USER_FIELDS: list[pa.Field[Any]] = [
    pa.field("user_id", pa.int64()),
    pa.field("ts", pa.timestamp("us")),
    pa.field("clicks", pa.int64()),
    pa.field("last_seen", pa.timestamp("us")),
    pa.field("score", pa.decimal128(10, 2)),
]
USERS = pa.schema(_USER_FIELDS)
_ITEM_FIELDS: list[pa.Field[Any]] = [
    pa.field("item_id", pa.string()),
    pa.field("ts", pa.timestamp("us")),
    pa.field("price", pa.float64()),
]
ITEMS = pa.schema(_ITEM_FIELDS)
KEY = "s3cret-key"


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[lf.FeatureStore]:
    store = lf.FeatureStore(tmp_path / "home")
    users = store.create_feature_group("users", keys=["user_id"], event_time="ts", schema=USERS, ttl=timedelta(days=30))
    users.insert(
        {
            "user_id": [1, 2, 3],
            "ts": [NOW - timedelta(hours=1), NOW - timedelta(hours=2), NOW - timedelta(hours=3)],
            "clicks": [10, None, 30],
            "last_seen": [datetime(2026, 1, 2, 3, 4, 5), None, datetime(2026, 2, 1)],
            "score": [Decimal("1.50"), Decimal("2.25"), None],
        }
    )
    items = store.create_feature_group("items", keys=["item_id"], event_time="ts", schema=ITEMS)
    items.insert({"item_id": ["a", "b"], "ts": [NOW - timedelta(hours=1)] * 2, "price": [9.5, 20.0]})
    store.create_feature_view("ctr", ["users.*", "items.price"])
    store.create_feature_view("user_only", ["users.clicks"])
    yield store
    store.close()


@pytest.fixture
def client(fs: lf.FeatureStore) -> Iterator[TestClient]:
    with TestClient(create_app(fs)) as c:
        yield c


def _expected(fs: lf.FeatureStore, view: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the view returns in process, as JSON (datetimes ISO 8601, decimals as strings)."""
    vectors = fs.feature_view(view).get_feature_vectors(entities)
    return [
        {
            k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, Decimal) else v)
            for k, v in vec.items()
        }
        for vec in vectors
    ]


def test_one_entity_matches_get_feature_vector(fs: lf.FeatureStore, client: TestClient) -> None:
    entity = {"user_id": 1, "item_id": "a"}
    resp = client.post("/features/ctr", json={"entity": entity})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body == {"features": _expected(fs, "ctr", [entity])[0]}
    assert body["features"] == {
        "user_id": 1,
        "item_id": "a",
        "clicks": 10,
        "last_seen": "2026-01-02T03:04:05",
        "score": "1.50",
        "price": 9.5,
    }


def test_many_entities_match_get_feature_vectors_in_order(fs: lf.FeatureStore, client: TestClient) -> None:
    entities: list[dict[str, Any]] = [
        {"user_id": 3, "item_id": "b"},
        {"user_id": 2, "item_id": "zz"},
        {"user_id": 99, "item_id": "a"},
        {"user_id": 1, "item_id": "a"},
    ]
    resp = client.post("/features/ctr", json={"entities": entities})
    assert resp.status_code == 200
    features = resp.json()["features"]
    assert features == _expected(fs, "ctr", entities)
    assert [f["user_id"] for f in features] == [3, 2, 99, 1]
    assert features[1]["clicks"] is None  # a null feature value
    assert features[1]["price"] is None  # an item with no row
    assert features[2]["last_seen"] is None  # a user with no row
    assert client.post("/features/ctr", json={"entities": []}).json() == {"features": []}


def _post_concurrently(app: FeatureServer, bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """POST the bodies at once (one event loop, concurrent tasks) and return (status, json) in order."""
    import httpx2 as httpx

    async def run() -> list[tuple[int, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*(client.post("/features/ctr", json=b) for b in bodies))
        return [(r.status_code, r.json()) for r in responses]

    return asyncio.run(run())


class _CountingReads:
    """Counts the online store's reads (the real store answers them)."""

    def __init__(self, store: Any) -> None:
        self.calls: list[int] = []
        self._read = store.read

    def __call__(self, group: str, keys: list[Any], **kwargs: Any) -> Any:
        self.calls.append(len(keys))
        return self._read(group, keys, **kwargs)


def test_concurrent_requests_share_one_online_read_per_group(
    fs: lf.FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entities = [{"user_id": u, "item_id": i} for u in (1, 2, 3, 99) for i in ("a", "b", "zz")]
    bodies: list[dict[str, Any]] = [{"entity": e} for e in entities] + [{"entities": entities[:5]}]
    counting = _CountingReads(fs.online_store)
    monkeypatch.setattr(fs.online_store, "read", counting)
    answers = _post_concurrently(create_app(fs), bodies)
    assert [status for status, _ in answers] == [200] * len(bodies)
    assert [body["features"] for _, body in answers[:-1]] == _expected(fs, "ctr", entities)
    assert answers[-1][1]["features"] == _expected(fs, "ctr", entities[:5])
    # 13 requests, 17 entities: one read per group (users, items) for all of them
    assert sorted(counting.calls[:2]) == [len(entities) + 5] * 2


def test_a_bad_request_among_concurrent_ones_fails_alone(fs: lf.FeatureStore) -> None:
    good = [{"entity": {"user_id": u, "item_id": "a"}} for u in (1, 2, 3)]
    bad = {"entity": {"user_id": 1}}  # no item_id: the items group cannot be read
    answers = _post_concurrently(create_app(fs), [good[0], bad, good[1], good[2]])
    assert [status for status, _ in answers] == [200, 422, 200, 200]
    assert "item_id" in answers[1][1]["error"]["message"]
    assert [body["features"] for _, body in (answers[0], *answers[2:])] == _expected(
        fs, "ctr", [g["entity"] for g in good]
    )


def test_a_store_down_fails_every_concurrent_request_with_503_reading_once(
    fs: lf.FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def down(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise OnlineStoreUnavailableError("redis at 127.0.0.1:6379 is down")

    monkeypatch.setattr(fs.online_store, "read", down)
    answers = _post_concurrently(create_app(fs), [{"entity": {"user_id": u, "item_id": "a"}} for u in (1, 2, 3)])
    assert [status for status, _ in answers] == [503] * 3
    assert len(calls) == 1  # not retried request by request


def test_malformed_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/features/ctr", content=b'{"entity": {"user_id": 1', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "malformed-json"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"entities": {"user_id": 1}}, "at `$.entities`"),
        ({"entities": [{"user_id": 1.5}]}, "Expected `int | str`, got `float`"),
        ({"entity": {"user_id": 1}, "extra": 1}, "unknown field `extra`"),
        ([{"user_id": 1}], "Expected `object`"),
        ({}, "exactly one of"),
        ({"entity": {"user_id": 1, "item_id": "a"}, "entities": []}, "exactly one of"),
    ],
)
def test_a_wrong_shape_is_422_with_the_reason(client: TestClient, body: object, reason: str) -> None:
    resp = client.post("/features/ctr", json=body)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid-request"
    assert reason in error["message"]


def test_a_missing_key_column_is_422_naming_it(client: TestClient) -> None:
    resp = client.post("/features/ctr", json={"entities": [{"user_id": 1}]})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "column-not-found"
    assert "item_id" in error["message"]


def test_features_picks_some_of_the_view(fs: lf.FeatureStore, client: TestClient) -> None:
    entities = [{"user_id": 1, "item_id": "a"}, {"user_id": 3, "item_id": "b"}]
    resp = client.post("/features/ctr", json={"entities": entities, "features": ["price", "clicks"]})
    assert resp.status_code == 200
    full = _expected(fs, "ctr", entities)
    assert resp.json()["features"] == [
        {"user_id": v["user_id"], "item_id": v["item_id"], "clicks": v["clicks"], "price": v["price"]} for v in full
    ]
    one = client.post("/features/ctr", json={"entity": entities[0], "features": []})
    assert one.json() == {"features": {"user_id": 1, "item_id": "a"}}


def test_an_unknown_feature_is_422_naming_the_view_s_features(client: TestClient) -> None:
    resp = client.post(
        "/features/ctr", json={"entity": {"user_id": 1, "item_id": "a"}, "features": ["clicks", "ctr_7d"]}
    )
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid-request"
    assert "feature view 'ctr' has no feature(s) ['ctr_7d']" in error["message"]
    assert "['clicks', 'last_seen', 'score', 'price']" in error["message"]


def test_an_entity_field_that_is_not_a_key_is_422(client: TestClient) -> None:
    resp = client.post("/features/user_only", json={"entities": [{"user_id": 1}, {"user_id": 2, "userid": 3}]})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid-request"
    assert (
        "entity field(s) ['userid'] are not keys of feature view 'user_only'; its keys are ['user_id']"
        in error["message"]
    )


def test_a_key_of_the_wrong_type_is_422(client: TestClient) -> None:
    resp = client.post("/features/user_only", json={"entity": {"user_id": "abc"}})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "schema"
    assert "user_id" in resp.json()["error"]["message"]


def test_an_unknown_view_is_404_naming_the_views(client: TestClient) -> None:
    resp = client.post("/features/nope", json={"entity": {"user_id": 1}})
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "not-found"
    assert "'nope'" in error["message"]
    assert "['ctr', 'user_only']" in error["message"]


def test_a_view_created_after_start_is_served(fs: lf.FeatureStore, client: TestClient) -> None:
    assert client.post("/features/late", json={"entity": {"item_id": "a"}}).status_code == 404
    fs.create_feature_view("late", ["items.price"])
    resp = client.post("/features/late", json={"entity": {"item_id": "a"}})
    assert resp.status_code == 200
    assert resp.json() == {"features": {"item_id": "a", "price": 9.5}}


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert client.get("/nope").status_code == 404
    assert client.get("/features/ctr").status_code == 405
    assert client.post("/health").status_code == 405


def test_api_key(fs: lf.FeatureStore) -> None:
    with TestClient(create_app(fs, api_key=KEY)) as client:
        body = {"entity": {"user_id": 1}}
        missing = client.post("/features/user_only", json=body)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"
        assert client.post("/features/user_only", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/metrics").status_code == 401
        ok = client.post("/features/user_only", json=body, headers={"X-API-Key": KEY})
        assert ok.status_code == 200
        assert ok.json() == {"features": {"user_id": 1, "clicks": 10}}
        assert client.get("/metrics", headers={"x-api-key": KEY}).status_code == 200
        assert client.get("/health").status_code == 200  # probes need no key
        doc = client.get("/openapi.json").json()
        assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


def test_a_body_over_the_limit_is_413(fs: lf.FeatureStore) -> None:
    with TestClient(create_app(fs, max_body_bytes=100)) as client:
        small = client.post("/features/user_only", json={"entity": {"user_id": 1}})
        assert small.status_code == 200
        big = client.post("/features/user_only", json={"entities": [{"user_id": i} for i in range(50)]})
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "body-too-large"


def test_a_streamed_body_over_the_limit_is_413_without_content_length(fs: lf.FeatureStore) -> None:
    app = create_app(fs, max_body_bytes=100)
    chunks = [b'{"entities": [', b'{"user_id": 1},' * 10, b"]}"]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/features/user_only", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413


def test_an_unavailable_online_store_is_503(
    fs: lf.FeatureStore, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise OnlineStoreUnavailableError("redis at 127.0.0.1:6379 is down")

    monkeypatch.setattr(fs.online_store, "read", down)
    monkeypatch.setattr(fs.online_store, "groups", down)
    resp = client.post("/features/user_only", json={"entity": {"user_id": 1}})
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "online-store-unavailable"
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["online_store"] == "unreachable"


def test_an_unexpected_error_is_500_with_a_request_id_only(
    fs: lf.FeatureStore, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("password=hunter2 in /etc/secret")

    monkeypatch.setattr(fs.online_store, "read", boom)
    resp = client.post("/features/user_only", json={"entity": {"user_id": 1}})
    assert resp.status_code == 500
    error = resp.json()["error"]
    assert error["code"] == "internal"
    assert len(error["request_id"]) == 32
    assert error["request_id"] in error["message"]
    assert "hunter2" not in resp.text
    assert "Traceback" not in resp.text
    assert "RuntimeError" not in resp.text


def test_health(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "online_store": "ok"}


def test_metrics_count_requests_and_latency(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/features/user_only", json={"entity": {"user_id": 1}}).status_code == 200
    assert client.post("/features/nope", json={"entity": {"user_id": 1}}).status_code == 404
    client.get("/health")
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = resp.text
    assert "# TYPE lakefeed_http_requests_total counter" in text
    assert 'lakefeed_http_requests_total{route="/features/{view}",method="POST",status="200"} 3' in text
    assert 'lakefeed_http_requests_total{route="/features/{view}",method="POST",status="404"} 1' in text
    assert 'lakefeed_http_requests_total{route="/health",method="GET",status="200"} 1' in text
    assert "# TYPE lakefeed_http_request_duration_seconds histogram" in text
    assert 'lakefeed_http_request_duration_seconds_bucket{route="/features/{view}",le="+Inf"} 4' in text
    assert 'lakefeed_http_request_duration_seconds_count{route="/features/{view}"} 4' in text
    assert 'lakefeed_http_request_duration_seconds_sum{route="/features/{view}"}' in text


def test_openapi_is_json_listing_the_routes_and_views(client: TestClient) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    doc = json.loads(resp.content)
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/features/{view}", "/health", "/metrics", "/openapi.json"}
    post = doc["paths"]["/features/{view}"]["post"]
    assert post["parameters"][0]["schema"]["enum"] == ["ctr", "user_only"]
    assert {"200", "400", "401", "404", "413", "422", "500", "503"} <= set(post["responses"])
    refs = json.dumps(doc).count("#/components/schemas/")
    assert refs > 0
    for name in ("FeatureRequest", "FeatureResponse", "Error"):
        assert name in doc["components"]["schemas"]


def test_create_app_validates_its_arguments(fs: lf.FeatureStore) -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(fs, max_body_bytes=0)
    with pytest.raises(ValueError, match="api_key"):
        create_app(fs, api_key="")


def test_import_lakefeed_does_not_import_the_server() -> None:
    code = (
        "import sys, lakefeed; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'orjson', 'lakefeed.serving') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_serve_runs_uvicorn_with_the_app(
    fs: lf.FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from lakefeed.cli import app

    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda server, **kwargs: calls.append((server, kwargs)))
    monkeypatch.setenv("LAKEFEED_API_KEY", KEY)
    result = CliRunner().invoke(app, ["serve", "--home", str(tmp_path / "home"), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "ctr" in result.output
    server, kwargs = calls[0]
    assert isinstance(server, FeatureServer)
    assert kwargs["port"] == 8123
    assert kwargs["host"] == "127.0.0.1"
    from lakefeed.serving.protocol import OneWriteHttpToolsProtocol

    assert kwargs["http"] is OneWriteHttpToolsProtocol  # each response in one write
    with TestClient(server) as client:
        assert client.post("/features/user_only", json={"entity": {"user_id": 1}}).status_code == 401


def test_a_real_uvicorn_server_serves_vectors(fs: lf.FeatureStore) -> None:
    import socket
    import threading
    import time
    import urllib.request

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(fs), host="127.0.0.1", port=port, log_level="error", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/features/ctr",
            data=json.dumps({"entity": {"user_id": 3, "item_id": "b"}}).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body == {"features": _expected(fs, "ctr", [{"user_id": 3, "item_id": "b"}])[0]}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("key", [2**64, 2**63, -(2**63) - 1])
def test_a_key_beyond_64_bits_is_422(client: TestClient, key: int) -> None:
    for body in ({"entity": {"user_id": key}}, {"entities": [{"user_id": 1}, {"user_id": key}]}):
        resp = client.post("/features/user_only", json=body)
        assert resp.status_code == 422, resp.text
        assert "922337203685477580" in resp.json()["error"]["message"]  # the 64-bit bound an online store keys by


def test_an_unseen_category_under_a_view_transform_is_422(fs: lf.FeatureStore, tmp_path: Path) -> None:
    import lakefeed.transforms as lt

    fitted = lt.Pipeline([lt.OneHotEncoder(columns=["item_id"])]).fit(pa.table({"item_id": ["a", "b"]}))
    fs.create_feature_view("encoded", ["items.price"], transform=fitted)
    with TestClient(create_app(fs)) as client:
        assert client.post("/features/encoded", json={"entity": {"item_id": "a"}}).status_code == 200
        resp = client.post("/features/encoded", json={"entity": {"item_id": "zz"}})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "unknown-category"
    assert "handle_unknown='ignore'" in resp.json()["error"]["message"]


def test_features_are_the_names_a_view_transform_serves(fs: lf.FeatureStore) -> None:
    import lakefeed.transforms as lt

    schema = pa.schema(
        [("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("color", pa.string()), ("size", pa.int64())]
    )
    colors = fs.create_feature_group("colors", keys=["user_id"], event_time="ts", schema=schema)
    colors.insert({"user_id": [1, 2], "ts": [NOW - timedelta(hours=1)] * 2, "color": ["red", "blue"], "size": [3, 4]})
    fitted = lt.Pipeline([lt.OneHotEncoder(columns=["color"])]).fit(pa.table({"color": ["blue", "red"]}))
    view = fs.create_feature_view("painted", ["colors.color", "colors.size"], transform=fitted)
    assert view.served_features == ["color_blue", "color_red", "size"]
    assert set(view.get_feature_vector({"user_id": 1})) == {"user_id", *view.served_features}
    with TestClient(create_app(fs)) as client:
        picked = client.post("/features/painted", json={"entity": {"user_id": 1}, "features": ["color_red", "size"]})
        assert picked.json() == {"features": {"user_id": 1, "color_red": 1.0, "size": 3}}
        refused = client.post("/features/painted", json={"entity": {"user_id": 1}, "features": ["color"]})
    assert refused.status_code == 422
    assert (
        "has no feature(s) ['color']; its features are ['color_blue', 'color_red', 'size']"
        in refused.json()["error"]["message"]
    )


@pytest.mark.parametrize("key", ["", "  "])
def test_cli_serve_refuses_an_empty_api_key(
    fs: lf.FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from lakefeed.cli import app

    calls: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda server, **kwargs: calls.append(server))
    monkeypatch.setenv("LAKEFEED_API_KEY", key)
    result = CliRunner().invoke(app, ["serve", "--home", str(tmp_path / "home")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "API key is empty" in str(result.exception)
    assert calls == []  # never served without the key it was given
