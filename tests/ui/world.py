"""What the browser tests set up over the API first: a digits dataset and runs on it."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.helpers import digits_csv, digits_split, wait_for
from tests.ui.conftest import Server

FINAL = ("succeeded", "failed", "cancelled")
QUICK_SPEC: dict[str, Any] = {
    "layers": [{"units": 32}],
    "optimizer": {"name": "adam", "learning_rate": 0.003},
    "epochs": 6,
    "seed": 1,
}


def api(server: Server, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.base,
        headers={"Authorization": f"Bearer {key or server.key}"},
        timeout=30,
    )


def upload_digits(server: Server, name: str = "digits") -> str:
    X, _, y, _ = digits_split()
    with api(server) as http:
        response = http.post(
            "/v1/datasets",
            files={"file": (f"{name}.csv", digits_csv(X, y), "text/csv")},
            data={"name": name},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(server: Server, dataset_id: str, spec: dict[str, Any], name: str | None = None) -> str:
    with api(server) as http:
        response = http.post(
            "/v1/runs", json={"dataset_id": dataset_id, "spec": spec, "name": name}
        )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def run_json(server: Server, run_id: str) -> dict[str, Any]:
    with api(server) as http:
        body: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
    return body


def wait_final(server: Server, run_id: str, timeout: float = 120) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        run = run_json(server, run_id)
        return run if run["status"] in FINAL else None

    return wait_for(final, timeout=timeout, what=f"run {run_id} to end", interval=0.3)


def sign_in(page: Page, server: Server, key: str | None = None) -> None:
    page.goto(f"{server.base}/")
    expect(page.get_by_test_id("login")).to_be_visible()
    page.get_by_test_id("api-key").fill(key or server.key)
    page.get_by_test_id("login").get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("runs-table")).to_be_visible()
