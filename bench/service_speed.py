"""Service speed: predict and read throughput and latency, and how fast an idle worker picks
up a run, on PostgreSQL + Redis and on the embedded default.

    .venv/bin/python bench/service_speed.py [--seconds 5] [--reps 3] [--runs 30]
                                            [--embedded-runs 15] [--own-redis]
                                            [--server-only | --embedded-only]

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

Cases: /healthz, predict 1 and 100 rows (by id), predict 1 row by registry alias, each read
route (run, model, dataset, history) and each list, against the issue's targets as ratios to
/healthz in the same round: predict >= 0.8, reads >= 0.4, lists >= 0.25, and 100 rows >= 2.5x
the naive app. PostgreSQL's own counts of the database's connections (open, and sessions ever
opened) before and after the load show whether the pool churns.

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
    # BENCH_DESCENT_X=v sets DESCENT_X=v for the servers measured (e.g. BENCH_DESCENT_API_THREADS).
    env.update({k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_DESCENT_")})
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


def pg_sessions(database_url: str) -> tuple[int, int]:
    """PostgreSQL's own count of the database's open connections, and of every session ever
    opened on it (pg_stat_database.sessions, PostgreSQL 14+): flat under load means no churn."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        open_now = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
        ever = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    assert open_now is not None and ever is not None
    return int(open_now[0]), int(ever[0])


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


def train_digits(http: httpx.Client) -> dict[str, str]:
    """Trains the digits model and registers it (alias production): the ids the cases use."""
    X_train, _, y_train, _ = digits_split()
    up = http.post("/v1/datasets", files={"file": ("d.csv", digits_csv(X_train, y_train))})
    up.raise_for_status()
    spec = {"layers": [{"units": 64}], "optimizer": {"name": "adam"}, "epochs": 5, "seed": 1}
    run = http.post("/v1/runs", json={"dataset_id": up.json()["id"], "spec": spec})
    run.raise_for_status()
    final = wait_final(http, run.json()["id"])
    assert final["status"] == "succeeded", final
    model_id = str(final["model_id"])
    http.post("/v1/registry", json={"name": "digits"}).raise_for_status()
    http.post("/v1/registry/digits/versions", json={"model_id": model_id}).raise_for_status()
    http.put("/v1/registry/digits/aliases/production", json={"version": 1}).raise_for_status()
    return {"model": model_id, "run": final["id"], "dataset": up.json()["id"], "name": "digits"}


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
    tmp: Path, base: str, naive: str | None, key: str, ids: dict[str, str]
) -> dict[str, tuple[str, int, Path | None]]:
    """Every timed case: Descent's (and, with ``naive``, the naive app's) healthz and predict,
    then Descent's read routes and lists. ``ids``: model, run, dataset, and registry name."""
    _, X_test, _, _ = digits_split()
    one = orjson.dumps({"inputs": X_test[:1].tolist()})
    hundred = orjson.dumps({"inputs": X_test[:100].tolist()})
    model_id = ids["model"]
    predict = f"{base}/v1/models/{model_id}/predict"
    alias = f"{base}/v1/registry/{ids['name']}/aliases/production/predict"
    get = key_script(tmp, key)
    cases: dict[str, tuple[str, int, Path | None]] = {
        "descent GET /healthz": (f"{base}/healthz", 16, None),
        "descent predict 1 row": (predict, 16, post_script(tmp, "p1", one, key)),
        "descent predict 100 rows": (predict, 16, post_script(tmp, "p100", hundred, key)),
        "descent predict 1 row by alias": (alias, 16, post_script(tmp, "pa", one, key)),
    }
    if naive is not None:
        cases.update({
            "naive GET /healthz": (f"{naive}/healthz", 16, None),
            "naive predict 1 row": (f"{naive}/predict", 16, post_script(tmp, "n1", one, None)),
            "naive predict 100 rows": (
                f"{naive}/predict", 16, post_script(tmp, "n100", hundred, None)
            ),
        })  # fmt: skip
    for name, path in READS.items():
        cases[f"descent {name}"] = (base + path.format(**ids), 16, get)
    cases["descent GET /healthz (1 conn)"] = (f"{base}/healthz", 1, None)
    cases["descent predict 1 row (1 conn)"] = (predict, 1, post_script(tmp, "p1b", one, key))
    return cases


