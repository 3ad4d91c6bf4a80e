"""GET /v1/models/{id}/onnx over HTTP, on both backends: the file loads in onnxruntime and agrees
with POST /v1/models/{id}/predict within 1e-5 (numeric, mixed with gaps, regression, images);
401 without a key, 404 for another tenant's model or an unknown one, 409 for a model that is not
ready, 501 without the onnx extra."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from core.config import Settings
from core.datasets.images import ImageShape, decode_images
from store.session import Database
from store.tables import Run, RunStatus
from tests.api.conftest import bearer
from tests.api.image_archives import digits_as_pngs
from tests.api.runs_fixtures import FEATURES, api, dataset_id, sent, submit, trained, work
from tests.api.test_missing_values_api import penguins_csv

__all__ = ["api", "dataset_id", "sent", "trained"]  # fixtures

TOLERANCE = 1e-5
QUICK = {"layers": [{"units": 16}], "epochs": 5, "seed": 3,
         "optimizer": {"name": "adam", "learning_rate": 0.01}}  # fmt: skip


def download(api: TestClient, key: str, model_id: str) -> ort.InferenceSession:
    response = api.get(f"/v1/models/{model_id}/onnx", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="model-{model_id}.onnx"'
    )
    return ort.InferenceSession(response.content, providers=["CPUExecutionProvider"])


def predicted(api: TestClient, key: str, model_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/v1/models/{model_id}/predict", headers=bearer(key), **body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def outputs(session: ort.InferenceSession, feeds: dict[str, Any]) -> dict[str, Any]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def assert_agree(out: dict[str, Any], answer: dict[str, Any]) -> None:
    diff = np.abs(out["probabilities"] - np.asarray(answer["probabilities"])).max()
    assert diff <= TOLERANCE, diff
    assert out["label"].tolist() == answer["predictions"]


def upload_and_train(
    api: TestClient, key: str, db: Database, settings: Settings, name: str, content: bytes, **form
) -> str:
    up = api.post("/v1/datasets", headers=bearer(key), files={"file": (name, content)}, data=form)
    assert up.status_code == 201, up.text
    run = submit(api, key, up.json()["id"], QUICK).json()
    assert work(db, settings, run["id"]) == "succeeded"
    return str(api.get(f"/v1/runs/{run['id']}", headers=bearer(key)).json()["model_id"])


def test_numeric_model_agrees_with_predict(
    api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    model_id = trained["model_id"]
    session = download(api, tenant_key, model_id)
    [inp] = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("input", "tensor(double)", ["N", len(FEATURES)])
    rows = np.random.default_rng(5).normal(0.0, 2.0, size=(50, len(FEATURES)))
    answer = predicted(api, tenant_key, model_id, json={"inputs": rows.tolist()})
    assert answer["classes"] == ["blue", "green", "red"]
    assert_agree(outputs(session, {"input": rows}), answer)


def test_mixed_table_with_gaps_agrees_with_predict(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    content, _ = penguins_csv(200)
    model_id = upload_and_train(api, tenant_key, db, settings, "p.csv", content)
    session = download(api, tenant_key, model_id)
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("bill_mm", "tensor(double)"),
        ("mass_g", "tensor(double)"),
        ("island", "tensor(string)"),
    ]
    records: list[dict[str, Any]] = [
        {"bill_mm": None, "mass_g": 5000.0, "island": "Biscoe"},
        {"bill_mm": 38.5, "mass_g": None, "island": None},
        {"bill_mm": 48.0, "mass_g": 3700.0, "island": "Atlantis"},  # unseen: all zeros
        {"bill_mm": None, "mass_g": None, "island": None},
        {"bill_mm": 40.1, "mass_g": 3900.0, "island": "Dream"},
    ]
    answer = predicted(api, tenant_key, model_id, json={"records": records})
    feeds = {
        "bill_mm": np.array([[np.nan if r["bill_mm"] is None else r["bill_mm"]] for r in records]),
        "mass_g": np.array([[np.nan if r["mass_g"] is None else r["mass_g"]] for r in records]),
        "island": np.array([[r["island"] or ""] for r in records], dtype=object),  # "": missing
    }
    assert_agree(outputs(session, feeds), answer)


def test_regression_agrees_with_predict(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 3))
    y = 1.5 + x[:, 0] - 2.0 * x[:, 1] + 0.1 * rng.normal(size=150)
    table = np.column_stack([x, y])
    lines = ["a,b,c,y"] + [",".join(f"{v:.6f}" for v in row) for row in table]
    content = ("\n".join(lines) + "\n").encode()
    model_id = upload_and_train(api, tenant_key, db, settings, "r.csv", content)
    session = download(api, tenant_key, model_id)
    rows = rng.normal(size=(20, 3))
    answer = predicted(api, tenant_key, model_id, json={"inputs": rows.tolist()})
    value = outputs(session, {"input": rows})["value"]
    diff = np.abs(value - np.asarray(answer["predictions"])).max()
    assert diff <= TOLERANCE, diff


def test_image_model_agrees_with_predicting_the_pictures(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    archive, held_out = digits_as_pngs()
    model_id = upload_and_train(
        api, tenant_key, db, settings, "digits.zip", archive, image_size="8"
    )
    session = download(api, tenant_key, model_id)
    pictures = held_out[:40]
    files = [("file", (name, data, "image/png")) for name, data, _ in pictures]
    answer = predicted(api, tenant_key, model_id, files=files)
    # The pixels as Descent decodes them: 8x8 grayscale, row-major, in [0, 1].
    pixels = decode_images(
        [(name, data) for name, data, _ in pictures],
        shape=ImageShape(8, "grayscale"),
        settings=settings,
    )
    assert_agree(outputs(session, {"input": pixels}), answer)
    assert answer["classes"] == [str(d) for d in range(10)]


def test_isolation_auth_and_readiness(
    api: TestClient, tenant_key: str, other_key: str, trained: dict[str, Any], db: Database
) -> None:
    model_id = trained["model_id"]
    path = f"/v1/models/{model_id}/onnx"
    assert api.get(path).status_code == 401
    foreign = api.get(path, headers=bearer(other_key))
    missing = api.get(f"/v1/models/{uuid.uuid4()}/onnx", headers=bearer(other_key))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    with db.session() as session:  # the run is no longer "succeeded": its model is not ready
        session.execute(
            update(Run).where(Run.id == uuid.UUID(trained["id"])).values(status=RunStatus.running)
        )
        session.commit()
    not_ready = api.get(path, headers=bearer(tenant_key))
    assert not_ready.status_code == 409
    assert not_ready.json()["error"]["code"] == "model_not_ready"


def test_without_the_onnx_extra_is_a_501(
    api: TestClient, tenant_key: str, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    response = api.get(f"/v1/models/{trained['model_id']}/onnx", headers=bearer(tenant_key))
    assert response.status_code == 501
    error = response.json()["error"]
    assert error["code"] == "onnx_unavailable" and "descent[onnx]" in error["message"]


def test_openapi_documents_the_download(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/models/{model_id}/onnx"]["get"]
    assert "application/octet-stream" in operation["responses"]["200"]["content"]
    assert {"401", "404", "409", "501"} <= set(operation["responses"])
