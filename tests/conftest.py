"""Shared fixtures: real, migrated databases (SQLite file and a fresh PostgreSQL database).

Each backend is created and migrated once per test session; every test then gets empty tables.
Tests that use ``backend_url`` (directly or through ``db``/``client``) run on both backends;
the PostgreSQL half carries the ``postgres`` marker and is skipped if the server is down
(and fails instead in CI, where it must be up).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from sqlalchemy import text, update

from core.auth import create_api_key
from core.config import Settings
from core.migrate import upgrade_to_head
from store.base import Base
from store.session import Database, make_engine_for_url
from store.tables import Run

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"
MiB = 1024 * 1024


def service_down(what: str, exc: BaseException) -> NoReturn:
    """Skip a test whose server is down on a developer's machine; in CI (``CI`` set) the
    server is part of the run, so its absence fails the test instead of hiding it."""
    message = f"{what} not reachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname=PG_ADMIN_DB,
        autocommit=True,
        connect_timeout=3,
    )


def create_pg_database() -> tuple[str, str]:
    """A new empty database; returns (name, SQLAlchemy URL). Skips if PostgreSQL is down."""
    name = f"descent_test_{uuid.uuid4().hex[:12]}"
    try:
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_down("PostgreSQL", exc)
    return name, f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(name: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'descent.sqlite3'}"
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name, url = create_pg_database()
    try:
        upgrade_to_head(url)
        yield url
    finally:
        drop_pg_database(name)


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
