"""The run page live (epochs counted as the worker trains, no reload), its best epoch and a
failed run's error, cancel from the page, compare, and the runs list (filters, live rows, a run
submitted elsewhere showing up)."""

from __future__ import annotations

import time
import uuid

from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.ui.conftest import Server, shot
from tests.ui.world import QUICK_SPEC, api, run_json, sign_in, submit, upload_digits, wait_final

# Slow enough (batch 1, a wider layer: ~0.07 s an epoch on this engine) that the page, once
# loaded, sees many epochs arrive even on a loaded machine (20 epochs once finished before the
# page had looked; batch 2 took 2 s for all 60 once the engine got faster).
WATCHED_EPOCHS = 60
WATCHED_SPEC = {**QUICK_SPEC, "layers": [{"units": 128}], "batch_size": 1, "epochs": WATCHED_EPOCHS}


def test_the_run_page_counts_epochs_live_and_ends_with_a_confusion_matrix(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    run_id = submit(server, upload_digits(server), WATCHED_SPEC, name="watched")
    sign_in(page, server)
    page.goto(f"{server.base}/ui/runs/{run_id}")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    counter = page.get_by_test_id("epoch-counter")
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while page.get_by_test_id("run-status").text_content() != "succeeded":
        assert time.monotonic() < deadline, f"the page never showed the end; saw {seen}"
        value = int(counter.text_content() or 0)
        if not seen or value != seen[-1]:
            seen.append(value)
            if len(seen) == 3:
                shot(page, "run-page-training")
        page.wait_for_timeout(50)
    assert seen == sorted(seen), seen  # it only rises
    assert len([v for v in seen if 0 < v < WATCHED_EPOCHS]) >= 2, seen  # seen mid-training
    expect(counter).to_have_text(str(WATCHED_EPOCHS))
    assert page.evaluate("window.sameDocument") is True
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", str(WATCHED_EPOCHS))

    matrix = page.get_by_test_id("confusion-matrix")
    expect(matrix).to_be_visible()
    run = run_json(server, run_id)
    with api(server) as http:
        model = http.get(f"/v1/models/{run['model_id']}").json()
    cells = [int(t) for t in matrix.locator("tbody td").all_text_contents()]
    assert cells == [v for row in model["metrics"]["confusion_matrix"] for v in row]
    assert sum(cells) == model["metrics"]["n"]
    expect(page.get_by_test_id("run-best")).to_contain_text(f"epoch {run['best']['epoch']}")
    shot(page, "run-page-done")

    csv = page.request.get(f"{server.base}/ui/runs/{run_id}/history.csv").text()
    lines = csv.strip().splitlines()
    assert lines[0].startswith("epoch,train_loss,val_loss") and len(lines) == WATCHED_EPOCHS + 1
    assert console_errors == []


def test_cancel_from_the_page_ends_the_run(server: Server, page: Page) -> None:
    run_id = submit(server, upload_digits(server), {**WATCHED_SPEC, "epochs": 100_000})
    sign_in(page, server)
    page.goto(f"{server.base}/ui/runs/{run_id}")
    expect(page.get_by_test_id("epoch-counter")).not_to_have_text("0", timeout=60_000)
    page.get_by_test_id("cancel-run").click()
    expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.get_by_test_id("cancel-run")).to_be_hidden()
    assert wait_final(server, run_id)["status"] == "cancelled"
    shot(page, "run-page-cancelled")


def test_compare_two_runs(server: Server, page: Page, console_errors: list[str]) -> None:
    dataset_id = upload_digits(server)
    ids = [
        submit(
            server, dataset_id, {**QUICK_SPEC, "optimizer": {"name": "adam", "learning_rate": lr}}
        )
        for lr in (0.003, 0.0003)
    ]
    for run_id in ids:
        wait_final(server, run_id)
    sign_in(page, server)
    for run_id in ids:
        page.locator(f'[data-run-id="{run_id}"] input[name="run"]').check()
    page.get_by_test_id("compare-selected").click()
    expect(page.get_by_test_id("compare-chart")).to_have_attribute("data-series", "2")
    diff = page.get_by_test_id("spec-diff")
    expect(diff.locator("tr[data-field]")).to_have_count(1)
    row = diff.locator('tr[data-field="optimizer.learning_rate"]')
    expect(row).to_contain_text("0.003")
    expect(row).to_contain_text("0.0003")
    shot(page, "compare")
    assert console_errors == []


