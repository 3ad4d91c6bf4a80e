"""Prometheus metrics (GET /metrics): what processes count, and what the database knows.

Counted by the process that sees it: HTTP requests by route template and status, their latency,
epochs trained, rows predicted. Read from the database at scrape time (the database is the
truth for every process and machine): runs by status, queue depth.

Multiprocess mode. Each API and worker process writes its counts to its own mmap files in one
directory (prometheus_client's PROMETHEUS_MULTIPROC_DIR, set from ``Settings.metrics_dir``,
default ``<data_dir>/metrics``), and GET /metrics of any API process sums every file there: all
the Descent processes of one machine that share the directory. The library picks multiprocess
mode from that variable when it creates a metric, so this module imports prometheus_client only
inside functions, and creates its metrics lazily, after :func:`claim_directory`.

Who wipes the directory. Files of dead processes keep their totals: right while the processes
they ran beside live on (a sum must not go down), stale once all of them are gone. API and
worker processes start separately (``descent api``, ``descent worker``, or both under ``descent
serve``), so none of them owns the directory alone. Instead every process that claims it holds
a shared flock on ``<dir>/.lock`` for its whole life (Celery's forked pool children inherit it).
A process that starts and gets the lock *exclusively* is the only live user, and wipes the
library's files before anything writes new ones; one that (re)starts beside a live sibling
wipes nothing. The directory must be on a local disk (mmap and flock), one per machine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from core.config import Settings
from store import runs as run_store
from store.tables import RunStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

    from store.session import Database

log = logging.getLogger(__name__)

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
LOCK_FILE = ".lock"
# The files prometheus_client writes: <type>_<pid>.db (gauges: gauge_<mode>_<pid>.db).
_FILE_TYPES = ("counter", "gauge", "histogram", "summary")
# Label value of requests no route matches (any path would be unbounded cardinality).
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds. Predict answers in about a millisecond, an upload can take seconds: 11 bounds + Inf.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0)

T = TypeVar("T")


@dataclass(frozen=True)
class _Claim:
    directory: Path
    fd: int  # the shared lock, held open for the life of the process


_claim: _Claim | None = None
_claim_lock = threading.Lock()


def claim_directory(settings: Settings) -> Path:
    """This process's metrics directory: created, wiped if no live process uses it, locked
    (shared) for the life of the process, and exported as PROMETHEUS_MULTIPROC_DIR. Called at
    the start of every API process (api.routes.metrics) and worker (worker.app); idempotent:
    a process has one directory, the first one claimed (a test session, say, keeps its first)."""
    global _claim
    with _claim_lock:
        if _claim is None:
            directory = settings.metrics_dir.resolve()
            _claim = _Claim(directory, _lock_and_maybe_wipe(directory))
            # Settings win over an inherited variable (a parent's directory is not ours).
            os.environ[ENV_VAR] = str(directory)
        elif settings.metrics_dir.resolve() != _claim.directory:
            log.debug("metrics directory stays %s (claimed first)", _claim.directory)
        return _claim.directory


def claimed_directory() -> Path | None:
    return _claim.directory if _claim is not None else None


def _lock_and_maybe_wipe(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # a live process uses the directory: its files, and the dead ones', stay
    else:
        wiped = 0
        for kind in _FILE_TYPES:
            for path in directory.glob(f"{kind}_*.db"):
                path.unlink(missing_ok=True)
                wiped += 1
        if wiped:
            log.info("metrics: removed %d files of processes gone from %s", wiped, directory)
    # Going from LOCK_EX to LOCK_SH is not atomic: a process starting in between may wipe too,
    # harmlessly, since this one has written no file yet (its metrics come after the claim).
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


# -- what processes count ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Instruments:
    requests: Counter
    latency: Histogram
    epochs: Counter
    predicted_rows: Counter
    # (method, route, status) -> its two children: labels() costs a lock and a tuple per call.
    children: dict[tuple[str, str, int], tuple[Counter, Histogram]]


_instruments: _Instruments | None = None


def _get_instruments() -> _Instruments | None:
    """The metrics, created on first use, so a process that claims the directory but never
    counts anything (``celery inspect``) leaves no files. None before any claim: a process that
    is neither an API process nor a worker (a script, a unit test) records nothing."""
    global _instruments
    if _instruments is None and _claim is not None:
        with _claim_lock:
            if _instruments is None:
                _instruments = _create_instruments()
    return _instruments


def _create_instruments() -> _Instruments:
    from prometheus_client import Counter, Histogram, values

    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client was imported before the directory was claimed (by another library,
        # or a test): switch it now, before the first metric exists (its own test hook).
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    # registry=None: the values live in the files; the scrape reads them from there.
    return _Instruments(
        requests=Counter(
            "descent_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=None,
        ),
        latency=Histogram(
            "descent_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        ),
        epochs=Counter(
            "descent_epochs_trained",
            "Training epochs completed and recorded by the workers.",
            registry=None,
        ),
        predicted_rows=Counter(
            "descent_predicted_rows",
            "Input rows answered by predict.",
            registry=None,
        ),
        children={},
    )


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered HTTP request (api.routes.metrics' middleware). ``route`` is a route
    template or UNMATCHED; an unknown method is counted as OTHER (both bounded)."""
    instruments = _get_instruments()
    if instruments is None:
        return
    if method not in _METHODS:
        method = "OTHER"
    key = (method, route, status)
    pair = instruments.children.get(key)
    if pair is None:
        pair = (
            instruments.requests.labels(method, route, str(status)),
            instruments.latency.labels(method, route),
        )
        instruments.children[key] = pair
    pair[0].inc()
    pair[1].observe(seconds)


