"""The HTTP edge, in process on both backends: bounded query integers, cursors we did not issue,
405 / OPTIONS with the full Allow header, malformed ids answered like missing ones, and the edge
middleware (authentication first, once; body caps counted while the body is read)."""

from __future__ import annotations

import base64
import uuid
import warnings
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from core import auth
from core.config import Settings
from store.session import Database
from tests.api.conftest import bearer, drive
from tests.api.runs_fixtures import SPEC, api, dataset_id, sent, submit

__all__ = ["api", "dataset_id", "sent"]

ZERO_ID = "00000000-0000-0000-0000-000000000000"
KiB = 1024


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


HOSTILE_CURSORS = [
    _b64(f"0001-01-01T00:00:00+14:00|{ZERO_ID}"),  # UTC would be year 0: OverflowError
    _b64(f"9999-12-31T23:59:59.999999-23:59|{ZERO_ID}"),  # UTC would be year 10000
    _b64(f"0001-01-01T00:00:00+00:00|{ZERO_ID}"),  # no row is that old
    _b64(f"2024-05-01T12:00:00+02:00|{ZERO_ID}"),  # we issue UTC only
    _b64("2024-05-01T12:00:00|" + ZERO_ID),  # naive
    _b64("2024-05-01T12:00:00+00:00|not-a-uuid"),
    _b64("2024-05-01T12:00:00+00:00"),
    _b64(b"\xff\xfe|\x00"),  # not UTF-8
    "garbage",
    "%%",
    "Zm9v!!!",  # outside the base64 alphabet
    "é",
]


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.fixture
def run_id(api: TestClient, tenant_key: str, dataset_id: str) -> str:
    response = submit(api, tenant_key, dataset_id)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


# -- query integers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since_epoch=2147483648", "since_epoch"),  # was a 500 on PostgreSQL
        (f"since_epoch={10**30}", "since_epoch"),
        ("since_epoch=-1", "since_epoch"),
        ("max_points=100001", "max_points"),
        ("max_points=0", "max_points"),
    ],
)
def test_history_integers_are_bounded(
    api: TestClient, tenant_key: str, run_id: str, query: str, field: str
) -> None:
    response = api.get(f"/v1/runs/{run_id}/history?{query}", headers=bearer(tenant_key))
    assert response.status_code == 422, response.text
    error = _error(response)
    assert error["details"]["field"] == field and error["details"]["location"] == "query"
    assert field in error["message"]


def test_largest_epoch_is_answered(api: TestClient, tenant_key: str, run_id: str) -> None:
    url = f"/v1/runs/{run_id}/history?since_epoch=2147483647"
    response = api.get(url, headers=bearer(tenant_key))
    assert response.status_code == 200, response.text
    assert response.json()["epochs"] == []


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/datasets"])
def test_list_limits_are_bounded(client: TestClient, tenant_key: str, path: str) -> None:
    for value in ("0", "501", str(2**63), "-1"):
        response = client.get(f"{path}?limit={value}", headers=bearer(tenant_key))
        assert response.status_code == 422, response.text
        assert _error(response)["details"]["field"] == "limit"


def test_every_integer_query_parameter_has_bounds(client: TestClient) -> None:
    """The rule, for routes to come: an unbounded integer reaches the database (a 32-bit column
    on PostgreSQL answers a larger value with an error, a 500)."""
    spec = client.get("/openapi.json").json()
    unbounded = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                variants = schema.get("anyOf", [schema])
                for variant in variants:
                    if variant.get("type") != "integer":
                        continue
                    if "maximum" not in variant or "minimum" not in variant:
                        unbounded.append(f"{method.upper()} {path} ?{parameter['name']}")
    assert unbounded == []


# -- cursors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/datasets"])
@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
def test_hostile_cursors_are_400(
    client: TestClient, tenant_key: str, path: str, cursor: str
) -> None:
    response = client.get(path, params={"cursor": cursor}, headers=bearer(tenant_key))
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["code"] == "invalid_cursor" and error["details"] == {"field": "cursor"}


