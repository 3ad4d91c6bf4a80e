"""Shared fixtures: real, migrated databases (SQLite file and a fresh PostgreSQL database).

Each backend is created and migrated once per test session; every test then gets empty tables.
Tests that use ``backend_url`` (directly or through ``db``/``client``) run on both backends;
the PostgreSQL half carries the ``postgres`` marker. The servers' addresses come from
``tests/services.py``, which starts throwaway ones when nothing answers; a server that cannot
be had skips the test (and fails it instead in CI, where it must be there).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text, update

from core.auth import create_api_key
from core.config import Settings
from core.migrate import upgrade_to_head
from store.base import Base
from store.session import Database, make_engine_for_url
from store.tables import Run
from tests import services
from tests.services import service_down as service_down  # re-exported for the tests

MiB = 1024 * 1024


def pytest_report_header(config: pytest.Config) -> list[str]:
    return services.report_header()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("test servers")
    for line in services.summary_lines():
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    services.stop_all()


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(services.postgres_admin_url(), autocommit=True, connect_timeout=3)


def create_pg_database() -> tuple[str, str]:
    """A new empty database; returns (name, SQLAlchemy URL). Skips if PostgreSQL is down."""
    name = f"descent_test_{uuid.uuid4().hex[:12]}"
    try:
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_down("PostgreSQL", exc)
    return name, services.postgres_database_url(name)


def drop_pg_database(name: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'descent.sqlite3'}"
    upgrade_to_head(url)
    return url


@contextlib.contextmanager
def pg_database(*, migrated: bool = True) -> Iterator[str]:
    """A new PostgreSQL database (migrated to head unless asked not to), dropped after."""
    name, url = create_pg_database()
    try:
        if migrated:
            upgrade_to_head(url)
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of the test's own (for real processes sharing it)."""
    with pg_database() as url:
        yield url


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def backend_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def database(backend_url: str) -> Iterator[Database]:
    db = Database(make_engine_for_url(backend_url))
    yield db
    db.dispose()


def _empty_tables(db: Database) -> None:
    with db.session() as session:
        # runs <-> models reference each other: break the cycle first.
        session.execute(update(Run).values(model_id=None))
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        session.commit()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    _empty_tables(database)
    yield database
    _empty_tables(database)


@pytest.fixture
def settings(backend_url: str, tmp_path: Path) -> Settings:
    # Small caps so the limit tests are fast; everything else at its default.
    return Settings(
        database_url=backend_url,
        data_dir=tmp_path / "data",
        max_upload_bytes=2 * MiB,
        max_decompressed_bytes=8 * MiB,
        max_json_upload_bytes=2 * MiB,
        # Revocation tests expect an immediate 401; tests/api/test_auth_cache.py covers the cache.
        auth_cache_seconds=0,
    )


@pytest.fixture
def tenant_key(db: Database) -> str:
    with db.session() as session:
        return create_api_key(session, "tenant-a")


@pytest.fixture
def other_key(db: Database) -> str:
    with db.session() as session:
        return create_api_key(session, "tenant-b")


def backend_name(db: Database) -> str:
    return db.engine.dialect.name


def sql_scalar(db: Database, sql: str) -> object:
    with db.read_session() as session:
        return session.execute(text(sql)).scalar()
