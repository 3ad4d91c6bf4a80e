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
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
import orjson

from descent.processes import API_APP, free_port, process, uvicorn_argv, wait_healthy, worker_argv

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_world import (
    REPO,
    api_key_for,
    digits_split,
    key_script,
    pct,
    pg_database,
    pg_sessions,
    post_script,
    python_env,
    redis_url,
    time_to_running,
    tiny_dataset,
    train_digits,
    wrk,
)


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


def warm_up(cases: dict[str, tuple[str, int, Path | None]]) -> None:
    """Imports, the model cache, and the pools grown to the load's concurrency."""
    for url, conns, script in cases.values():
        wrk(url, 1, conns, script)


def run_predict_bench(
    cases: dict[str, tuple[str, int, Path | None]], seconds: float, reps: int
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
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
            process(uvicorn_argv(API_APP, port), env=env, log=tmp / "api.log",
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
            naive_argv = uvicorn_argv("service_world:naive_app", naive_port, "--app-dir", "bench")
            with process(naive_argv, env=naive_env, log=tmp / "naive.log", cwd=REPO) as napp:
                wait_healthy(naive, napp, tmp / "naive.log")
                cases = predict_cases(tmp, base, naive, key, ids)
                check_cases(cases, key)
                warm_up(cases)
                before = pg_sessions(db_url)
                table, ratios = run_predict_bench(cases, args.seconds, args.reps)
                after = pg_sessions(db_url)
            print("\nPostgreSQL, Descent's database: connections open / sessions ever opened"
                  " (after the warm-up, and after the timed load)")  # fmt: skip
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
            warm_up(cases)
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
