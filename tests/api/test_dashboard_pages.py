"""The dashboard's routes on both backends, without a browser: what a person's bad input gets
(a 4xx page naming it, never a 500), sign-in and sign-out rules, and tenant scoping."""

from __future__ import annotations

import re
import uuid
import warnings

import pytest

from api.app import create_app
from core.config import Settings
from store.session import Database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def browser(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, database=db), follow_redirects=False)


def _sign_in(browser: TestClient, key: str) -> str:
    """Signs the client in; returns the pages' CSRF token."""
    assert browser.post("/ui/login", data={"api_key": key}).status_code == 303
    page = browser.get("/ui/runs")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match is not None
    return match[1]


def test_pages_need_a_session(browser: TestClient, tenant_key: str) -> None:
    assert browser.get("/").headers["location"] == "/ui/runs"
    for path in ("/ui/runs", "/ui/datasets", f"/ui/runs/{uuid.uuid4()}", "/ui/runs/new"):
        response = browser.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/ui/login", path
    # A key in the Authorization header is for the API, not a page session.
    assert (
        browser.get("/ui/runs", headers={"Authorization": f"Bearer {tenant_key}"}).status_code
        == 303
    )
    assert browser.get("/ui/login").status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "named"),
    [
        ("/ui/runs?page=0", 422, "page"),
        ("/ui/runs?page=notanumber", 422, "page"),
        ("/ui/runs?sort=name", 422, "sort"),
        ("/ui/runs?status=bogus", 422, "status"),
        ("/ui/runs?dataset_id=not-a-uuid", 422, "dataset_id"),
        ("/ui/runs?name=" + "x" * 300, 422, "name"),
        ("/ui/compare", 422, "run"),
        ("/ui/compare?" + "&".join(f"run={uuid.uuid4()}" for _ in range(11)), 422, "10"),
        (f"/ui/runs/{uuid.uuid4()}", 404, "run not found"),
        (f"/ui/runs/{uuid.uuid4()}/history.csv", 404, "run not found"),
        (f"/ui/models/{uuid.uuid4()}", 404, "not found"),
        (f"/ui/datasets/{uuid.uuid4()}", 404, "not found"),
        ("/ui/datasets?cursor=%%%", 400, "cursor"),
        ("/ui/no-such-page", 404, "not_found"),
    ],
)
def test_bad_input_is_a_page_that_names_it(
    browser: TestClient, tenant_key: str, path: str, status: int, named: str
) -> None:
    _sign_in(browser, tenant_key)
    response = browser.get(path)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' in response.text and named in response.text


def test_sign_in_and_out(browser: TestClient, tenant_key: str) -> None:
    refused = browser.post("/ui/login", data={"api_key": "dsk_000000000000_nope"})
    assert refused.status_code == 401 and "invalid API key" in refused.text
    assert "set-cookie" not in refused.headers
    too_long = browser.post("/ui/login", data={"api_key": "x" * 600})
    assert too_long.status_code == 422 and "api_key" in too_long.text
    cross_site = browser.post(
        "/ui/login", data={"api_key": tenant_key}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403 and "set-cookie" not in cross_site.headers
    csrf = _sign_in(browser, tenant_key)
    assert browser.post("/ui/logout", data={"csrf_token": "wrong"}).status_code == 403
    assert browser.get("/ui/runs").status_code == 200  # still signed in
    assert browser.post("/ui/logout", data={"csrf_token": csrf}).status_code == 303
    assert browser.get("/ui/runs").status_code == 303  # the server forgot the session


def test_pages_only_show_the_tenants_own(
    browser: TestClient, tenant_key: str, other_key: str
) -> None:
    _sign_in(browser, other_key)
    api = TestClient(browser.app)  # the first tenant, over the API (no lifespan: db stays open)
    csv = "a,b\n" + "".join(f"{i},{i % 2}\n" for i in range(20))
    dataset = api.post(
        "/v1/datasets",
        headers={"Authorization": f"Bearer {tenant_key}"},
        files={"file": ("d.csv", csv)},
    ).json()["id"]
    assert browser.get(f"/ui/datasets/{dataset}").status_code == 404
    assert dataset not in browser.get("/ui/datasets").text
    assert dataset not in browser.get("/ui/runs/new").text
