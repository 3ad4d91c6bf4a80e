"""What every fuzz case must satisfy, in process or over real HTTP (schemathesis).

Every request carries tenant B's key while tenant A's dataset, runs and model exist, so each
generated call is also an IDOR attempt. Checks: no 5xx, status codes and response bodies as
documented, and no 2xx on any of A's ids: each case with an id in its path (or a dataset_id in
its body) is replayed with A's id substituted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from tests.security.conftest import Tenant

# Not negative_data_rejection: the API ignores unknown query parameters (as most HTTP APIs do),
# and the check counts our replacement Authorization header as a "missing" one.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Sends a case with the given headers and returns schemathesis' response.
Call = Callable[[Any, dict[str, str]], Any]


def fuzz_settings(max_examples: int) -> Any:
    """Hypothesis settings of every fuzz run: reproducible cases, no time limit per case."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def app_schema(*, live: bool = False) -> Any:
    """The OpenAPI document of an app on an in-memory database (building it connects to
    nothing); each test sends the generated cases to its own app, or with ``live`` (a schema
    bound to no app) to a server over HTTP."""
    app = create_app(
        Settings(database_url="sqlite://", broker_url="memory://"),
        database=Database(make_engine_for_url("sqlite://")),
        enqueue=Sent(),
    )
    if live:
        return schemathesis.openapi.from_dict(app.openapi())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


class World:
    def __init__(self, a: Tenant, b: Tenant) -> None:
        self.a, self.b = a, b
        self.a_ids = {
            "dataset_id": [a.dataset_id],
            "run_id": [a.run_id, a.queued_run_id],
            "model_id": [a.model_id],
        }
        self.a_strings = [i for ids in self.a_ids.values() for i in ids]


def check_case(case: Any, world: World, call: Call) -> None:
    headers = world.b.headers
    response = call(case, headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
    _assert_no_leak(response, world, f"{case.method} {case.formatted_path}")

    # The same request aimed at tenant A's objects: never a 2xx, never A's data.
    path_parameters = dict(case.path_parameters or {})
    body = case.body
    try:
        for name in path_parameters:
            for a_id in world.a_ids.get(name, []):
                case.path_parameters = {**path_parameters, name: a_id}
                _assert_refused(case, call, headers, f"A's {name}")
        case.path_parameters = path_parameters
        if isinstance(body, dict) and "dataset_id" in body:
            case.body = {**body, "dataset_id": world.a.dataset_id}
            _assert_refused(case, call, headers, "A's dataset_id in the body")
    finally:
        case.path_parameters = path_parameters
        case.body = body


def _assert_no_leak(response: Any, world: World, where: str) -> None:
    if 200 <= response.status_code < 300:
        text = response.text if hasattr(response, "text") else response.content.decode()
        leaked = [i for i in world.a_strings if i in text]
        assert not leaked, f"{where}: tenant A's ids {leaked} in a 2xx answer to tenant B"


def _assert_refused(case: Any, call: Call, headers: dict[str, str], what: str) -> None:
    answer = call(case, headers)
    where = f"{case.method} {case.formatted_path} with {what}"
    if case.method.upper() == "OPTIONS":
        # Says which methods the path has, the same for any id: no body, nothing of A's.
        assert answer.status_code == 204 and not answer.text, f"{where}: {answer.status_code}"
        return
    assert not 200 <= answer.status_code < 300, f"{where}: {answer.status_code} {answer.text}"
    assert answer.status_code < 500, f"{where}: {answer.status_code} {answer.text}"