def test_issued_cursors_still_page(api: TestClient, tenant_key: str, dataset_id: str) -> None:
    ids = [submit(api, tenant_key, dataset_id).json()["id"] for _ in range(3)]
    first = api.get("/v1/runs?limit=2", headers=bearer(tenant_key)).json()
    rest = api.get(
        "/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=bearer(tenant_key)
    ).json()
    assert [r["id"] for r in first["items"] + rest["items"]] == ids[::-1]


# -- methods, OPTIONS and ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/runs/validate", "POST"),  # was read as a run id: 422
        ("PUT", f"/v1/datasets/{ZERO_ID}", "GET, DELETE"),
        ("PATCH", "/v1/runs", "GET, POST"),
        ("DELETE", f"/v1/runs/{ZERO_ID}/cancel", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_405_lists_every_method_of_the_path(
    client: TestClient, tenant_key: str, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=bearer(tenant_key))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    error = _error(response)
    assert error["code"] == "method_not_allowed"
    assert error["details"]["allowed_methods"] == allow.split(", ")


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        (f"/v1/datasets/{ZERO_ID}", {"GET", "DELETE"}),
        ("/v1/datasets", {"GET", "POST"}),
        ("/v1/runs/validate", {"POST"}),
        (f"/v1/models/{ZERO_ID}/predict", {"POST"}),
    ],
)
def test_options_needs_no_key_and_lists_the_methods(
    client: TestClient, path: str, allow: set[str]
) -> None:
    response = client.options(path)
    assert response.status_code == 204, response.text
    assert set(response.headers["allow"].split(", ")) == allow
    assert response.content == b""


def test_options_on_a_missing_path_is_404(client: TestClient) -> None:
    assert client.options("/v1/nothing-here").status_code == 404


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v1/runs/{}"),
        ("GET", "/v1/runs/{}/history"),
        ("POST", "/v1/runs/{}/cancel"),
        ("GET", "/v1/datasets/{}"),
        ("DELETE", "/v1/datasets/{}"),
        ("GET", "/v1/models/{}"),
        ("GET", "/v1/models/{}/weights"),
        ("POST", "/v1/models/{}/predict"),
    ],
)
def test_malformed_id_is_404_like_a_missing_one(
    client: TestClient, tenant_key: str, method: str, template: str
) -> None:
    """No route matches a path whose id is not a UUID (`{id:uuid}`): 404 in the envelope, where
    it used to be a 422. Its code is the router's `not_found`, not the resource's (it names no
    resource: a malformed id reveals nothing a client did not already know)."""
    kwargs: dict[str, Any] = {"headers": bearer(tenant_key)}
    if method == "POST":
        kwargs["json"] = {"inputs": [[1.0]]}
    missing = client.request(method, template.format(uuid.uuid4()), **kwargs)
    assert missing.status_code == 404 and _error(missing)["code"].endswith("not_found")
    for bad in ("not-a-uuid", "1", ZERO_ID[:-1] + "g", ZERO_ID + "0"):
        malformed = client.request(method, template.format(bad), **kwargs)
        assert malformed.status_code == 404, malformed.text
        assert _error(malformed)["code"] == "not_found"


