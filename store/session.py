"""Engines and sessions.

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys, and -- because
Python's sqlite3 driver otherwise starts transactions lazily and a deferred transaction that reads
and then writes fails at once with "database is locked" -- an explicit ``BEGIN IMMEDIATE`` for
every transaction of the write session, which waits on the busy timeout instead. Read-only work
uses ``Database.read_session()`` (plain ``BEGIN``), so readers do not queue behind writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from core.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "descent_sqlite_begin"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine_for_url(
    url: str,
    *,
    foreign_keys: bool = True,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    echo: bool = False,
) -> Engine:
    """An engine for ``url``; no connection is made until first use.

    ``foreign_keys=False`` is for migrations only: SQLite batch mode recreates tables, and
    dropping a referenced table with foreign keys on would cascade into its children.
    """
    if not is_sqlite(url):
        # pre_ping: a PostgreSQL restart invalidates pooled connections; detect, don't 500.
        return create_engine(url, pool_pre_ping=True, echo=echo)

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
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


def make_engine(settings: Settings) -> Engine:
    return make_engine_for_url(settings.database_url)


def read_only_engine(engine: Engine) -> Engine:
    """Same pool, but SQLite transactions start DEFERRED (no write lock taken)."""
    return engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})


class Database:
    """An engine plus its two session factories; one per process, built lazily by the caller."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # expire_on_commit=False: rows are rendered into responses after the service commits.
        self.write_sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(bind=read_only_engine(engine), expire_on_commit=False)

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

    def ping(self) -> None:
        """Round trip to the database (read-only transaction); raises if it is unreachable."""
        with self.read_sessions() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
