"""The embedded default exactly as a newcomer runs it: ``descent serve --port P --data-dir D``,
the API key read from its output, digits trained and predicted through HTTP; a second start
prints the same key."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from descent.processes import clean_env
from tests.e2e.client_flow import cli_flow, cli_runner_flow, client_flow, descent_command
from tests.e2e.dashboard_flow import dashboard_flow
from tests.e2e.helpers import (
    free_port,
    process,
    stop_group,
    train_digits_through_api,
    wait_for,
    wait_healthy,
)

pytestmark = pytest.mark.e2e


def _key_from(log: Path) -> str:
    match = re.search(r"^API key: (\S+)$", log.read_text(), re.MULTILINE)
    return match.group(1) if match else ""


def test_descent_serve_trains_and_predicts(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "descent-data"
    env = clean_env(DESCENT_RECONCILE_EVERY_SECONDS="2")
    argv = [*descent_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    base = f"http://127.0.0.1:{port}"

    log = tmp_path / "serve.log"
    with process(argv, env=env, log=log, cwd=tmp_path) as serve:
        key = wait_for(lambda: _key_from(log), timeout=30, what="the API key line")
        assert f"http://127.0.0.1:{port}" in log.read_text()
        wait_healthy(base, serve, log)
        final = train_digits_through_api(base, key)
        dashboard_flow(base, key, final["id"])
        dataset_id = client_flow(base, key, tmp_path)
        cli_runner_flow(base, key, dataset_id)
        cli_flow(base, key, tmp_path)
        # Ctrl-C (SIGINT to the foreground group) stops the API and the worker.
        code = stop_group(serve, signal.SIGINT)
        assert code is not None

    log2 = tmp_path / "serve2.log"
    with process(argv, env=env, log=log2, cwd=tmp_path) as serve:
        assert wait_for(lambda: _key_from(log2), timeout=30, what="the API key again") == key
        wait_healthy(base, serve, log2)