def test_openapi_still_documents_path_ids(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, name in (
        ("/v1/runs/{run_id}", "run_id"),
        ("/v1/datasets/{dataset_id}", "dataset_id"),
        ("/v1/models/{model_id}/predict", "model_id"),
    ):
        for operation in paths[path].values():
            (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
            assert parameter["name"] == name and parameter["schema"]["format"] == "uuid"


# -- the edge middleware ---------------------------------------------------------------------


def test_without_a_key_nothing_under_v1_is_routed(client: TestClient) -> None:
    for method, path in (("GET", "/v1/runs/validate"), ("PUT", "/v1/datasets"), ("GET", "/v1/x")):
        response = client.request(method, path)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert _error(response)["code"] == "unauthorized"


def test_authenticated_and_counted_once_per_request(
    settings: Settings, db: Database, tenant_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middleware authenticates; the route's dependency reuses its principal (no second
    database lookup, no second count against the rate)."""
    lookups: list[str | None] = []
    real = auth.authenticate

    def counting(session: Any, key: str | None) -> auth.Principal:
        lookups.append(key)
        return real(session, key)

    monkeypatch.setattr(auth, "authenticate", counting)
    client = TestClient(
        create_app(settings.model_copy(update={"rate_limit_per_minute": 3}), database=db)
    )
    for _ in range(3):
        assert client.get("/v1/runs", headers=bearer(tenant_key)).status_code == 200
    assert lookups == [tenant_key] * 3  # auth_cache_seconds=0 in the test settings
    limited = client.get("/v1/runs", headers=bearer(tenant_key))
    assert limited.status_code == 429 and _error(limited)["code"] == "rate_limited"


def endless(chunk: int = 64 * KiB) -> Iterable[bytes]:
    yield b'{"dataset_id": "' + ZERO_ID.encode() + b'", "spec": {"name": "'
    while True:
        yield b"x" * chunk


SMALL_CAPS = {"max_json_body_bytes": 256 * KiB, "max_predict_body_bytes": 512 * KiB}


@pytest.fixture
def small_app(settings: Settings, db: Database) -> Any:
    return create_app(settings.model_copy(update=SMALL_CAPS), database=db)


@pytest.mark.parametrize("path", ["/v1/runs/validate", "/v1/runs"])
def test_no_key_reads_no_body(small_app: Any, path: str) -> None:
    status, body, headers, consumed = drive(small_app, path, endless(), key=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert consumed == 0 and headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "cap"),
    [
        ("/v1/runs/validate", SMALL_CAPS["max_json_body_bytes"]),
        (f"/v1/models/{ZERO_ID}/predict", SMALL_CAPS["max_predict_body_bytes"]),
    ],
)
def test_declared_length_over_the_cap_is_refused_unread(
    small_app: Any, tenant_key: str, path: str, cap: int
) -> None:
    status, body, headers, consumed = drive(
        small_app, path, endless(), key=tenant_key, content_length=cap + 1
    )
    assert status == 413 and consumed == 0
    assert body["error"]["code"] == "body_too_large"
    assert body["error"]["details"] == {"limit_bytes": cap}
    assert str(cap) in body["error"]["message"] and headers["connection"] == "close"


@pytest.mark.parametrize(
    ("path", "cap"),
    [
        ("/v1/runs/validate", SMALL_CAPS["max_json_body_bytes"]),
        ("/v1/runs", SMALL_CAPS["max_json_body_bytes"]),
        (f"/v1/models/{ZERO_ID}/predict", SMALL_CAPS["max_predict_body_bytes"]),
    ],
)
@pytest.mark.parametrize("declared", [None, 100], ids=["chunked", "lying-length"])
def test_streamed_body_is_cut_at_the_cap(
    small_app: Any, tenant_key: str, path: str, cap: int, declared: int | None
) -> None:
    status, body, headers, consumed = drive(
        small_app, path, endless(), key=tenant_key, content_length=declared
    )
    assert status == 413, body
    assert body["error"]["code"] == "body_too_large"
    assert body["error"]["details"] == {"limit_bytes": cap}
    assert cap < consumed <= cap + 64 * KiB + 100
    assert headers["connection"] == "close"


def test_a_body_under_the_cap_is_parsed(small_app: Any, tenant_key: str) -> None:
    body = orjson.dumps({"dataset_id": ZERO_ID, "spec": SPEC})
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    status, answer, _, consumed = drive(small_app, "/v1/runs/validate", chunks, key=tenant_key)
    assert consumed == len(body)
    assert status == 422 and answer["error"]["details"]["field"] == "dataset_id"  # no such one


def test_upload_of_another_media_type_is_415_before_its_size(
    small_app: Any, tenant_key: str, settings: Settings
) -> None:
    status, body, _, consumed = drive(
        small_app,
        "/v1/datasets",
        endless(),
        key=tenant_key,
        content_length=10 * settings.max_upload_bytes,
        content_type="application/x-www-form-urlencoded",
    )
    assert status == 415 and consumed == 0, body
