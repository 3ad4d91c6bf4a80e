"""GET /metrics sums every process of one machine that shares the metrics directory (real
processes): two uvicorn API processes and a separate Python process counting epochs; a process
that starts beside a live one keeps the directory; the first to start after all are gone wipes
it. Then ``descent serve`` end to end: its Celery worker's epochs and the runs it trained show
in the API's /metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import Settings
from core.migrate import upgrade_to_head
from descent.processes import clean_env
from tests.e2e.client_flow import descent_command
from tests.e2e.helpers import (
    DIGITS_SPEC,
    free_port,
    process,
    train_digits_through_api,
    wait_for,
    wait_healthy,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HEALTHZ = ("descent_http_requests_total", {"method": "GET", "route": "/healthz", "status": "200"})

RECORD = """
from core.config import get_settings
from core import metrics
metrics.claim_directory(get_settings())
for _ in range(5):
    metrics.record_epoch()
metrics.record_predicted_rows(11)
"""


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def healthz_count(base: str) -> float:
    name, labels = HEALTHZ
    return value(scrape(base), name, **labels)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade_to_head(settings.database_url)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the pytest process's own
    return {
        **clean,
        "DESCENT_DATA_DIR": str(settings.data_dir),
        "DESCENT_RECONCILE_EVERY_SECONDS": "0",
    }


@contextmanager
def api_process(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    argv = [*descent_command(), "api", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with process(argv, env=env, log=log, cwd=ROOT) as child:
        wait_healthy(base, child, log)
        yield base


def test_metrics_are_summed_over_processes(env: dict[str, str], tmp_path: Path) -> None:
    metrics_dir = Path(env["DESCENT_DATA_DIR"]) / "metrics"
    with ExitStack() as stack:
        a = stack.enter_context(api_process(env, tmp_path / "a.log"))
        b_stack = stack.enter_context(ExitStack())
        b = b_stack.enter_context(api_process(env, tmp_path / "b.log"))

        # Another process (as a worker would) counts epochs and rows into the same directory.
        subprocess.run([sys.executable, "-c", RECORD], env=env, cwd=ROOT, check=True, timeout=60)

        start = healthz_count(a)
        for _ in range(3):
            httpx.get(f"{a}/healthz").raise_for_status()
        for _ in range(4):
            httpx.get(f"{b}/healthz").raise_for_status()
        from_a, from_b = scrape(a), scrape(b)
        name, labels = HEALTHZ
        # Either process answers the sum of both (and of the one that has exited).
        assert value(from_a, name, **labels) - start == 7
        assert value(from_b, name, **labels) == value(from_a, name, **labels)
        for samples in (from_a, from_b):
            assert value(samples, "descent_epochs_trained_total") == 5
            assert value(samples, "descent_predicted_rows_total") == 11
            assert value(samples, "descent_runs", status="queued") == 0
        pids = {
            int(m.group(1))
            for p in metrics_dir.glob("*.db")
            if (m := re.search(r"_(\d+)\.db$", p.name))
        }
        assert len(pids) >= 3  # a, b and the recording process

        # B stops; C starts beside a live A: nothing is wiped, B's counts stay in the sum.
        total = value(from_a, name, **labels)
        b_stack.close()
        c = stack.enter_context(api_process(env, tmp_path / "c.log"))
        assert healthz_count(c) >= total
        assert value(scrape(c), "descent_epochs_trained_total") == 5

    # Every process is gone: the next one to start wipes the directory.
    with api_process(env, tmp_path / "d.log") as d:
        samples = scrape(d)
        assert value(samples, "descent_epochs_trained_total") == 0
        assert value(samples, "descent_predicted_rows_total") == 0


def test_descent_serve_worker_epochs_reach_the_api_metrics(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "descent-data"
    env = clean_env()
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["DESCENT_RECONCILE_EVERY_SECONDS"] = "2"
    argv = [*descent_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"

    def key() -> str:
        match = re.search(r"^API key: (\S+)$", log.read_text(), re.MULTILINE)
        return match.group(1) if match else ""

    with process(argv, env=env, log=log, cwd=tmp_path) as serve:
        api_key = wait_for(key, timeout=30, what="the API key line")
        wait_healthy(base, serve, log)
        final = train_digits_through_api(base, api_key)
        samples = scrape(base)
    # Counted in a Celery pool child, read by the API process.
    assert value(samples, "descent_epochs_trained_total") == DIGITS_SPEC["epochs"]
    assert value(samples, "descent_runs", status="succeeded") == 1
    assert value(samples, "descent_queue_depth") == 0
    predicted = value(
        samples,
        "descent_http_requests_total",
        method="POST",
        route="/v1/models/{model_id}/predict",
        status="200",
    )
    assert predicted == 1
    assert final["status"] == "succeeded"