def record_epoch() -> None:
    """One epoch trained and recorded (a resumed run counts the epochs it trains again)."""
    instruments = _get_instruments()
    if instruments is not None:
        instruments.epochs.inc()


def counting_epochs(on_epoch: Callable[[T], None]) -> Callable[[T], None]:
    """``on_epoch`` that also counts the epoch once it has been recorded (not when recording
    it failed, a lost lease say)."""

    def recorded(epoch: T) -> None:
        on_epoch(epoch)
        record_epoch()

    return recorded


def record_predicted_rows(n: int) -> None:
    """Rows answered by one predict call."""
    instruments = _get_instruments()
    if instruments is not None and n > 0:
        instruments.predicted_rows.inc(n)


# -- what the database knows, read at scrape time ---------------------------------------------


class DatabaseCollector:
    """Runs by status and queue depth, counted in the database at each scrape: every process
    and machine sees the same numbers, and none keeps a gauge that could drift."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(
            "descent_database_up", "1 if this scrape could count the runs in the database."
        )
        try:
            counts = self._count_runs()
        except SQLAlchemyError as exc:  # the process metrics are still worth answering
            log.warning("metrics: cannot count runs: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        runs = GaugeMetricFamily("descent_runs", "Runs by status.", labels=["status"])
        for status in RunStatus:
            runs.add_metric([status.value], counts.get(status, 0))
        queued = GaugeMetricFamily("descent_queue_depth", "Runs queued and waiting for a worker.")
        queued.add_metric([], counts.get(RunStatus.queued, 0))
        return [up, runs, queued]

    def _count_runs(self) -> dict[RunStatus, int]:
        # Over all tenants: /metrics is the operator's view (hence its token).
        with self.db.read_session() as session:
            return run_store.count_by_status(session)


def registry(db: Database) -> CollectorRegistry:
    """What GET /metrics renders: every process's files in the claimed directory, summed, and
    the database's numbers. Call after :func:`claim_directory`."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = claimed_directory()
    if directory is None:
        raise RuntimeError("claim_directory() first")
    found = CollectorRegistry()
    MultiProcessCollector(found, path=str(directory))  # type: ignore[no-untyped-call]
    found.register(DatabaseCollector(db))
    return found


def render(collectors: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text format and its content type."""
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

    return generate_latest(collectors), CONTENT_TYPE_PLAIN_0_0_4
