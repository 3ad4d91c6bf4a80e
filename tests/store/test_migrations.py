"""Migrations on both backends: upgrade -> check (no drift) -> downgrade base -> upgrade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from core.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from store.session import make_engine_for_url
from tests.conftest import create_pg_database, drop_pg_database

EXPECTED_TABLES = {
    "tenants",
    "api_keys",
    "datasets",
    "runs",
    "run_epochs",
    "checkpoints",
    "models",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


def _tables(url: str) -> set[str]:
    engine = make_engine_for_url(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _seed(url: str) -> uuid.UUID:
    """One row in the tables that batch mode rebuilds, inserted the way the app would."""
    tenant_id = uuid.uuid4()
    engine = make_engine_for_url(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO tenants (id, name, created_at) VALUES (:id, 'seed', :now)"),
                {
                    "id": tenant_id.hex if url.startswith("sqlite") else tenant_id,
                    "now": "2026-01-01 00:00:00+00:00",
                },
            )
    finally:
        engine.dispose()
    return tenant_id


def test_upgrade_check_downgrade_upgrade(fresh_url: str) -> None:
    config = alembic_config(fresh_url)
    upgrade_to_head(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    assert _tables(fresh_url) == EXPECTED_TABLES
    # The models match the migrations: autogenerate finds nothing to do.
    command.check(config)

    _seed(fresh_url)
    command.downgrade(config, "base")
    assert current_revision(fresh_url) is None
    assert _tables(fresh_url) == set()

    upgrade_to_head(fresh_url)
    assert _tables(fresh_url) == EXPECTED_TABLES
    command.check(config)
    # Upgrading an up-to-date database is a no-op, with rows present.
    _seed(fresh_url)
    upgrade_to_head(fresh_url)
    assert current_revision(fresh_url) == head_revision()


def test_single_head_and_frozen_revision_files() -> None:
    """One linear history, and revisions do not import application code (they must not change
    meaning when the models do)."""
    assert head_revision() == "0002"
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    for path in versions.glob("*.py"):
        source = path.read_text()
        assert "from store" not in source and "import store" not in source, path
