"""Service speed: predict throughput and latency, and how fast an idle worker picks up a run.

    .venv/bin/python bench/service_speed.py [--seconds 5] [--reps 3] [--runs 30]
                                            [--embedded-runs 15] [--own-redis]

Starts everything it measures and stops it again: a throwaway PostgreSQL database on
127.0.0.1:5432, Redis database 12 on 127.0.0.1:6379 (or its own redis-server on a free port with
--own-redis), `uvicorn --factory api.app:serve_app` (what `descent api` runs: uvicorn's auto
loop/http, access log at info, to a file), a real `celery worker --concurrency=1`, and a tiny
"naive" FastAPI app (below, same uvicorn settings) whose /predict takes a pydantic
`list[list[float]]` body and runs the same numpy forward pass on the same model.

Load generator: wrk (`apt-get install -y wrk`), 1 thread, 16 connections (and 1 connection for
unloaded latency). It shares the 2 cores with the server, so the absolute figures are lower
bounds; the ratios, measured in the same rounds, are what to compare. Each case runs --reps
times, interleaved with the others; the table shows the median over rounds.

Part 3 (time to running): N small runs are submitted one at a time with the worker idle; for
each the run's `started_at - created_at` (both stamped by this machine's clock), `started_at` -
the moment POST returned, and the moment a 1 ms GET poll first saw it leave `queued`. Then the
same against `descent serve` (SQLite, filesystem broker).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from fastapi import FastAPI
from pydantic import BaseModel

from descent.processes import free_port, process, wait_healthy

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"
FINAL = ("succeeded", "failed", "cancelled")
TINY_SPEC: dict[str, Any] = {"layers": [{"units": 8}], "epochs": 1, "validation_split": 0.0}


# ---------------------------------------------------------------------------------------------
# Helpers (also used by mixed_load.py; process groups come from descent.processes)


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y
    )
    return X_train, X_test, y_train, y_test


def digits_csv(X: np.ndarray, y: np.ndarray) -> bytes:
    header = ",".join([f"px{i}" for i in range(X.shape[1])] + ["digit"])
    lines = [header] + [
        ",".join(str(int(v)) for v in row) + f",{int(label)}"
        for row, label in zip(X, y, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# The naive comparison app (uvicorn --factory service_speed:naive_app --app-dir bench)


class NaiveIn(BaseModel):
    inputs: list[list[float]]


class NaiveOut(BaseModel):
    predictions: list[int]
    probabilities: list[list[float]]
    classes: list[int]


def naive_app() -> FastAPI:
    """The textbook endpoint: pydantic validates every number, then the model's forward pass."""
    from models import load_model

    model = load_model(Path(os.environ["DESCENT_BENCH_WEIGHTS"]).read_bytes())
    classes = [int(c) for c in model.classes or []]
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(body: NaiveIn) -> NaiveOut:
        proba = model.predict_proba(np.asarray(body.inputs, dtype=np.float64))
        labels = [classes[i] for i in proba.argmax(axis=1)]
        return NaiveOut(predictions=labels, probabilities=proba.tolist(), classes=classes)

    return app


# ---------------------------------------------------------------------------------------------
# Processes and services


# The per-tenant limits would answer a load test with 429s. Raised, not disabled: the limiter
# still counts every request (in Redis when the broker is Redis), as in production.
BENCH_LIMITS = {
    "DESCENT_RATE_LIMIT_PER_MINUTE": "1000000000",
    "DESCENT_MAX_CONCURRENT_RUNS_PER_TENANT": "1000000",
}


def python_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(BENCH_LIMITS)
    env.update(extra)
    return env


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    import psycopg

    name = f"descent_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_url(own: bool, tmp: Path) -> Iterator[str]:
    if not own:
        yield REDIS_URL
        return
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp)]
    with process(argv, env=python_env(), log=tmp / "redis.log"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.2),
            ):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


