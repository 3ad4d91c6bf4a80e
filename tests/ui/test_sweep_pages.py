"""The sweep page in Chromium: a small grid sweep followed through the live leaderboard to the
end without a reload, one scatter per searched parameter with a point per trial, the links
between the sweep and its trials, and another tenant's sweep as the not-found page."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.ui.conftest import Server, shot
from tests.ui.world import QUICK_SPEC, api, sign_in, upload_digits

SPACE = {
    "optimizer.learning_rate": [0.01, 0.0001],  # two decades: a log axis
    "layers": [[{"units": 16}], [{"units": 32}]],  # lists: evenly spaced ticks
}


def submit_sweep(server: Server, dataset_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "dataset_id": dataset_id,
        "name": "ui-grid",
        # Slow enough for the page (refreshed every 2 s) to see it move: batch 1, 1,437 steps
        # an epoch, ~2-4 s a trial on this engine (batch 2 and 30 epochs became too fast).
        "spec": {**QUICK_SPEC, "layers": [{"units": 64}], "batch_size": 1, "epochs": 60},
        "search": {"method": "grid", "space": SPACE},
        "metric": "val_accuracy",
        **extra,
    }
    with api(server) as http:
        response = http.post("/v1/sweeps", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_a_grid_sweep_live_to_the_end(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    sweep = submit_sweep(server, upload_digits(server), max_parallel=1)  # one at a time: slower
    sign_in(page, server)
    page.get_by_role("navigation", name="main").get_by_role("link", name="Sweeps").click()
    row = page.locator(f'[data-testid="sweep-row"][data-sweep-id="{sweep["id"]}"]')
    expect(row).to_be_visible()
    shot(page, "sweeps-list")
    row.get_by_role("link").click()
    expect(page.get_by_test_id("leaderboard")).to_be_visible()
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    status = page.locator('#sweep-board [data-testid="sweep-status"]')
    progress = page.get_by_test_id("sweep-progress")
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while status.text_content() != "succeeded":
        assert time.monotonic() < deadline, f"the page never showed the end; saw {seen}"
        shown = progress.text_content() or ""
        if not seen or shown != seen[-1]:
            seen.append(shown)
            if len(seen) == 2:
                shot(page, "sweep-page-running")
        page.wait_for_timeout(100)
    assert page.evaluate("window.sameDocument") is True
    seen.append(progress.text_content() or "")
    assert seen[-1] == "4 of 4 trials finished"
    assert seen[0] != seen[-1] and len(set(seen)) >= 3, seen  # watched it move
    expect(page.get_by_test_id("cancel-sweep")).to_have_count(0)

    with api(server) as http:
        final = http.get(f"/v1/sweeps/{sweep['id']}").json()
    rows = page.get_by_test_id("trial-row")
    expect(rows).to_have_count(4)
    assert [r.get_attribute("data-run-id") for r in rows.all()] == [
        t["run_id"] for t in final["trials"]
    ]  # best first, as the API ranks them
    ranks = page.get_by_test_id("trial-rank").all_text_contents()
    assert ranks == ["1", "2", "3", "4"]
    expect(page.get_by_test_id("best-model")).to_have_attribute(
        "href", f"/ui/models/{final['best']['model_id']}"
    )

    charts = page.get_by_test_id("sweep-chart")
    expect(charts).to_have_count(len(SPACE))
    for name, scale in (("optimizer.learning_rate", "log"), ("layers", "category")):
        chart = page.locator(f'[data-testid="sweep-chart"][data-param="{name}"]')
        expect(chart).to_have_attribute("data-scale", scale)
        expect(chart).to_have_attribute("data-series", "1")
        expect(chart).to_have_attribute("data-points", "4")
        expect(chart.locator("canvas")).to_have_count(1)
    page.get_by_test_id("sweep-charts").scroll_into_view_if_needed()
    shot(page, "sweep-page-done")

    best_run = page.get_by_test_id("best-run")
    best_run.click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
    page.get_by_test_id("sweep-link").click()
    expect(page.get_by_test_id("leaderboard")).to_be_visible()
    assert page.url.endswith(f"/ui/sweeps/{sweep['id']}")
    assert console_errors == []


def test_cancel_a_sweep_from_the_page(server: Server, page: Page) -> None:
    spec = {**QUICK_SPEC, "layers": [{"units": 128}], "batch_size": 2, "epochs": 10_000}
    with api(server) as http:
        response = http.post(
            "/v1/sweeps",
            json={
                "dataset_id": upload_digits(server), "spec": spec, "max_parallel": 1,
                "search": {"method": "grid", "space": {"optimizer.learning_rate": [0.01, 0.001]}},
            },
        )  # fmt: skip
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    sign_in(page, server)
    page.goto(f"{server.base}/ui/sweeps/{sweep_id}")
    page.get_by_test_id("cancel-sweep").click()
    expect(page.locator('#sweep-board [data-testid="sweep-status"]')).to_have_text("cancelled")
    expect(page.get_by_test_id("cancel-sweep")).to_have_count(0)
    # The trial that was training stops cooperatively; the board follows it to its end.
    statuses = page.get_by_test_id("trial-status")
    expect(statuses).to_have_text(["cancelled", "cancelled"], timeout=30_000)
    with api(server) as http:
        assert http.get(f"/v1/sweeps/{sweep_id}").json()["status"] == "cancelled"
    shot(page, "sweep-page-cancelled")


def test_another_tenants_sweep_is_not_found(server: Server, page: Page, other_key: str) -> None:
    sweep = submit_sweep(server, upload_digits(server), max_parallel=1)
    with api(server) as http:
        http.post(f"/v1/sweeps/{sweep['id']}/cancel")  # nothing of it needs to train
    sign_in(page, server, other_key)
    page.goto(f"{server.base}/ui/sweeps/{sweep['id']}")
    expect(page.get_by_test_id("error-page")).to_contain_text("not found")
    page.goto(f"{server.base}/ui/sweeps")
    expect(page.locator(f'[data-sweep-id="{sweep["id"]}"]')).to_have_count(0)
