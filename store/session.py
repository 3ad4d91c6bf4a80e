"""Engines and sessions.

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys, and -- because
Python's sqlite3 driver otherwise starts transactions lazily and a deferred transaction that reads
and then writes fails at once with "database is locked" -- an explicit ``BEGIN IMMEDIATE`` for
every transaction of the write session, which waits on the busy timeout instead. Read-only work
uses ``Database.read_session()`` (plain ``BEGIN``), so readers do not queue behind writers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
import orjson
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from core.config import Settings
    from store.async_reads import AsyncReads

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "descent_sqlite_begin"
# For tools and tests; the API and the workers pass Settings.db_pool_size.
DEFAULT_POOL_SIZE = 5
POOL_TIMEOUT_SECONDS = 10.0
# The event-loop reads wait this long for a pooled connection, then read through the engine.
READ_POOL_WAIT_SECONDS = 0.2
PING_AFTER_IDLE_SECONDS = 1.0
# JSON columns (specs, metrics) are parsed on every read: orjson does it in a fifth of the
# time of the json module.
JSON_LOADS = orjson.loads


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine_for_url(
    url: str,
    *,
    foreign_keys: bool = True,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    echo: bool = False,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> Engine:
    """An engine for ``url``; no connection is made until first use.

    The pool holds ``pool_size`` connections and never more: sized to the threads that use it
    (Settings.db_pool_size), it never opens and closes overflow connections per request (each a
    new PostgreSQL backend process, or a SQLite file opened with its PRAGMAs). A request that
    finds it empty waits for a connection, then answers 503 (PoolTimeoutError).

    ``foreign_keys=False`` is for migrations only: SQLite batch mode recreates tables, and
    dropping a referenced table with foreign keys on would cascade into its children.
    """
    pooling = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT_SECONDS}
    common: dict[str, Any] = {"echo": echo, "json_deserializer": JSON_LOADS}
    if not is_sqlite(url):
        engine = create_engine(url, **common, **pooling)
        _ping_after_idle(engine)
        return engine

    database = make_url(url).database
    in_memory = database is None or database in ("", ":memory:")
    if database is not None and not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        **common,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        **({} if in_memory else pooling),  # in memory: one connection per thread, no pool
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; the "begin" hook below emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            # WAL makes NORMAL durable against application crashes; only power loss can undo
            # the last transactions.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _ping_after_idle(engine: Engine) -> None:
    """A connection that sat in the pool for a while is pinged before use (a PostgreSQL restart
    meanwhile would have closed it: detect it, don't 503); one in steady use is not, so a busy
    API pays no extra round trip per request (pool_pre_ping would ping every checkout). A
    connection that breaks in use invalidates the pool, and the request answers 503."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and checks out (or opens) another.
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def make_engine(settings: Settings) -> Engine:
    return make_engine_for_url(settings.database_url, pool_size=settings.db_pool_size)


def read_only_engine(engine: Engine) -> Engine:
    """Same pool, for sessions that only read. SQLite: transactions start DEFERRED (no write
    lock taken). PostgreSQL: autocommit, so a read is its one statement's round trip, without
    BEGIN and ROLLBACK around it; under READ COMMITTED each statement sees its own snapshot
    inside a transaction too, so nothing a reader sees changes."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class NoConnectionSoon(Exception):
    """No pooled connection within the short wait: every one is busy, or none can be made (the
    database is down or restarting; psycopg_pool would keep the read waiting while it retries).
    The caller reads through the engine instead, which refuses at once when the database is
    unreachable (a 503)."""


class Database:
    """An engine plus its two session factories; one per process, built lazily by the caller."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # expire_on_commit=False: rows are rendered into responses after the service commits.
        self.write_sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self._read_engine = read_only_engine(engine)
        self.read_sessions = sessionmaker(bind=self._read_engine, expire_on_commit=False)
        # Set while an API process runs on PostgreSQL (open_async_reads).
        self.async_reads: AsyncReads | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(make_engine(settings))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for work that may write. The caller (a service function) commits."""
        with self.write_sessions() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with self.read_sessions() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection for reads that want rows, not ORM entities (no session to build)."""
        with self._read_engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        """Round trip to the database (read-only transaction); raises if it is unreachable."""
        with self.read_sessions() as session:
            session.execute(text("SELECT 1"))

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` on a read connection, from the event loop: on it, when the API opened
        its async reads; otherwise in one worker thread, where the connection is checked out,
        read and returned in that one hop."""
        if self.async_reads is not None:
            try:
                return await self.async_reads.run(work)
            except NoConnectionSoon:
                pass  # busy, or the database is unreachable: the engine answers (or 503s)

        def run() -> T:
            with self.read_connection() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(run)

    async def open_async_reads(self, size: int) -> None:
        """PostgreSQL: from now on the API's reads run on its event loop (store.async_reads),
        on at most ``size`` more connections. SQLite keeps its worker threads."""
        if self.engine.dialect.name != "postgresql" or self.async_reads is not None:
            return
        from store.async_reads import AsyncReads  # psycopg_pool and greenlet: the API only

        reads = AsyncReads(
            self.engine,
            size=size,
            wait=READ_POOL_WAIT_SECONDS,
            ping_after=PING_AFTER_IDLE_SECONDS,
            json_loads=JSON_LOADS,
        )
        await reads.open()
        self.async_reads = reads

    async def close_async_reads(self) -> None:
        reads, self.async_reads = self.async_reads, None
        if reads is not None:
            await reads.close()

    def dispose(self) -> None:
        self.engine.dispose()
