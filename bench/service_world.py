"""What the service benchmarks share: the digits data, the naive FastAPI app, a throwaway
PostgreSQL database, Redis, the API and worker command lines, run helpers, and wrk with its
scripts (bench/service_speed.py, stream_load.py, mixed_load.py, sweep_speed.py)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

from descent.processes import clean_env, free_port, process

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
# The naive comparison app (uvicorn --factory service_world:naive_app --app-dir bench)


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
    env = clean_env(**BENCH_LIMITS)
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
