"""The harness itself, end to end: a real ``descent serve`` answers in Debian's Chromium, the
page's URLs are logged, screenshots are written, and a second tenant's key works."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.ui.conftest import Server, shot


def test_server_answers_in_chromium(
    server: Server, other_key: str, page: Page, page_urls: list[str], console_errors: list[str]
) -> None:
    url = f"{server.base}/healthz"
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert '"status":"ok"' in page.content()
    assert url in page_urls
    assert console_errors == []

    path = shot(page, "harness-healthz")
    assert path.exists() and path.stat().st_size > 1024
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert other_key != server.key
    for key in (server.key, other_key):
        listed = httpx.get(
            f"{server.base}/v1/datasets", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert listed.status_code == 200, listed.text