def test_the_runs_list_filters_and_sorts(server: Server, page: Page) -> None:
    dataset_id = upload_digits(server, name="for-filters")
    good = submit(server, dataset_id, QUICK_SPEC, name="filter-me-good")
    poor = submit(server, dataset_id, {**QUICK_SPEC, "epochs": 1}, name="filter-me-poor")
    for run_id in (good, poor):
        wait_final(server, run_id)
    sign_in(page, server)
    page.get_by_test_id("filter-name").fill("filter-me")
    rows = page.get_by_test_id("run-row")
    expect(rows).to_have_count(2)
    page.get_by_test_id("sort").select_option("best")
    expect(rows.first).to_have_attribute("data-run-id", good)  # the lower validation loss
    page.get_by_test_id("filter-status").select_option("cancelled")
    expect(rows).to_have_count(0)
    assert "status=cancelled" in page.url  # the filters are in the address: shareable, reloadable
    shot(page, "runs-filtered")


def test_running_rows_update_without_a_reload(server: Server, page: Page) -> None:
    # Twice the watched run's epochs (~12 s): several refreshes of the row while it trains.
    spec = {**WATCHED_SPEC, "epochs": 2 * WATCHED_EPOCHS}
    run_id = submit(server, upload_digits(server), spec, name="live-row")
    sign_in(page, server)
    page.evaluate("window.sameDocument = true")
    row = page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]')
    expect(row).to_be_visible()
    seen: list[tuple[str, str, float]] = []  # (status, epochs shown), each change once
    deadline = time.monotonic() + 120
    while not seen or seen[-1][0] != "succeeded":
        assert time.monotonic() < deadline, f"the row never showed the end; saw {seen}"
        try:
            status = row.get_attribute("data-status", timeout=2000) or ""
            epochs = row.locator(".progress-cell .num").text_content(timeout=2000) or ""
        except PlaywrightError:  # swapped out between the two reads
            continue
        if not seen or (status, epochs) != seen[-1][:2]:
            seen.append((status, epochs, round(time.monotonic() - deadline + 120, 1)))
        page.wait_for_timeout(100)
    assert seen[0][0] in ("queued", "running"), seen  # it was live when the page loaded
    assert seen[-1][1] == f"{2 * WATCHED_EPOCHS}/{2 * WATCHED_EPOCHS}"
    progress = [p for status, p, _ in seen if status == "running"]
    assert len(set(progress)) >= 2, seen  # the epochs moved on while the page stayed
    assert page.evaluate("window.sameDocument") is True


def test_a_run_submitted_elsewhere_appears_without_a_reload(server: Server, page: Page) -> None:
    """With nothing live the table still refreshes (every 10 s, not 2 s)."""
    name = f"appears-{uuid.uuid4().hex[:8]}"
    sign_in(page, server)
    page.goto(f"{server.base}/ui/runs?name={name}")
    expect(page.locator("#runs")).to_have_attribute("data-live", "false")
    expect(page.get_by_test_id("run-row")).to_have_count(0)
    page.evaluate("window.sameDocument = true")
    run_id = submit(server, upload_digits(server), QUICK_SPEC, name=name)
    expect(page.locator(f'[data-run-id="{run_id}"]')).to_be_visible(timeout=25_000)
    assert page.evaluate("window.sameDocument") is True
    wait_final(server, run_id)
    expect(page.locator(f'[data-run-id="{run_id}"]')).to_have_attribute(
        "data-status", "succeeded", timeout=15_000
    )


