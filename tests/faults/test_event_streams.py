"""Pushed progress across process boundaries and faults: two API processes stream one run that a
third process (a celery worker) trains; one stream is cut mid-run and resumed with
Last-Event-ID; the worker's pool child is killed with SIGKILL mid-run and the run resumes from
its checkpoint. Every stream sees each epoch exactly once, in order, then the final status."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.harness import cluster

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.redis]

EPOCHS = 12


class Stream:
    """Reads ``/v1/runs/{id}/events`` in a thread; with ``cut_after`` it drops the connection
    after that epoch and reconnects with ``Last-Event-ID``."""

    def __init__(self, base: str, key: str, run_id: str, cut_after: int | None = None) -> None:
        self.base, self.key, self.run_id, self.cut_after = base, key, run_id, cut_after
        self.frames: list[dict[str, Any]] = []
        self.connections = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def start(self) -> Stream:
        self.thread.start()
        return self

    def _main(self) -> None:
        try:
            last = 0
            while True:
                last, final = self._connect(last)
                if final:
                    return
        except BaseException as exc:
            self.error = exc

    def _connect(self, last: int) -> tuple[int, bool]:
        self.connections += 1
        headers = {"Authorization": f"Bearer {self.key}", "Last-Event-ID": str(last)}
        url = f"{self.base}/v1/runs/{self.run_id}/events"
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event["event"] = line.split(":", 1)[1].strip()
                elif line.startswith("id:"):
                    event["id"] = int(line.split(":", 1)[1])
                elif line.startswith("data:"):
                    event["data"] = json.loads(line.split(":", 1)[1])
                elif line == "" and event:
                    self.frames.append(event)
                    if event["event"] == "epoch":
                        last = event["id"]
                        if self.cut_after is not None and last >= self.cut_after:
                            self.cut_after = None
                            return last, False  # leaving the block drops the connection
                    elif event["data"]["status"] in ("succeeded", "failed", "cancelled"):
                        return last, True
                    event = {}
        return last, False  # closed by the server before a final status: reconnect

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error

    @property
    def epochs(self) -> list[int]:
        return [f["id"] for f in self.frames if f["event"] == "epoch"]

    @property
    def statuses(self) -> list[str]:
        return [f["data"]["status"] for f in self.frames if f["event"] == "status"]


@pytest.mark.timeout(150)
def test_two_api_processes_stream_a_run_through_a_cut_and_a_worker_kill(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        first, second = c.start_api(), c.start_api()
        c.start_worker()
        run_id = c.submit(epochs=EPOCHS)
        steady = Stream(second, c.key, run_id).start()
        cut = Stream(first, c.key, run_id, cut_after=3).start()

        fifth = c.wait_epoch(run_id, 5, timeout=60)
        os.kill(fifth["pid"], signal.SIGKILL)  # the pool child training the run

        assert c.wait_final([run_id], timeout=90) == {run_id: "succeeded"}
        steady.join(30)
        cut.join(30)
        # The faults happened: a second attempt trained, and the cut stream reconnected.
        assert c.run(run_id).attempts == 2
        assert cut.connections >= 2 and steady.connections >= 1
        for stream in (steady, cut):
            assert stream.epochs == list(range(1, EPOCHS + 1))
            assert stream.statuses[-1] == "succeeded"
        # The epochs pushed are the history stored.
        with httpx.Client(base_url=first, headers={"Authorization": f"Bearer {c.key}"}) as http:
            history = http.get(f"/v1/runs/{run_id}/history").json()["epochs"]
        pushed = [f["data"] for f in steady.frames if f["event"] == "epoch"]
        assert pushed == history
