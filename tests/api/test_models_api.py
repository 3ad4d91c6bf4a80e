"""/v1/models over HTTP on both backends: metadata, weights download, every predict input form,
the 4xx answers, tenant isolation and the in-process model cache."""

from __future__ import annotations

import io
import uuid

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from models import load_model
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import FEATURES, SPEC, api, dataset_id, sent, submit, trained, work

__all__ = ["api", "dataset_id", "sent", "trained"]

ROWS = [[0.0, 0.0, 0.0, 0.0], [2.0, -1.5, 1.0, 0.0], [4.0, -3.0, 2.0, 0.0]]
CLASSES = ["blue", "green", "red"]


def predict(api: TestClient, key: str, model_id: str, body: object) -> tuple[int, dict]:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = api.post(
        f"/v1/models/{model_id}/predict",
        headers={**bearer(key), "Content-Type": "application/json"},
        content=content,
    )
    return response.status_code, response.json()


def test_model_metadata_and_weights(api: TestClient, tenant_key: str, trained: dict) -> None:
    model_id = trained["model_id"]
    body = api.get(f"/v1/models/{model_id}", headers=bearer(tenant_key)).json()
    assert body["id"] == model_id and body["run_id"] == trained["id"]
    assert body["task"] == "classification" and body["classes"] == CLASSES
    assert body["input"] == {
        "feature_names": FEATURES,
        "feature_types": ["numeric"] * 4,
        "n_features": 4,
        "image": None,  # not an image model
    }
    assert "accuracy" in body["metrics"] and len(body["weights_sha256"]) == 64
    weights = api.get(f"/v1/models/{model_id}/weights", headers=bearer(tenant_key))
    assert weights.status_code == 200
    assert "attachment" in weights.headers["content-disposition"]
    with np.load(io.BytesIO(weights.content), allow_pickle=False) as npz:
        assert "model.json" in npz.files and "layer0.W" in npz.files
    assert load_model(weights.content).classes == CLASSES


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": ROWS},
        {"instances": ROWS},
        {"records": [dict(zip(FEATURES, r, strict=True)) for r in ROWS]},
        {"dataframe_records": [dict(zip(FEATURES, r, strict=True)) for r in ROWS]},
        {"instances": [dict(zip(FEATURES, r, strict=True)) for r in ROWS]},
        {"dataframe_split": {"columns": FEATURES, "data": ROWS}},
        {"dataframe_split": {"columns": FEATURES[::-1], "data": [r[::-1] for r in ROWS]}},
    ],
)
def test_predict_forms(api: TestClient, tenant_key: str, trained: dict, body: dict) -> None:
    status, out = predict(api, tenant_key, trained["model_id"], body)
    assert status == 200, out
    assert out["model_id"] == trained["model_id"] and out["classes"] == CLASSES
    assert out["predictions"] == CLASSES
    probabilities = np.asarray(out["probabilities"])
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"inputs": [[1.0, 2.0, 3.0]]}, 422, "expected 4 features, got 3"),
        ({"inputs": [[1.0, 2.0, "x", 3.0]]}, 422, "expected a number"),
        ({"inputs": []}, 422, "no rows"),
        ({"records": [{"a": 1, "b": 2, "c": 3, "d": 4, "zz": 5}]}, 422, "unknown column 'zz'"),
        ({"records": [{"a": 1, "b": 2, "c": 3}]}, 422, "missing feature 'd'"),
        (
            {"dataframe_split": {"columns": ["a", "b", "c", "q"], "data": [[1, 2, 3, 4]]}},
            422,
            "'q'",
        ),
        ({"inputs": ROWS, "records": []}, 422, "exactly one"),
        ({"inputs": ROWS, "extra": 1}, 422, "unknown field"),
        ([1, 2], 422, "JSON object"),
        (b"{not json", 400, "malformed"),
        ({"inputs": [[0.0] * 4] * 11}, 413, "limit of 10"),
    ],
)
def test_predict_errors(
    settings: Settings,
    db: Database,
    tenant_key: str,
    trained: dict,
    body: object,
    status: int,
    needle: str,
) -> None:
    from api.app import create_app

    small = TestClient(
        create_app(settings.model_copy(update={"max_predict_rows": 10}), database=db)
    )
    code, out = predict(small, tenant_key, trained["model_id"], body)
    assert code == status, out
    assert needle in out["error"]["message"], out


def test_model_isolation_and_cache(
    api: TestClient, tenant_key: str, other_key: str, trained: dict
) -> None:
    model_id = trained["model_id"]
    cache = api.app.state.model_cache  # type: ignore[attr-defined]
    assert predict(api, tenant_key, model_id, {"inputs": ROWS})[0] == 200
    assert len(cache) == 1
    hits = cache.hits
    assert predict(api, tenant_key, model_id, {"inputs": ROWS})[0] == 200
    assert cache.hits > hits
    # Another tenant: 404 identical to a missing model, for metadata, weights and predict
    # (also when the model sits in the cache).
    for path in ("", "/weights"):
        foreign = api.get(f"/v1/models/{model_id}{path}", headers=bearer(other_key))
        missing = api.get(f"/v1/models/{uuid.uuid4()}{path}", headers=bearer(other_key))
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
    assert predict(api, other_key, model_id, {"inputs": ROWS})[0] == 404
    assert predict(api, tenant_key, str(uuid.uuid4()), {"inputs": ROWS})[0] == 404


def test_openapi_documents_predict(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    body = schema["paths"]["/v1/models/{model_id}/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/PredictIn")
    assert set(schema["components"]["schemas"]["PredictIn"]["properties"]) == {
        "inputs", "records", "dataframe_split", "dataframe_records", "instances",
    }  # fmt: skip
    assert "/v1/runs/{run_id}/history" in schema["paths"]


def test_models_are_listed_newest_first_paged_and_filtered(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str, db: Database,
    settings: Settings,
) -> None:  # fmt: skip
    h = bearer(tenant_key)
    runs = []
    for seed in (1, 2, 3):
        run = submit(api, tenant_key, dataset_id, {**SPEC, "seed": seed}).json()
        assert work(db, settings, run["id"]) == "succeeded"
        runs.append(api.get(f"/v1/runs/{run['id']}", headers=h).json())
    newest_first = [r["model_id"] for r in reversed(runs)]

    first = api.get("/v1/models?limit=2", headers=h).json()
    assert [m["id"] for m in first["items"]] == newest_first[:2]
    rest = api.get(f"/v1/models?limit=2&cursor={first['next_cursor']}", headers=h).json()
    assert [m["id"] for m in rest["items"]] == newest_first[2:] and rest["next_cursor"] is None
    assert first["items"][0]["run_id"] == runs[-1]["id"]

    by_run = api.get(f"/v1/models?run_id={runs[0]['id']}", headers=h).json()["items"]
    assert [m["id"] for m in by_run] == [runs[0]["model_id"]]
    by_dataset = api.get(f"/v1/models?dataset_id={dataset_id}", headers=h).json()["items"]
    assert [m["id"] for m in by_dataset] == newest_first
    other_dataset = api.get(f"/v1/models?dataset_id={uuid.uuid4()}", headers=h).json()
    assert other_dataset["items"] == []
    assert api.get("/v1/models", headers=bearer(other_key)).json()["items"] == []
    assert api.get("/v1/models?cursor=nonsense", headers=h).status_code == 400
