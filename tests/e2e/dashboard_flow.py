"""The dashboard over plain HTTP, for the end-to-end tests of both deployments (PostgreSQL +
Redis + Celery, and `descent serve`): sign in with the key, see a run on the runs page and its
page, call the API with the session cookie (a write needs the page's CSRF token), sign out.
The browser tests (tests/ui) cover what a person sees; this shows the same server-side parts
work on each backend."""

from __future__ import annotations

import re

import httpx


def dashboard_flow(base: str, key: str, run_id: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as browser:
        assert browser.get("/", follow_redirects=True).url.path == "/ui/login"
        signed = browser.post("/ui/login", data={"api_key": key})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/runs"
        assert "HttpOnly" in signed.headers["set-cookie"]
        runs = browser.get("/ui/runs")
        assert runs.status_code == 200 and f'data-run-id="{run_id}"' in runs.text
        page = browser.get(f"/ui/runs/{run_id}")
        assert page.status_code == 200 and 'data-testid="epoch-counter"' in page.text
        match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert match is not None
        assert browser.get(f"/v1/runs/{run_id}").json()["id"] == run_id  # the cookie as the key
        refused = browser.post(f"/v1/runs/{run_id}/cancel")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
        ended = browser.post(f"/v1/runs/{run_id}/cancel", headers={"X-CSRF-Token": match[1]})
        assert ended.status_code == 409  # past the CSRF check: the run has already finished
        assert browser.post("/ui/logout", data={"csrf_token": match[1]}).status_code == 303
        assert browser.get(f"/v1/runs/{run_id}").status_code == 401