def test_a_long_runs_best_epoch_is_the_servers_and_a_drawn_point(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    """The page thins the history to max_points (as a 100,000-epoch run is thinned to 2,000);
    the best epoch, off the sampled grid, is still a drawn point, and the page shows the
    server's best (not one worked out from the thinned points)."""
    # Wide, small batches, a quick rate: it overfits, so the best epoch comes mid-run.
    spec = {**QUICK_SPEC, "layers": [{"units": 128}], "batch_size": 4, "epochs": 40,
            "optimizer": {"name": "adam", "learning_rate": 0.001}}  # fmt: skip
    run_id = submit(server, upload_digits(server), spec, name="long-best")
    run = wait_final(server, run_id)
    best, last = run["best"]["epoch"], run["progress"]["epoch"]
    assert 1 < best < last, run["best"]
    # A point budget whose even grid (every n-th epoch from 1) misses the best epoch.
    budget = next(m for m in range(6, 20) if (best - 1) % -(-(last - 1) // (m - 1)))
    sign_in(page, server)
    page.goto(f"{server.base}/ui/runs/{run_id}?max_points={budget}")
    chart = page.get_by_test_id("loss-chart")
    expect(chart).to_have_attribute("data-best-on-point", "true")
    expect(chart).to_have_attribute("data-best-epoch", str(best))
    with api(server) as http:
        thinned = http.get(f"/v1/runs/{run_id}/history?max_points={budget}").json()["epochs"]
    assert best in [e["epoch"] for e in thinned] and len(thinned) <= budget
    expect(chart).to_have_attribute("data-points", str(len(thinned)))
    expect(page.get_by_test_id("run-best")).to_have_text(
        f"acc {round(run['best']['metrics']['val_accuracy'], 4):g} @ epoch {best}"
    )
    shot(page, "run-page-best-epoch")
    assert console_errors == []


def test_a_failed_runs_error_is_on_its_page(server: Server, page: Page) -> None:
    # Features near the float64 limit, left unstandardized: the first batch's loss overflows.
    table = "a,b,y\n" + "".join(f"{(i % 7) + 1}e300,{(i % 5) + 1}e300,{i % 2}\n" for i in range(40))
    with api(server) as http:
        dataset = http.post("/v1/datasets", files={"file": ("huge.csv", table, "text/csv")})
    assert dataset.status_code == 201, dataset.text
    spec = {**QUICK_SPEC, "preprocessing": {"standardize": False},
            "optimizer": {"name": "sgd", "learning_rate": 10.0, "momentum": 0.99}}  # fmt: skip
    run = wait_final(server, submit(server, dataset.json()["id"], spec, name="diverges"))
    assert run["status"] == "failed", run
    sign_in(page, server)
    page.goto(f"{server.base}/ui/runs/{run['id']}")
    error = page.get_by_test_id("run-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(run["error"]["code"])
    expect(error).to_contain_text(run["error"]["message"][:60])
    expect(page.get_by_test_id("run-status")).to_have_text("failed")
    expect(page.get_by_test_id("cancel-run")).to_be_hidden()
    shot(page, "run-page-failed")


def test_keyboard_and_a_narrow_window(server: Server, browser: Browser) -> None:
    run_id = submit(server, upload_digits(server), QUICK_SPEC, name="narrow")
    wait_final(server, run_id)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.goto(f"{server.base}/")
        page.keyboard.type(server.key)  # the key field has the focus
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("runs-table")).to_be_visible()
        for path in (
            "/ui/runs",
            f"/ui/runs/{run_id}",
            "/ui/datasets",
            "/ui/runs/new",
            "/ui/sweeps",
        ):
            page.goto(f"{server.base}{path}")
            page.wait_for_load_state("networkidle")
            # Wide tables scroll inside their box; the page itself never scrolls sideways.
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), path
            shot(page, f"narrow{path.replace('/', '-')[:24]}")
        page.goto(f"{server.base}/ui/runs")
        link = page.locator(f'[data-run-id="{run_id}"] a')
        link.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("epoch-counter")).to_be_visible()
    finally:
        context.close()
