"""Mixed load: uploads, run submits, status polls and predicts at once, then a consistency check.

    .venv/bin/python bench/mixed_load.py [--mode serve|pg] [--clients 8] [--seconds 60]
                                         [--submit-rate 1.0] [--workers 1] [--drain-timeout 240]

--mode serve (default) runs `descent serve` (SQLite + filesystem broker) in a temporary data
directory; --mode pg runs `uvicorn api.app:serve_app` + `celery worker` on a throwaway PostgreSQL
database and Redis database 12 (--own-redis: a redis-server of its own). The per-tenant limits
are raised so that the load is not answered 429 (see service_speed.BENCH_LIMITS).

Load generator: asyncio + httpx, --clients concurrent clients in this one process (it shares the
2 cores with the server). Each client loops until --seconds have passed (and at most
--max-requests each), picking by weight: predict 40 %, status poll 40 %, upload 10 %, run submit
10 % (submits are also capped at --submit-rate per second overall, so the worker can drain them).
Uploads are 50-row CSVs; runs are tiny (8 hidden units, 2-4 epochs); predicts send 1-10 rows to
a model trained before the load starts; polls read a run submitted earlier.

Printed: requests/s, p50/p95 latency per kind, non-2xx and 5xx counts; then, after waiting for
every accepted run to finish (at most --drain-timeout s): lost = accepted runs not in a final
state, dup = runs whose history holds an epoch twice, misordered = histories that are not exactly
epochs 1..E in order, and the final states.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from service_world import (
    FINAL,
    REPO,
    api_key_for,
    pct,
    pg_database,
    python_env,
    redis_url,
)

from descent.processes import API_APP, free_port, process, uvicorn_argv, wait_healthy, worker_argv

KINDS = ("predict", "poll", "upload", "submit")
WEIGHTS = (40, 40, 10, 10)
N_FEATURES = 6


def small_csv(rng: random.Random, rows: int = 50) -> bytes:
    names = [f"f{i}" for i in range(N_FEATURES)]
    lines = [",".join([*names, "label"])]
    for _ in range(rows):
        values = [rng.gauss(0, 1) for _ in names]
        label = "a" if values[0] + values[1] > 0 else "b"
        lines.append(",".join(f"{v:.4f}" for v in values) + f",{label}")
    return ("\n".join(lines) + "\n").encode()


def tiny_spec(epochs: int, seed: int) -> dict[str, Any]:
    return {"layers": [{"units": 8}], "epochs": epochs, "batch_size": 16, "seed": seed}


@contextlib.contextmanager
def server(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a running Descent, stopped on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if args.mode == "serve":
        data = tmp / "data"
        argv = [sys.executable, "-m", "descent.cli", "serve", "--port", str(port)]
        argv += ["--data-dir", str(data), "--workers", str(args.workers)]
        with process(argv, env=python_env(), log=tmp / "serve.log", cwd=REPO) as serve:
            wait_healthy(base, serve, tmp / "serve.log", timeout=60)
            yield base, (data / "api-key.txt").read_text().strip()
        return
    with pg_database() as db_url, redis_url(args.own_redis, tmp) as broker:
        key = api_key_for(db_url)
        env = python_env(
            DESCENT_DATABASE_URL=db_url, DESCENT_BROKER_URL=broker, DESCENT_DATA_DIR=str(tmp)
        )
        worker = worker_argv()
        worker[worker.index("--concurrency=1")] = f"--concurrency={args.workers}"
        with (
            process(worker, env=env, log=tmp / "worker.log", cwd=REPO),
            process(uvicorn_argv(API_APP, port), env=env, log=tmp / "api.log", cwd=REPO) as api,
        ):
            wait_healthy(base, api, tmp / "api.log")
            yield base, key


class Load:
    def __init__(self, http: httpx.AsyncClient, args: argparse.Namespace, model_id: str) -> None:
        self.http = http
        self.args = args
        self.model_id = model_id
        self.samples: list[tuple[str, int, float]] = []  # kind, status (0: error), seconds
        self.datasets: list[str] = []
        self.runs: dict[str, int] = {}  # accepted run id -> epochs asked for
        self.next_submit = 0.0
        self.X = np.random.default_rng(0).normal(size=(10, N_FEATURES)).round(4).tolist()

    async def one(self, kind: str, rng: random.Random) -> None:
        if kind == "submit" and time.monotonic() < self.next_submit:
            kind = "poll"
        if kind == "poll" and not self.runs:
            kind = "predict"
        start = time.perf_counter()
        try:
            if kind == "predict":
                rows = self.X[: rng.randint(1, 10)]
                r = await self.http.post(
                    f"/v1/models/{self.model_id}/predict", json={"inputs": rows}
                )
            elif kind == "poll":
                r = await self.http.get(f"/v1/runs/{rng.choice(list(self.runs))}")
            elif kind == "upload":
                files = {"file": ("small.csv", small_csv(rng), "text/csv")}
                r = await self.http.post("/v1/datasets", files=files)
                if r.status_code == 201:
                    self.datasets.append(r.json()["id"])
            else:
                self.next_submit = time.monotonic() + 1.0 / self.args.submit_rate
                epochs = rng.randint(2, 4)
                body = {"dataset_id": rng.choice(self.datasets), "spec": tiny_spec(epochs, 0)}
                r = await self.http.post("/v1/runs", json=body)
                if r.status_code == 202:
                    self.runs[r.json()["id"]] = epochs
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        self.samples.append((kind, status, time.perf_counter() - start))

    async def client(self, seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        for _ in range(self.args.max_requests):
            if time.monotonic() >= deadline:
                return
            await self.one(rng.choices(KINDS, WEIGHTS)[0], rng)


async def prepare(http: httpx.AsyncClient, load_datasets: list[str]) -> str:
    """A dataset and a trained model to predict with, before the load starts."""
    r = await http.post("/v1/datasets", files={"file": ("s.csv", small_csv(random.Random(0)))})
    r.raise_for_status()
    load_datasets.append(r.json()["id"])
    r = await http.post("/v1/runs", json={"dataset_id": r.json()["id"], "spec": tiny_spec(3, 0)})
    r.raise_for_status()
    run_id = r.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = (await http.get(f"/v1/runs/{run_id}")).json()
        if run["status"] in FINAL:
            assert run["status"] == "succeeded", run
            return str(run["model_id"])
        await asyncio.sleep(0.2)
    raise TimeoutError("the model for predicts did not train in 120 s")


async def drain(http: httpx.AsyncClient, runs: dict[str, int], timeout: float) -> dict[str, str]:
    """Final status of every accepted run, waiting up to ``timeout`` s for the rest."""
    status: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    pending = list(runs)
    while pending and time.monotonic() < deadline:
        still = []
        for run_id in pending:
            s = (await http.get(f"/v1/runs/{run_id}")).json()["status"]
            status[run_id] = s
            if s not in FINAL:
                still.append(run_id)
        pending = still
        if pending:
            await asyncio.sleep(0.5)
    return status


async def check_histories(http: httpx.AsyncClient, runs: dict[str, int]) -> tuple[int, int]:
    dup = misordered = 0
    for run_id, epochs in runs.items():
        got = [e["epoch"] for e in (await http.get(f"/v1/runs/{run_id}/history")).json()["epochs"]]
        if len(got) != len(set(got)):
            dup += 1
        if got != list(range(1, epochs + 1)):
            misordered += 1
    return dup, misordered


def report(load: Load, elapsed: float) -> None:
    by_kind: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for kind, status, seconds in load.samples:
        by_kind[kind].append((status, seconds))
    total = len(load.samples)
    fivexx = sum(1 for _, s, _ in load.samples if s >= 500)
    print(f"\n{total} requests in {elapsed:.1f} s = {total / elapsed:,.1f} req/s, 5xx: {fivexx}")
    print(f"{'kind':<10}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'non-2xx':>9}{'5xx':>6}")
    for kind in KINDS:
        rows = by_kind.get(kind, [])
        if not rows:
            continue
        ms = [sec * 1e3 for _, sec in rows]
        bad = sum(1 for s, _ in rows if not 200 <= s < 300)
        five = sum(1 for s, _ in rows if s >= 500)
        print(
            f"{kind:<10}{len(rows):>7}{len(rows) / elapsed:>8.1f}{pct(ms, 50):>9.1f}"
            f"{pct(ms, 95):>9.1f}{bad:>9}{five:>6}"
        )
    codes = Counter(s for _, s, _ in load.samples if not 200 <= s < 300)
    if codes:
        print("non-2xx status codes (0 = transport error):", dict(codes))


async def run(args: argparse.Namespace, base: str, key: str) -> None:
    limits = httpx.Limits(max_connections=args.clients + 2)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits
    ) as http:
        datasets: list[str] = []
        model_id = await prepare(http, datasets)
        load = Load(http, args, model_id)
        load.datasets = datasets
        start = time.monotonic()
        deadline = start + args.seconds
        await asyncio.gather(*(load.client(i, deadline) for i in range(args.clients)))
        elapsed = time.monotonic() - start
        print(f"mode {args.mode}, {args.clients} clients, {args.workers} worker process(es)")
        report(load, elapsed)

        t0 = time.monotonic()
        status = await drain(http, load.runs, args.drain_timeout)
        waited = time.monotonic() - t0
        lost = sum(1 for s in status.values() if s not in FINAL)
        dup, misordered = await check_histories(http, load.runs)
        print(
            f"\naccepted runs: {len(load.runs)}, drained in {waited:.1f} s; "
            f"final states: {dict(Counter(status.values()))}"
        )
        print(f"lost: {lost}   dup: {dup}   misordered: {misordered}   (all three should be 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("serve", "pg"), default="serve")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=20_000, help="per client")
    parser.add_argument("--submit-rate", type=float, default=1.0, help="runs per second, max")
    parser.add_argument("--workers", type=int, default=1, help="worker processes / concurrency")
    parser.add_argument("--drain-timeout", type=float, default=240)
    parser.add_argument("--own-redis", action="store_true", help="--mode pg: own redis-server")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="descent-mixed-") as name,
        server(args, Path(name)) as (base, key),
    ):
        asyncio.run(run(args, base, key))


if __name__ == "__main__":
    main()
