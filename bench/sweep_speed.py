"""Sweep speed: a 12-trial grid on digits (learning rate x layers) through a real API and real
Celery workers on PostgreSQL + Redis, with 1 and 2 workers, against the same 12 specs run
one after another as plain runs; and the per-trial scheduling overhead (a trial's wall time
in the sweep minus its own training seconds).

    .venv/bin/python bench/sweep_speed.py [--epochs 15]

Figures are wall times of one run; compare them with each other (these 2-core machines are
shared and noisy). Needs PostgreSQL and Redis on their default local ports.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from descent.processes import (
    API_APP,
    free_port,
    process,
    uvicorn_argv,
    wait_healthy,
    worker_argv,
)

sys.path.insert(0, str(Path(__file__).parent))
import service_world as base

SEARCH: dict[str, Any] = {
    "method": "grid",
    "space": {
        "optimizer.learning_rate": [0.003, 0.01, 0.03],
        "layers": [
            [{"units": 32}],
            [{"units": 64}],
            [{"units": 128}],
            [{"units": 64}, {"units": 32}],
        ],
    },
}


@contextlib.contextmanager
def server(tmp: Path, workers: int) -> Iterator[httpx.Client]:
    """A fresh database, an API and ``workers`` Celery worker processes (concurrency 1)."""
    with base.pg_database() as db_url:
        key = base.api_key_for(db_url)
        env = base.python_env(
            DESCENT_DATABASE_URL=db_url,
            DESCENT_BROKER_URL=base.REDIS_URL,
            DESCENT_DATA_DIR=str(tmp / "data"),
            DESCENT_MAX_CONCURRENT_RUNS_PER_TENANT="12",
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        tmp.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            for i in range(workers):
                argv = worker_argv(f"--hostname=bench{i}@%h")
                stack.enter_context(
                    process(argv, env=env, log=tmp / f"worker{i}.log", cwd=base.REPO)
                )
            api = stack.enter_context(
                process(uvicorn_argv(API_APP, port), env=env,
                        log=tmp / "api.log", cwd=base.REPO)
            )  # fmt: skip
            wait_healthy(url, api, tmp / "api.log")
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                yield http


def upload_digits(http: httpx.Client) -> str:
    X, _, y, _ = base.digits_split()
    response = http.post("/v1/datasets", files={"file": ("d.csv", base.digits_csv(X, y))})
    response.raise_for_status()
    return str(response.json()["id"])


def trial_specs(epochs: int) -> list[dict[str, Any]]:
    specs = []
    for lr in SEARCH["space"]["optimizer.learning_rate"]:
        for layers in SEARCH["space"]["layers"]:
            specs.append({"epochs": epochs, "seed": 1, "layers": layers,
                          "optimizer": {"name": "adam", "learning_rate": lr}})  # fmt: skip
    return specs


def sequential(http: httpx.Client, dataset: str, epochs: int) -> tuple[float, float]:
    """The 12 specs as plain runs, each submitted when the previous one ended: (wall seconds,
    best val_accuracy)."""
    started, best = time.perf_counter(), 0.0
    for spec in trial_specs(epochs):
        run = http.post("/v1/runs", json={"dataset_id": dataset, "spec": spec}).json()
        base.wait_final(http, run["id"], timeout=600)
        history = http.get(f"/v1/runs/{run['id']}/history").json()["epochs"]
        best = max(best, *(e["val_accuracy"] for e in history))  # as the sweep ranks a trial
    return time.perf_counter() - started, best


def sweep(http: httpx.Client, dataset: str, epochs: int, workers: int) -> dict[str, Any]:
    spec = {"epochs": epochs, "seed": 1, "optimizer": {"name": "adam"}}
    body = {"dataset_id": dataset, "spec": spec, "search": SEARCH, "metric": "val_accuracy",
            "mode": "max", "max_parallel": workers}  # fmt: skip
    started = time.perf_counter()
    response = http.post("/v1/sweeps", json=body)
    response.raise_for_status()
    sweep_id = response.json()["id"]
    while (data := http.get(f"/v1/sweeps/{sweep_id}").json())["status"] not in base.FINAL:
        time.sleep(0.05)
    wall = time.perf_counter() - started
    in_run, spans = [], []
    for trial in data["trials"]:
        run = http.get(f"/v1/runs/{trial['run_id']}").json()
        history = http.get(f"/v1/runs/{trial['run_id']}/history").json()["epochs"]
        started_at, finished_at = base.ts(run["started_at"]), base.ts(run["finished_at"])
        # A trial's own overhead: its attempt's time that is not training epochs (loading the
        # dataset, checkpoints, storing the model).
        in_run.append(finished_at - started_at - sum(e["seconds"] for e in history))
        spans.append((started_at, finished_at))
    spans.sort()
    # With one slot, the time from one trial's end to the next one's start: the hand-off.
    handoff = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    return {"wall": wall, "best": data["best"]["value"], "status": data["status"],
            "in_run": in_run, "handoff": handoff if workers == 1 else []}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with server(tmp / "one", workers=1) as http:
            dataset = upload_digits(http)
            results["sequential"] = sequential(http, dataset, args.epochs)
            results["sweep, 1 worker"] = sweep(http, dataset, args.epochs, workers=1)
        with server(tmp / "two", workers=2) as http:
            dataset = upload_digits(http)
            results["sweep, 2 workers"] = sweep(http, dataset, args.epochs, workers=2)
    seq_wall, seq_best = results["sequential"]
    print(f"\n12-trial grid on digits, {args.epochs} epochs each (wall seconds, one run each)")
    print(f"{'case':<22}{'wall s':>9}{'vs sequential':>15}{'best val_accuracy':>19}")
    print(f"{'12 plain runs':<22}{seq_wall:>9.1f}{1.0:>14.2f}x{seq_best:>19.4f}")
    for name in ("sweep, 1 worker", "sweep, 2 workers"):
        r = results[name]
        print(f"{name:<22}{r['wall']:>9.1f}{seq_wall / r['wall']:>14.2f}x{r['best']:>19.4f}")
    for name in ("sweep, 1 worker", "sweep, 2 workers"):
        o = results[name]["in_run"]
        print(
            f"{name}: per-trial overhead in the worker (attempt minus training epochs) "
            f"median {statistics.median(o) * 1e3:.0f} ms, max {max(o) * 1e3:.0f} ms"
        )
    handoff = results["sweep, 1 worker"]["handoff"]
    print(
        f"one slot: a trial's end to the next trial's start, median "
        f"{statistics.median(handoff) * 1e3:.0f} ms, max {max(handoff) * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
