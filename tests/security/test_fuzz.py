"""S12: property-based fuzzing of the whole OpenAPI document (schemathesis), in process.

Every request carries tenant B's key while tenant A's dataset, runs and model exist, so each
generated call is also an IDOR attempt. Checks: no 5xx, status codes and response bodies as
documented, and no 2xx on any of A's ids -- each case with an id in its path (or a dataset_id in
its body) is replayed with A's id substituted. Bounded: a few examples per operation.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from core.config import Settings
from store.session import Database, make_engine_for_url
from tests.api.runs_fixtures import Sent
from tests.security.conftest import Tenant, make_tenant

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# Not negative_data_rejection: the API ignores unknown query parameters (as most HTTP APIs do),
# and the check counts our replacement Authorization header as a "missing" one.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 12


class World:
    def __init__(self, a: Tenant, b: Tenant) -> None:
        self.a, self.b = a, b
        self.a_ids = {
            "dataset_id": [a.dataset_id],
            "run_id": [a.run_id, a.queued_run_id],
            "model_id": [a.model_id],
        }
        self.a_strings = [i for ids in self.a_ids.values() for i in ids]


@pytest.fixture
def world(settings: Settings, db: Database) -> World:
    setup = TestClient(create_app(settings, database=db, enqueue=Sent()))
    return World(
        make_tenant(setup, db, settings, "fuzz-a"), make_tenant(setup, db, settings, "fuzz-b")
    )


@pytest.fixture
def fuzz_app(settings: Settings, db: Database, world: World) -> Any:
    return create_app(settings, database=db, enqueue=Sent())


def _template_app() -> Any:
    """An app on an in-memory database (building it connects to nothing) that serves the
    OpenAPI document; the generated cases are sent to each test's own app (``call(app=...)``)."""
    return create_app(
        Settings(database_url="sqlite://", broker_url="memory://"),
        database=Database(make_engine_for_url("sqlite://")),
        enqueue=Sent(),
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _template_app())


def _assert_no_leak(response: Any, world: World, where: str) -> None:
    if 200 <= response.status_code < 300:
        text = response.text if hasattr(response, "text") else response.content.decode()
        leaked = [i for i in world.a_strings if i in text]
        assert not leaked, f"{where}: tenant A's ids {leaked} in a 2xx answer to tenant B"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_as_a_foreign_tenant(case: Any, world: World, fuzz_app: Any) -> None:
    headers = world.b.headers
    response = case.call(app=fuzz_app, headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
    _assert_no_leak(response, world, f"{case.method} {case.formatted_path}")

    # The same request aimed at tenant A's objects: never a 2xx, never A's data.
    path_parameters = dict(case.path_parameters or {})
    body = case.body
    try:
        for name in path_parameters:
            for a_id in world.a_ids.get(name, []):
                case.path_parameters = {**path_parameters, name: a_id}
                _assert_refused(case, fuzz_app, headers, world, f"A's {name}")
        case.path_parameters = path_parameters
        if isinstance(body, dict) and "dataset_id" in body:
            case.body = {**body, "dataset_id": world.a.dataset_id}
            _assert_refused(case, fuzz_app, headers, world, "A's dataset_id in the body")
    finally:
        case.path_parameters = path_parameters
        case.body = body


def _assert_refused(case: Any, app: Any, headers: dict[str, str], world: World, what: str) -> None:
    answer = case.call(app=app, headers=headers)
    where = f"{case.method} {case.formatted_path} with {what}"
    assert not 200 <= answer.status_code < 300, f"{where}: {answer.status_code} {answer.text}"
    assert answer.status_code < 500, f"{where}: {answer.status_code} {answer.text}"
