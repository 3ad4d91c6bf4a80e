"""The dashboard with a big database: does it stay as fast as with a small one?

    .venv/bin/python bench/ui_speed.py [--runs 10000] [--epochs 100000] [--rounds 3]

Fills a fresh embedded-default data directory (SQLite) with --runs finished runs, one run of
--epochs epochs and one of 100, starts a real `descent serve` on it, signs in with Debian's
Chromium (Playwright, headless) and times, from navigation to the content being on screen:

- the runs page (page 1 of --runs, newest first; sorted by best; filtered by name),
- the run page of the 100-epoch run and of the --epochs run, until its loss chart holds every
  point it will draw (long runs are thinned to 2,000 points),
- GET /v1/runs/{id}/history?max_points=2000 for both (the chart's data).

Medians of --rounds; no assertions: figures and ratios from one run are printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import insert

from descent.processes import clean_env

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.auth import create_api_key  # noqa: E402
from core.migrate import upgrade_to_head  # noqa: E402
from store.base import utcnow  # noqa: E402
from store.session import Database, make_engine_for_url  # noqa: E402
from store.tables import Run, RunEpoch, RunStatus, Tenant  # noqa: E402
from tests.e2e.helpers import free_port, process, wait_healthy  # noqa: E402

SPEC = {"layers": [{"units": 64, "activation": "relu"}], "epochs": 20, "batch_size": 32}


def fill(data_dir: Path, runs: int, epochs: int) -> tuple[str, uuid.UUID, uuid.UUID]:
    """A key, and the ids of the short (100-epoch) and the long run."""
    url = f"sqlite:///{data_dir / 'descent.sqlite3'}"
    upgrade_to_head(url)
    db = Database(make_engine_for_url(url))
    with db.session() as session:
        key = create_api_key(session, "default", key_name="ui_speed")
        tenant = session.query(Tenant).filter_by(name="default").one().id
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(), "tenant_id": tenant, "name": f"run-{i:05d}",
            "status": RunStatus.succeeded, "spec": SPEC, "epoch": 20, "epochs": 20,
            "fraction": 1.0, "attempts": 1, "cancel_requested": False,
            "latest_metrics": {"train_loss": 0.1, "val_loss": 0.2, "val_accuracy": 0.9},
            "best_epoch": 15, "best_loss": 0.1 + (i % 997) / 1000,
            "best_metrics": {"val_loss": 0.1 + (i % 997) / 1000, "val_accuracy": 0.9},
            "created_at": now - timedelta(seconds=runs - i),
            "started_at": now - timedelta(seconds=runs - i),
            "finished_at": now - timedelta(seconds=runs - i - 0.5),
        }
        for i in range(runs)
    ]  # fmt: skip
    short, long = uuid.uuid4(), uuid.uuid4()
    for run_id, n in ((short, 100), (long, epochs)):
        rows.append({**rows[-1], "id": run_id, "name": f"history-{n}", "epoch": n, "epochs": n,
                     "created_at": now})  # fmt: skip
    with db.session() as session:
        session.execute(insert(Run), rows)
        for run_id, n in ((short, 100), (long, epochs)):
            for start in range(1, n + 1, 20_000):
                session.execute(
                    insert(RunEpoch),
                    [
                        {"id": uuid.uuid4(), "tenant_id": tenant, "run_id": run_id, "epoch": e,
                         "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 1 - 1 / e,
                         "learning_rate": 0.01, "seconds": 0.01}
                        for e in range(start, min(start + 20_000, n + 1))
                    ],
                )  # fmt: skip
        session.commit()
    db.dispose()
    return key, short, long


def timed(rounds: int, step: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium: apt-get install chromium")

    data_dir = Path(tempfile.mkdtemp(prefix="descent-ui-speed-"))
    started = time.perf_counter()
    key, short, long = fill(data_dir, args.runs, args.epochs)
    print(
        f"filled {args.runs} runs + {args.epochs} epochs in {time.perf_counter() - started:.1f} s"
    )

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env()
    argv = [
        str(REPO / ".venv/bin/descent"),
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    log = data_dir / "serve.log"
    with process(argv, env=env, log=log, cwd=data_dir) as serve, sync_playwright() as p:
        wait_healthy(base, serve, log)
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page: Page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/ui/login")
        page.get_by_test_id("api-key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("runs-table")).to_be_visible()

        def runs_page(query: str) -> Callable[[], None]:
            def step() -> None:
                page.goto(f"{base}/ui/runs{query}")
                expect(page.get_by_test_id("run-row").first).to_be_visible()

            return step

        def run_page(run_id: uuid.UUID, points: int) -> Callable[[], None]:
            def step() -> None:
                page.goto(f"{base}/ui/runs/{run_id}")
                chart = page.get_by_test_id("loss-chart")
                expect(chart).to_have_attribute("data-points", str(points), timeout=60_000)

            return step

        figures = {
            f"runs page, newest first ({args.runs} runs)": timed(args.rounds, runs_page("")),
            "runs page, sorted by best": timed(args.rounds, runs_page("?sort=best")),
            "runs page, name filter": timed(args.rounds, runs_page("?name=run-09")),
            "runs page 100 of them": timed(args.rounds, runs_page("?page=100")),
        }
        long_points = len(httpx.get(
            f"{base}/v1/runs/{long}/history?max_points=2000",
            headers={"Authorization": f"Bearer {key}"}, timeout=60,
        ).json()["epochs"])  # fmt: skip
        run_short = timed(args.rounds, run_page(short, 100))
        run_long = timed(args.rounds, run_page(long, long_points))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
            api_short = timed(
                args.rounds,
                lambda: (
                    http.get(f"/v1/runs/{short}/history?max_points=2000").raise_for_status()
                    and None
                ),
            )
            api_long = timed(
                args.rounds,
                lambda: (
                    http.get(f"/v1/runs/{long}/history?max_points=2000").raise_for_status() and None
                ),
            )
        browser.close()

    for name, seconds in figures.items():
        print(f"{name:45s} {seconds * 1000:7.0f} ms")
    print(f"{'run page, 100 epochs':45s} {run_short * 1000:7.0f} ms")
    print(
        f"{f'run page, {args.epochs} epochs ({long_points} points)':45s} {run_long * 1000:7.0f} ms"
        f"   ratio to 100 epochs: {run_long / run_short:.2f}"
    )
    print(f"{'history API, 100 epochs':45s} {api_short * 1000:7.1f} ms")
    print(
        f"{f'history API, {args.epochs} epochs, max_points=2000':45s} {api_long * 1000:7.1f} ms"
        f"   ratio: {api_long / api_short:.2f}"
    )
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
