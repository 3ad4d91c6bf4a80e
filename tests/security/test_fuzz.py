"""S12: property-based fuzzing of the whole OpenAPI document (schemathesis), in process, on
SQLite and PostgreSQL, as a foreign tenant (the checks: tests.security.fuzzing). Bounded: a few
examples per operation. test_fuzz_live.py sends more cases to a real server over HTTP."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from api.app import create_app
from core.config import Settings
from store.session import Database
from tests.api.runs_fixtures import Sent
from tests.security.conftest import make_tenant
from tests.security.fuzzing import World, app_schema, check_case, fuzz_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MAX_EXAMPLES = 12


@pytest.fixture
def world(settings: Settings, db: Database) -> World:
    setup = TestClient(create_app(settings, database=db, enqueue=Sent()))
    return World(
        make_tenant(setup, db, settings, "fuzz-a"), make_tenant(setup, db, settings, "fuzz-b")
    )


@pytest.fixture
def fuzz_app(settings: Settings, db: Database, world: World) -> Any:
    return create_app(settings, database=db, enqueue=Sent())


schema = app_schema()


@schema.parametrize()
@fuzz_settings(MAX_EXAMPLES)
def test_fuzz_as_a_foreign_tenant(case: Any, world: World, fuzz_app: Any) -> None:
    check_case(case, world, lambda c, headers: c.call(app=fuzz_app, headers=headers))