def api_key_for(database_url: str) -> str:
    from core.auth import create_api_key
    from core.migrate import upgrade_to_head
    from store.session import Database, make_engine_for_url

    upgrade_to_head(database_url)
    db = Database(make_engine_for_url(database_url))
    try:
        with db.session() as session:
            return create_api_key(session, "bench")
    finally:
        db.dispose()


def uvicorn_argv(target: str, port: int, *extra: str) -> list[str]:
    # Same settings for both apps; `descent api` is uvicorn.run(..., log_level="info").
    return [
        sys.executable, "-m", "uvicorn", "--factory", target, *extra,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
    ]  # fmt: skip


def worker_argv() -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--concurrency=1",
        "--queues=descent.runs", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel=info",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def wait_final(http: httpx.Client, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
        if run["status"] in FINAL:
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} not final after {timeout}s")


def train_digits(http: httpx.Client) -> str:
    X_train, _, y_train, _ = digits_split()
    up = http.post("/v1/datasets", files={"file": ("d.csv", digits_csv(X_train, y_train))})
    up.raise_for_status()
    spec = {"layers": [{"units": 64}], "optimizer": {"name": "adam"}, "epochs": 5, "seed": 1}
    run = http.post("/v1/runs", json={"dataset_id": up.json()["id"], "spec": spec})
    run.raise_for_status()
    final = wait_final(http, run.json()["id"])
    assert final["status"] == "succeeded", final
    return str(final["model_id"])


def tiny_dataset(http: httpx.Client) -> str:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.4f}" for v in row) + f",{int(row[0] > 0)}" for row in X]
    up = http.post("/v1/datasets", files={"file": ("tiny.csv", "\n".join(lines).encode())})
    up.raise_for_status()
    return str(up.json()["id"])


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def time_to_running(http: httpx.Client, dataset_id: str, n: int) -> dict[str, list[float]]:
    """Seconds, per run: started_at - created_at; started_at - POST returned; first poll seen
    running - POST returned; the POST itself."""
    out: dict[str, list[float]] = {"server": [], "after_post": [], "polled": [], "post": []}
    body = {"dataset_id": dataset_id, "spec": TINY_SPEC}
    for _ in range(n):
        time.sleep(0.3)  # the worker is idle again (its previous run has finished)
        t0 = time.time()
        r = http.post("/v1/runs", json=body)
        t_ret = time.time()
        r.raise_for_status()
        run_id = r.json()["id"]
        seen = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if http.get(f"/v1/runs/{run_id}").json()["status"] != "queued":
                seen = time.time()
                break
            time.sleep(0.001)
        final = wait_final(http, run_id)
        started = ts(final["started_at"])
        out["server"].append(started - ts(final["created_at"]))
        out["after_post"].append(started - t_ret)
        out["polled"].append((seen or float("nan")) - t_ret)
        out["post"].append(t_ret - t0)
    return out


