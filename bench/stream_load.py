"""Open event streams vs predict: does a crowd of SSE watchers slow the hot path?

    .venv/bin/python bench/stream_load.py [--streams 500] [--watched-runs 10] [--seconds 8]

Starts a throwaway PostgreSQL database, Redis database 12 on 127.0.0.1:6379, one
`uvicorn --factory api.app:serve_app` and one `celery worker`. It trains a digits model, then:

1. wrk drives predict (1 row, 16 connections) for --seconds: the baseline.
2. --streams SSE connections are opened on one API process (an asyncio client in this process),
   spread over --watched-runs runs: one trains slowly (its epochs are the news whose delay is
   measured), the others wait queued (a watcher that waits is the common case). The API's RSS is
   read before and after, from /proc: memory per open stream.
3. wrk drives predict again with every stream open: the ratio to the baseline.
4. The delay from each epoch's commit (run_epochs.created_at, stamped by the worker) to its
   arrival at each stream (this process's clock; one machine, one clock): p50 and p95.

Needs wrk (`apt-get install -y wrk`). No assertions: the figures are printed, ratios measured in
one run (the machine is shared and has 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_world import (
    api_key_for,
    digits_split,
    pct,
    pg_database,
    post_script,
    python_env,
    redis_url,
    train_digits,
    wrk,
)

from descent.processes import API_APP, free_port, process, uvicorn_argv, wait_healthy, worker_argv

# About 10 epochs a second (the news whose delay is measured): a run people watch, not a flood.
SLOW_SPEC = {"layers": [{"units": 512}, {"units": 512}], "batch_size": 1, "epochs": 400}


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Streams:
    """N SSE connections in an event loop on a thread of their own; arrival times per epoch."""

    def __init__(self, base: str, key: str, run_ids: list[str], n: int) -> None:
        self.base, self.key, self.run_ids, self.n = base, key, run_ids, n
        self.open = 0
        self.arrivals: dict[int, list[float]] = {}  # epoch of the trained run -> wall times
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.n + 10, max_keepalive_connections=0)
        headers = {"Authorization": f"Bearer {self.key}"}
        timeout = httpx.Timeout(30, read=120)
        async with httpx.AsyncClient(
            base_url=self.base, headers=headers, limits=limits, timeout=timeout
        ) as http:
            tasks = [
                asyncio.create_task(self._one(http, self.run_ids[i % len(self.run_ids)], i == 0))
                for i in range(self.n)
            ]
            while not self.stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, http: httpx.AsyncClient, run_id: str, _first: bool) -> None:
        trained = run_id == self.run_ids[0]
        try:
            async with http.stream("GET", f"/v1/runs/{run_id}/events") as response:
                if response.status_code != 200:
                    self.errors.append(f"HTTP {response.status_code}")
                    return
                self.open += 1
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event == "epoch" and trained:
                        epoch = orjson.loads(line.split(":", 1)[1])["epoch"]
                        self.arrivals.setdefault(epoch, []).append(time.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors.append(type(exc).__name__)


def epoch_commit_times(database_url: str, run_id: str) -> dict[int, float]:
    from sqlalchemy import select

    from store.session import Database, make_engine_for_url
    from store.tables import RunEpoch

    db = Database(make_engine_for_url(database_url))
    try:
        with db.read_session() as session:
            rows = session.execute(
                select(RunEpoch.epoch, RunEpoch.created_at).where(
                    RunEpoch.run_id == uuid.UUID(run_id)
                )
            )
            return {int(e): _stamp(c) for e, c in rows}
    finally:
        db.dispose()


def _stamp(value: datetime) -> float:
    return value.timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--watched-runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as folder,
        pg_database() as database_url,
        redis_url(False, Path(folder)) as broker,
    ):
        tmp = Path(folder)
        key = api_key_for(database_url)
        env = python_env(
            DESCENT_DATABASE_URL=database_url,
            DESCENT_BROKER_URL=broker,
            DESCENT_DATA_DIR=str(tmp / "data"),
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api_log = tmp / "api.log"
        with (
            process(worker_argv(), env=env, log=tmp / "worker.log"),
            process(uvicorn_argv(API_APP, port), env=env, log=api_log) as api,
        ):
            wait_healthy(base, api, api_log)
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as http:
                model_id = train_digits(http)["model"]
                _, X_test, _, _ = digits_split()
                body = orjson.dumps({"inputs": X_test[:1].tolist()})
                script = post_script(tmp, "predict1", body, key)
                url = f"{base}/v1/models/{model_id}/predict"
                assert http.post(url, content=body, headers={"Content-Type": "application/json"})

                before = wrk(url, args.seconds, 16, script)

                dataset_id = http.get("/v1/datasets").json()["items"][0]["id"]
                trained = http.post(
                    "/v1/runs", json={"dataset_id": dataset_id, "spec": SLOW_SPEC}
                ).json()["id"]
                # Watched runs that never start: no worker takes them while the trained one
                # holds the only pool child (concurrency 1).
                waiting = [
                    http.post(
                        "/v1/runs", json={"dataset_id": dataset_id, "spec": {"epochs": 1}}
                    ).json()["id"]
                    for _ in range(max(args.watched_runs - 1, 0))
                ]
                rss_before = rss(api.pid)
                streams = Streams(base, key, [trained, *waiting], args.streams)
                streams.start()
                deadline = time.monotonic() + 60
                while streams.open < args.streams and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(1.0)
                rss_open = rss(api.pid)

                during = wrk(url, args.seconds, 16, script)

                time.sleep(1.0)
                streams.stop.set()
                streams.thread.join(30)
                http.post(f"/v1/runs/{trained}/cancel")
                for run_id in waiting:
                    http.post(f"/v1/runs/{run_id}/cancel")

            commits = epoch_commit_times(database_url, trained)
            delays = [
                arrival - commits[epoch]
                for epoch, times in streams.arrivals.items()
                if epoch in commits
                for arrival in times
            ]
    per_stream = (rss_open - rss_before) / max(streams.open, 1)
    result: dict[str, Any] = {
        "streams_open": streams.open,
        "stream_errors": len(streams.errors),
        "predict_rps_without": before["rps"],
        "predict_rps_with": during["rps"],
        "ratio": during["rps"] / before["rps"],
        "predict_p99_ms_without": before["p99"],
        "predict_p99_ms_with": during["p99"],
        "epochs_seen": len(streams.arrivals),
        "delay_ms_p50": 1000 * pct(delays, 50) if delays else None,
        "delay_ms_p95": 1000 * pct(delays, 95) if delays else None,
        "api_rss_mb_before": rss_before / 1e6,
        "api_kb_per_stream": per_stream / 1e3,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
