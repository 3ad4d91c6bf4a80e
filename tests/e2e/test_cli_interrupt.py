"""Ctrl-C while the CLI follows a run (``descent runs follow``, ``runs submit --follow``), as a
person does it: a real ``descent serve`` training the run, the CLI a real subprocess sent
SIGINT. Only the watching stops: exit 130, a note on stderr (never on stdout, which --json
keeps for JSON lines), and the run goes on."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from descent import Client
from descent.processes import clean_env
from tests.api.runs_fixtures import blobs_csv
from tests.e2e.client_flow import descent_command
from tests.e2e.helpers import free_port, process, wait_for, wait_healthy

pytestmark = pytest.mark.e2e

ENDLESS = {"layers": [{"units": 8}], "epochs": 100_000, "batch_size": 16, "seed": 1}


def _key_from(log: Path) -> str:
    match = re.search(r"^API key: (\S+)$", log.read_text(), re.MULTILINE)
    return match.group(1) if match else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """``descent serve`` (embedded: SQLite and an in-process worker): (url, key, a folder)."""
    tmp = tmp_path_factory.mktemp("interrupt")
    port = free_port()
    env = clean_env()
    argv = [*descent_command(), "serve", "--port", str(port), "--data-dir", str(tmp / "data")]
    log = tmp / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with process(argv, env=env, log=log, cwd=tmp) as serve:
        key = wait_for(lambda: _key_from(log), timeout=60, what="the API key line")
        wait_healthy(base, serve, log, timeout=60)
        yield base, key, tmp


class Cli:
    """A ``descent`` subprocess in a session of its own; stdout read line by line as it
    comes (a thread), so the test can wait for what the command has said."""

    def __init__(self, argv: list[str], base: str, key: str, cwd: Path) -> None:
        env = clean_env(DESCENT_URL=base, DESCENT_API_KEY=key, HOME=str(cwd), COLUMNS="120")
        env["XDG_CONFIG_HOME"] = str(cwd / "config")
        self.child = subprocess.Popen(
            [*descent_command(), *argv], env=env, cwd=cwd, text=True, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        assert self.child.stdout is not None
        threading.Thread(target=self._read, args=(self.child.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for_line(self, pattern: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.child.kill()
                raise AssertionError(f"no line matching {pattern!r}; got {self.stdout}") from None
            self.stdout.append(line)
            if re.search(pattern, line):
                return line

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C: SIGINT to the command (not to the server). (exit code, stdout, stderr)."""
        os.kill(self.child.pid, signal.SIGINT)
        try:
            code = self.child.wait(timeout=30)
        finally:
            if self.child.poll() is None:
                self.child.kill()
        assert self.child.stderr is not None
        stderr = self.child.stderr.read()
        while not self.lines.empty():
            self.stdout.append(self.lines.get())
        return code, "".join(self.stdout), stderr


def _assert_only_watching_stopped(client: Client, run_id: str, stderr: str) -> None:
    note = " ".join(stderr.split())  # as wrapped to the terminal's width, joined again
    assert "Stopped following" in note and f"descent runs follow {run_id}" in note
    run = client.run(run_id)
    assert run.status in ("queued", "running"), run.data  # not cancelled: it goes on
    assert "Traceback" not in stderr


def test_ctrl_c_stops_following_not_the_run(server: tuple[str, str, Path]) -> None:
    base, key, tmp = server
    csv = tmp / "blobs.csv"
    csv.write_bytes(blobs_csv())
    with Client(base, api_key=key) as client:
        ds = client.upload(csv, label="colour")
        run = client.train(ds, ENDLESS)
        try:
            # `runs follow --json`: JSON lines on stdout until Ctrl-C, the note on stderr.
            cli = Cli(["runs", "follow", run.id, "--json"], base, key, tmp)
            cli.wait_for_line(r'"event": "epoch"')
            code, stdout, stderr = cli.interrupt()
            assert code == 130, (stdout, stderr)
            events = [json.loads(line) for line in stdout.splitlines()]
            assert events and {e["event"] for e in events} == {"epoch"}
            _assert_only_watching_stopped(client, run.id, stderr)
            # It keeps training: later epochs arrive after the CLI has gone.
            last = events[-1]["epoch"]
            later = run.refresh(wait_seconds=30, after_epoch=last)
            assert later.data["progress"]["epoch"] > last and later.status == "running"

            # `runs submit --follow` (the progress bar): the same, for a run just submitted.
            args = ["runs", "submit", "--dataset", ds.id, "--set", "epochs=100000", "--follow"]
            cli = Cli(args, base, key, tmp)
            queued = cli.wait_for_line(r"^run \S+ queued")
            code, stdout, stderr = cli.interrupt()
            assert code == 130, (stdout, stderr)
            assert "Stopped following" not in stdout
            second = queued.split()[1]
            _assert_only_watching_stopped(client, second, stderr)
            client.run(second).cancel()
        finally:
            run.cancel()