# ---------------------------------------------------------------------------------------------
# wrk


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk(url: str, seconds: float, conns: int, script: Path | None) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "bad": float(bad.group(1)) if bad else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def post_script(tmp: Path, name: str, body: bytes, key: str | None) -> Path:
    data = tmp / f"{name}.json"
    data.write_bytes(body)
    lines = [
        'wrk.method = "POST"',
        f'local f = io.open("{data}", "rb"); wrk.body = f:read("*a"); f:close()',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {key}"')
    script = tmp / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def key_script(tmp: Path, key: str) -> Path:
    script = tmp / "get.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    return script


# ---------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    vals = sorted(v for v in values if v == v)
    if not vals:
        return float("nan")
    return vals[min(len(vals) - 1, round(q / 100 * (len(vals) - 1)))]


def predict_cases(
    tmp: Path, base: str, naive: str, key: str, model_id: str
) -> dict[str, tuple[str, int, Path | None]]:
    _, X_test, _, _ = digits_split()
    one = orjson.dumps({"inputs": X_test[:1].tolist()})
    hundred = orjson.dumps({"inputs": X_test[:100].tolist()})
    predict = f"{base}/v1/models/{model_id}/predict"
    return {
        "descent GET /healthz": (f"{base}/healthz", 16, None),
        "descent predict 1 row": (predict, 16, post_script(tmp, "p1", one, key)),
        "descent predict 100 rows": (predict, 16, post_script(tmp, "p100", hundred, key)),
        "descent GET /v1/models/{id}": (f"{base}/v1/models/{model_id}", 16, key_script(tmp, key)),
        "naive GET /healthz": (f"{naive}/healthz", 16, None),
        "naive predict 1 row": (f"{naive}/predict", 16, post_script(tmp, "n1", one, None)),
        "naive predict 100 rows": (f"{naive}/predict", 16, post_script(tmp, "n100", hundred, None)),
        "descent GET /healthz (1 conn)": (f"{base}/healthz", 1, None),
        "descent predict 1 row (1 conn)": (predict, 1, post_script(tmp, "p1b", one, key)),
    }


def check_cases(cases: dict[str, tuple[str, int, Path | None]], key: str) -> None:
    """One request per case first: every case must answer 200 before it is timed."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for name, (url, _, script) in cases.items():
        body = script.with_suffix(".json") if script is not None else None
        if body is not None and body.exists():
            r = httpx.post(url, content=body.read_bytes(), headers=headers, timeout=10)
        else:
            r = httpx.get(url, headers=headers, timeout=10)
        if r.status_code != 200:
            raise RuntimeError(f"{name}: {r.status_code} {r.text[:500]}")


def run_predict_bench(
    cases: dict[str, tuple[str, int, Path | None]], seconds: float, reps: int
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    for url, conns, script in cases.values():  # warm-up: imports, model cache, connections
        wrk(url, 1, conns, script)
    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(reps):
        rounds.append({name: wrk(url, seconds, c, s) for name, (url, c, s) in cases.items()})
    table = {
        name: {
            k: statistics.median(r[name][k] for r in rounds)
            if k not in ("bad", "socket_errors")
            else sum(r[name][k] for r in rounds)
            for k in rounds[0][name]
        }
        for name in cases
    }
    ratios = {
        "predict 1 row / healthz (req/s)": [
            r["descent predict 1 row"]["rps"] / r["descent GET /healthz"]["rps"] for r in rounds
        ],
        "predict 100 rows: descent / naive (req/s)": [
            r["descent predict 100 rows"]["rps"] / r["naive predict 100 rows"]["rps"]
            for r in rounds
        ],
        "predict 1 row: descent / naive (req/s)": [
            r["descent predict 1 row"]["rps"] / r["naive predict 1 row"]["rps"] for r in rounds
        ],
        "healthz: descent / naive (req/s)": [
            r["descent GET /healthz"]["rps"] / r["naive GET /healthz"]["rps"] for r in rounds
        ],
    }
    return table, ratios


def print_predict(table: dict[str, dict[str, float]], ratios: dict[str, list[float]]) -> None:
    print(
        f"\n{'case (wrk -t1)':<34}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
    )
    for name, row in table.items():
        conns = 1 if "1 conn" in name else 16
        print(
            f"{name:<34}{conns:>6}{row['rps']:>10,.0f}{row['p50']:>9.2f}{row['p99']:>9.2f}"
            f"{int(row['bad'] + row['socket_errors']):>9}"
        )
    targets = {
        "predict 1 row / healthz (req/s)": "target >= 0.80",
        "predict 100 rows: descent / naive (req/s)": "target >= 2.0",
    }
    print(f"\n{'ratio (per round; median [min-max])':<46}{'':>22}  target")
    for name, values in ratios.items():
        med = statistics.median(values)
        span = f"{med:5.2f} [{min(values):.2f}-{max(values):.2f}]"
        target = targets.get(name, "")
        verdict = ("met" if med >= float(target.split()[-1]) else "NOT met") if target else ""
        print(f"{name:<46}{span:>22}  {target} {verdict}")


def print_pickup(label: str, data: dict[str, list[float]]) -> None:
    print(f"\n{label} ({len(data['server'])} runs, idle worker), ms")
    print(f"{'measure':<46}{'p50':>9}{'p95':>9}{'max':>9}")
    names = {
        "server": "started_at - created_at",
        "after_post": "started_at - POST returned (client clock)",
        "polled": "first GET (1 ms poll) not queued - POST ret.",
        "post": "POST /v1/runs latency",
    }
    for key, name in names.items():
        v = [x * 1e3 for x in data[key]]
        print(f"{name:<46}{pct(v, 50):>9.1f}{pct(v, 95):>9.1f}{max(v):>9.1f}")


def bench_server(args: argparse.Namespace, tmp: Path) -> None:
    with pg_database() as db_url, redis_url(args.own_redis, tmp) as broker:
        key = api_key_for(db_url)
        env = python_env(
            DESCENT_DATABASE_URL=db_url,
            DESCENT_BROKER_URL=broker,
            DESCENT_DATA_DIR=str(tmp / "data"),
        )
        port, naive_port = free_port(), free_port()
        base, naive = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{naive_port}"
        with (
            process(worker_argv(), env=env, log=tmp / "worker.log", cwd=REPO),
            process(uvicorn_argv("api.app:serve_app", port), env=env, log=tmp / "api.log",
                    cwd=REPO) as api,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                         timeout=30) as http,
        ):  # fmt: skip
            wait_healthy(base, api, tmp / "api.log")
            print(f"API {base}, worker on {broker}, database {db_url.rsplit('/', 1)[1]}")
            model_id = train_digits(http)
            weights = tmp / "model.npz"
            weights.write_bytes(http.get(f"/v1/models/{model_id}/weights").content)
            naive_env = python_env(DESCENT_BENCH_WEIGHTS=str(weights))
            naive_argv = uvicorn_argv("service_speed:naive_app", naive_port, "--app-dir", "bench")
            with process(naive_argv, env=naive_env, log=tmp / "naive.log", cwd=REPO) as napp:
                wait_healthy(naive, napp, tmp / "naive.log")
                cases = predict_cases(tmp, base, naive, key, model_id)
                check_cases(cases, key)
                table, ratios = run_predict_bench(cases, args.seconds, args.reps)
            print_predict(table, ratios)
            if args.runs:
                pickup = time_to_running(http, tiny_dataset(http), args.runs)
                print_pickup("Time to running, api + celery worker on PostgreSQL + Redis", pickup)
                med = pct([x * 1e3 for x in pickup["after_post"]], 50)
                print(f"target p50 <= 20 ms (started_at - POST returned): "
                      f"{'met' if med <= 20 else 'NOT met'}")  # fmt: skip


def bench_embedded(args: argparse.Namespace, tmp: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp / "embedded"
    argv = [
        sys.executable,
        "-m",
        "descent.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data),
    ]
    with process(argv, env=python_env(), log=tmp / "serve.log", cwd=REPO) as serve:
        wait_healthy(base, serve, tmp / "serve.log", timeout=60)
        key = (data / "api-key.txt").read_text().strip()
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            pickup = time_to_running(http, tiny_dataset(http), args.embedded_runs)
    print_pickup("Time to running, `descent serve` (SQLite + filesystem broker)", pickup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk measurement")
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=30, help="runs for time-to-running")
    parser.add_argument("--embedded-runs", type=int, default=15, help="0 skips embedded mode")
    parser.add_argument("--own-redis", action="store_true", help="start a redis-server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="descent-bench-") as name:
        tmp = Path(name)
        bench_server(args, tmp)
        if args.embedded_runs:
            bench_embedded(args, tmp)


if __name__ == "__main__":
    main()
