"""Alembic environment: online migrations only, against the URL the caller chose."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import text

from core.config import get_settings
from store import tables  # noqa: F401  (registers every table on Base.metadata)
from store.base import Base
from store.session import is_sqlite, make_engine_for_url

config = context.config

# Programmatic callers (core.migrate, tests) keep their own logging.
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else get_settings().database_url


def run_migrations_online() -> None:
    url = _database_url()
    sqlite = is_sqlite(url)
    # Foreign keys off on SQLite while migrating: batch mode drops and recreates tables, which
    # with foreign keys on would cascade into (or fail on) the rows that reference them.
    engine = make_engine_for_url(url, foreign_keys=not sqlite)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
                # Our SQLite engine emits BEGIN itself, so DDL is transactional there too.
                transactional_ddl=True,
                compare_type=True,
                compare_server_default=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    # The check foreign keys=ON would have done, once, at the end.
                    broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
                    if broken:
                        raise RuntimeError(f"foreign key violations after migration: {broken}")
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