# Read routes (target >= 0.4 of healthz) and lists (>= 0.25), by their case names.
READS = {
    "GET /v1/runs/{id}": "/v1/runs/{run}",
    "GET /v1/models/{id}": "/v1/models/{model}",
    "GET /v1/datasets/{id}": "/v1/datasets/{dataset}",
    "GET /v1/runs/{id}/history": "/v1/runs/{run}/history",
    "list GET /v1/runs": "/v1/runs",
    "list GET /v1/datasets": "/v1/datasets",
    "list GET /v1/models": "/v1/models",
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

    def ratio(a: str, b: str) -> list[float]:
        return [r[a]["rps"] / r[b]["rps"] for r in rounds]

    healthz = "descent GET /healthz"
    ratios = {
        "predict 1 row / healthz": ratio("descent predict 1 row", healthz),
        "predict 1 row by alias / healthz": ratio("descent predict 1 row by alias", healthz),
    }
    if "naive predict 100 rows" in cases:
        ratios["predict 100 rows: descent / naive"] = ratio(
            "descent predict 100 rows", "naive predict 100 rows"
        )
        ratios["predict 1 row: descent / naive"] = ratio(
            "descent predict 1 row", "naive predict 1 row"
        )
        ratios["healthz: descent / naive"] = ratio(healthz, "naive GET /healthz")
    for name in READS:
        ratios[f"{name} / healthz"] = ratio(f"descent {name}", healthz)
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
        "predict 1 row / healthz": 0.8,
        "predict 1 row by alias / healthz": 0.8,
        "predict 100 rows: descent / naive": 2.5,
        **{f"{name} / healthz": 0.25 if name.startswith("list") else 0.4 for name in READS},
    }
    p99 = table["descent predict 1 row"]["p99"]
    print(f"\npredict 1 row p99 at 16 connections: {p99:.2f} ms (target < 10 ms: "
          f"{'met' if p99 < 10 else 'NOT met'})")  # fmt: skip
    print(f"\n{'ratio (per round; median [min-max])':<46}{'':>22}  target")
    for name, values in ratios.items():
        med = statistics.median(values)
        span = f"{med:5.2f} [{min(values):.2f}-{max(values):.2f}]"
        goal = targets.get(name)
        verdict = f">= {goal:.2f} {'met' if med >= goal else 'NOT met'}" if goal else ""
        print(f"{name:<46}{span:>22}  {verdict}")


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
            ids = train_digits(http)
            weights = tmp / "model.npz"
            weights.write_bytes(http.get(f"/v1/models/{ids['model']}/weights").content)
            naive_env = python_env(DESCENT_BENCH_WEIGHTS=str(weights))
            naive_argv = uvicorn_argv("service_speed:naive_app", naive_port, "--app-dir", "bench")
            with process(naive_argv, env=naive_env, log=tmp / "naive.log", cwd=REPO) as napp:
                wait_healthy(naive, napp, tmp / "naive.log")
                cases = predict_cases(tmp, base, naive, key, ids)
                check_cases(cases, key)
                before = pg_sessions(db_url)
                table, ratios = run_predict_bench(cases, args.seconds, args.reps)
                after = pg_sessions(db_url)
            print("\nPostgreSQL, Descent's database: connections open / sessions ever opened")
            print(f"  before the load: {before[0]} / {before[1]};  after: {after[0]} / {after[1]}"
                  f"  ({after[1] - before[1]} connections opened during the load)")  # fmt: skip
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
            ids = train_digits(http)
            cases = predict_cases(tmp, base, None, key, ids)
            check_cases(cases, key)
            table, ratios = run_predict_bench(cases, args.seconds, args.reps)
            print("\n`descent serve` (SQLite + filesystem broker, one process):")
            print_predict(table, ratios)
            if args.embedded_runs:
                pickup = time_to_running(http, tiny_dataset(http), args.embedded_runs)
                print_pickup("Time to running, `descent serve`", pickup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk measurement")
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=30, help="runs for time-to-running")
    parser.add_argument("--embedded-runs", type=int, default=15, help="time-to-running runs")
    parser.add_argument("--server-only", action="store_true", help="skip `descent serve`")
    parser.add_argument("--embedded-only", action="store_true", help="only `descent serve`")
    parser.add_argument("--own-redis", action="store_true", help="start a redis-server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="descent-bench-") as name:
        tmp = Path(name)
        if not args.embedded_only:
            bench_server(args, tmp)
        if not args.server_only:
            bench_embedded(args, tmp)


if __name__ == "__main__":
    main()
