"""A client's huge field name is not echoed back whole: an error names it in at most
``MAX_QUOTED_CHARS`` characters, wherever it sits (the spec, the body), and lists at most
``MAX_LISTED_ERRORS`` errors. The finding: a 10 MiB bad cell came back twice in its 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.errors import MAX_LISTED_ERRORS, MAX_QUOTED_CHARS
from tests.api.runs_fixtures import SPEC
from tests.security.conftest import Tenant

KEY = "k" * 100_000  # a field name of 100 KB (the JSON body cap is 1 MiB)


def _answer(api: TestClient, tenant: Tenant, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    answer = api.post("/v1/runs/validate", headers=tenant.headers, json=body)
    assert answer.status_code == 422, answer.text[:300]
    return answer.json()["error"], len(answer.content)


@pytest.mark.parametrize(
    "where",
    ["spec", "body", "spec-many"],
)
def test_a_huge_field_name_is_cut_in_the_error(
    api: TestClient, tenant_b: Tenant, where: str
) -> None:
    body: dict[str, Any]
    if where == "spec":
        body = {"dataset_id": tenant_b.dataset_id, "spec": {**SPEC, KEY: 1}}
    elif where == "body":
        body = {"dataset_id": tenant_b.dataset_id, "spec": SPEC, KEY: 1}
    else:  # many bad names: the answer lists the first ones and counts them all
        body = {
            "dataset_id": tenant_b.dataset_id,
            "spec": {**SPEC, **{f"x{i}": 1 for i in range(500)}},
        }
    error, size = _answer(api, tenant_b, body)
    assert size < 20_000, f"a {size}-byte error"
    details = error["details"]
    if where == "spec-many":
        assert details["error_count"] == 500 and len(details["errors"]) == MAX_LISTED_ERRORS
        assert details["field"] == "spec.x0"
        return
    assert KEY[:MAX_QUOTED_CHARS] in details["field"]
    assert "more characters" in details["field"] and len(details["field"]) < 2 * MAX_QUOTED_CHARS
    assert len(error["message"]) < 3 * MAX_QUOTED_CHARS


@pytest.mark.parametrize("where", ["field", "record-column", "columns"])
def test_a_huge_name_in_a_predict_body_is_cut(
    api: TestClient, tenant_b: Tenant, where: str
) -> None:
    huge = "c" * 1_000_000  # 1 MB, under predict's body cap
    names = api.get(f"/v1/models/{tenant_b.model_id}", headers=tenant_b.headers).json()
    record = dict.fromkeys(names["input"]["feature_names"], 1.0)
    bodies: dict[str, dict[str, Any]] = {
        "field": {"inputs": [[1.0, 2.0]], huge: 1},
        "record-column": {"records": [{**record, huge: 1.0}]},
        "columns": {"dataframe_split": {"columns": [*record, huge], "data": [[1.0] * 3]}},
    }
    answer = api.post(
        f"/v1/models/{tenant_b.model_id}/predict", headers=tenant_b.headers, json=bodies[where]
    )
    assert answer.status_code == 422, answer.text[:300]
    assert len(answer.content) < 2_000, f"a {len(answer.content)}-byte error"
    assert huge[:MAX_QUOTED_CHARS] in answer.text  # still names it


def test_a_huge_key_beside_an_unstorable_value_is_cut(api: TestClient, tenant_b: Tenant) -> None:
    """The spec check for values the database cannot hold (past 64 bits, NUL) names the path."""
    body = {"dataset_id": tenant_b.dataset_id, "spec": {**SPEC, KEY: 2**70}}
    error, size = _answer(api, tenant_b, body)
    assert size < 20_000, f"a {size}-byte error"
    assert "integer out of range at " + KEY[:MAX_QUOTED_CHARS] in error["message"]
