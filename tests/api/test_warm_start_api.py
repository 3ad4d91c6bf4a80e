"""Warm start over HTTP on both backends: ``init_from_model_id`` on POST /v1/runs and
/v1/runs/validate. The run starts from the model's weights (its first epoch's loss is near the
model's last, far below a fresh run's), its epochs count on from the model's, a model that does
not fit is a 422 naming what differs before anything is queued, another tenant's model is
unknown, the Idempotency-Key covers the field, and a worker crash resumes it exactly."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core import runs
from core.config import Settings
from core.runs import lease, training
from models import EpochEnd
from store.base import utcnow
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, Sent, api, blobs_csv, dataset_id, sent, submit, trained

__all__ = ["api", "dataset_id", "sent", "trained"]

MORE = {**SPEC, "epochs": 3}


class Crash(BaseException):
    """Stands in for the worker process dying (not an Exception: nothing catches it)."""


def _upload(api: TestClient, key: str, csv: bytes, name: str = "d.csv") -> str:
    response = api.post("/v1/datasets", headers=bearer(key), files={"file": (name, csv)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _history(api: TestClient, key: str, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/runs/{run_id}/history", headers=bearer(key))
    return list(response.json()["epochs"])


def _trained_run(api: TestClient, key: str, db: Database, settings: Settings, **body: Any) -> Any:
    response = submit(api, key, body.pop("dataset_id"), **body)
    assert response.status_code == 202, response.text
    assert training.run_training(db, response.json()["id"], settings=settings) == "succeeded"
    return api.get(f"/v1/runs/{response.json()['id']}", headers=bearer(key)).json()


def _weights(api: TestClient, key: str, model_id: str) -> dict[str, np.ndarray[Any, Any]]:
    blob = api.get(f"/v1/models/{model_id}/weights", headers=bearer(key)).content
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return {k: arrays[k] for k in arrays.files if k.startswith("layer")}


def test_warm_start_continues_the_model(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    db: Database,
    settings: Settings,
    sent: Sent,
) -> None:
    parent_id = trained["model_id"]
    response = submit(api, tenant_key, dataset_id, spec=MORE, init_from_model_id=parent_id)
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["parent_model_id"] == parent_id
    assert queued["spec"]["epochs"] == 3  # this run's; its progress counts on from the model's
    assert queued["progress"] == {"epoch": 4, "epochs": 7, "fraction": 0.0, "eta_seconds": None}
    assert sent[-1] == queued["id"]
    assert training.run_training(db, queued["id"], settings=settings) == "succeeded"

    run = api.get(f"/v1/runs/{queued['id']}", headers=bearer(tenant_key)).json()
    assert run["progress"]["epoch"] == run["progress"]["epochs"] == 7
    assert run["progress"]["fraction"] == 1.0 and run["parent_model_id"] == parent_id
    assert trained["parent_model_id"] is None
    listed = api.get("/v1/runs", headers=bearer(tenant_key)).json()["items"]
    assert {r["id"]: r["parent_model_id"] for r in listed}[run["id"]] == parent_id

    before, after = _history(api, tenant_key, trained["id"]), _history(api, tenant_key, run["id"])
    assert [e["epoch"] for e in after] == [5, 6, 7]
    assert 5 <= run["best"]["epoch"] <= 7
    # It starts where the model left off, not from scratch.
    assert after[0]["train_loss"] < 0.25 * before[0]["train_loss"]
    assert after[0]["train_loss"] < 2 * before[-1]["train_loss"]

    # A warm start of a warm start counts on again.
    again = _trained_run(
        api, tenant_key, db, settings, dataset_id=dataset_id, spec={**SPEC, "epochs": 2},
        init_from_model_id=run["model_id"],
    )  # fmt: skip
    assert [e["epoch"] for e in _history(api, tenant_key, again["id"])] == [8, 9]
    model = api.get(f"/v1/models/{again['model_id']}", headers=bearer(tenant_key)).json()
    assert model["classes"] == ["blue", "green", "red"]


def test_spec_fields_left_out_are_the_models(
    api: TestClient, tenant_key: str, dataset_id: str, trained: dict[str, Any]
) -> None:
    body = {"spec": {"epochs": 2, "optimizer": {"name": "sgd"}}}
    response = submit(api, tenant_key, dataset_id, init_from_model_id=trained["model_id"], **body)
    assert response.status_code == 202, response.text
    spec, was = response.json()["spec"], trained["spec"]
    assert spec["epochs"] == 2 and spec["optimizer"]["name"] == "sgd"  # given: the request's
    assert spec["optimizer"]["learning_rate"] == 0.01  # a given field is whole: sgd's default
    for name in ("layers", "loss", "preprocessing", "seed", "batch_size", "validation_split"):
        assert spec[name] == was[name], name


def test_new_data_with_the_same_features_is_accepted(
    api: TestClient, tenant_key: str, trained: dict[str, Any], db: Database, settings: Settings
) -> None:
    fresh_rows = _upload(api, tenant_key, blobs_csv(n=60, seed=7))
    run = _trained_run(
        api, tenant_key, db, settings, dataset_id=fresh_rows, spec=MORE,
        init_from_model_id=trained["model_id"],
    )  # fmt: skip
    assert [e["epoch"] for e in _history(api, tenant_key, run["id"])] == [5, 6, 7]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"layers": [{"units": 16}]}, "spec.layers.0.units"),
        ({"layers": [{"units": 8, "activation": "tanh"}]}, "spec.layers.0.activation"),
        ({"layers": [{"units": 8}, {"units": 8}]}, "spec.layers"),
        ({"preprocessing": {"standardize": False}}, "spec.preprocessing"),
    ],
)
def test_another_architecture_is_422_naming_the_field(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    sent: Sent,
    change: dict[str, Any],
    field: str,
) -> None:
    queued_before = list(sent)
    body = {"dataset_id": dataset_id, "spec": {**MORE, **change}}
    body["init_from_model_id"] = trained["model_id"]
    for path in ("/v1/runs", "/v1/runs/validate"):
        response = api.post(path, headers=bearer(tenant_key), json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "incompatible_init_model"
        assert error["details"]["field"] == field, error
    assert sent == queued_before  # nothing queued
    assert len(api.get("/v1/runs", headers=bearer(tenant_key)).json()["items"]) == 1


@pytest.mark.parametrize(
    ("csv", "field", "says"),
    [
        # Other column names.
        (blobs_csv().replace(b"a,b,c,d,", b"w,x,y,z,", 1), "init_from_model_id", "features"),
        # Another class ("red" renamed).
        (blobs_csv().replace(b"red", b"pink"), "init_from_model_id", "classes"),
        # A numeric label: a regression dataset.
        (
            blobs_csv().replace(b"blue", b"0").replace(b"green", b"1.5").replace(b"red", b"3"),
            "spec.task",
            "classification",
        ),
    ],
)
def test_a_dataset_that_does_not_fit_is_422(
    api: TestClient,
    tenant_key: str,
    trained: dict[str, Any],
    sent: Sent,
    csv: bytes,
    field: str,
    says: str,
) -> None:
    other = _upload(api, tenant_key, csv)
    queued_before = list(sent)
    for path in ("/v1/runs", "/v1/runs/validate"):
        response = api.post(
            path,
            headers=bearer(tenant_key),
            json={"dataset_id": other, "spec": MORE, "init_from_model_id": trained["model_id"]},
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["details"]["field"] == field and says in error["message"], error
    assert sent == queued_before


def test_unknown_or_foreign_model_is_422(
    api: TestClient, tenant_key: str, other_key: str, trained: dict[str, Any], sent: Sent
) -> None:
    """Answered like a foreign dataset_id: 422 naming the field, the same for a model that
    exists elsewhere as for one that does not."""
    theirs = _upload(api, other_key, blobs_csv())
    queued_before = list(sent)
    answers = []
    for model_id in (trained["model_id"], str(uuid.uuid4())):
        for path in ("/v1/runs", "/v1/runs/validate"):
            response = api.post(
                path,
                headers=bearer(other_key),
                json={"dataset_id": theirs, "spec": MORE, "init_from_model_id": model_id},
            )
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["details"] == {"field": "init_from_model_id", "value": model_id}
            answers.append((error["code"], error["message"]))
    assert set(answers) == {("model_not_found", "model not found")}
    assert sent == queued_before
    assert submit(api, other_key, theirs, init_from_model_id="not-a-uuid").status_code == 422


def test_idempotency_key_covers_the_model(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    db: Database,
    settings: Settings,
) -> None:
    headers = {**bearer(tenant_key), "Idempotency-Key": "warm-1"}
    body = {"dataset_id": dataset_id, "spec": MORE, "init_from_model_id": trained["model_id"]}
    first = api.post("/v1/runs", headers=headers, json=body)
    again = api.post("/v1/runs", headers=headers, json=body)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["parent_model_id"] == trained["model_id"]

    sibling = _trained_run(api, tenant_key, db, settings, dataset_id=dataset_id)
    for other in (
        {**body, "init_from_model_id": sibling["model_id"]},
        {k: v for k, v in body.items() if k != "init_from_model_id"},
    ):
        response = api.post("/v1/runs", headers=headers, json=other)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    # And the other way round: a key first used from scratch is not a warm start's.
    plain = {**bearer(tenant_key), "Idempotency-Key": "plain-1"}
    assert api.post("/v1/runs", headers=plain, json={**body, "init_from_model_id": None}).is_success
    assert api.post("/v1/runs", headers=plain, json=body).status_code == 409


def test_validate_a_warm_start(
    api: TestClient, tenant_key: str, dataset_id: str, trained: dict[str, Any], sent: Sent
) -> None:
    queued_before = list(sent)
    body = {"dataset_id": dataset_id, "spec": MORE, "init_from_model_id": trained["model_id"]}
    response = api.post("/v1/runs/validate", headers=bearer(tenant_key), json=body)
    assert response.status_code == 200, response.text
    check = response.json()
    assert check["n_parameters"] == 4 * 8 + 8 + 8 * 3 + 3 and check["spec"]["epochs"] == 3
    assert not any("seed" in w for w in check["warnings"])
    reseeded = {**body, "spec": {**MORE, "seed": 4}}
    response = api.post("/v1/runs/validate", headers=bearer(tenant_key), json=reseeded)
    assert any("validation rows" in w for w in response.json()["warnings"])
    assert sent == queued_before


def test_openapi_documents_the_field(api: TestClient) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert "init_from_model_id" in schemas["RunIn"]["properties"]
    assert "init_from_model_id" not in schemas["RunIn"].get("required", [])
    run_out = schemas["RunOut"]
    assert "parent_model_id" in run_out["properties"] and "parent_model_id" in run_out["required"]
    assert "init_from_model_id" not in run_out["properties"]  # the request's name, not the run's


def test_crash_then_resume_of_a_warm_start_is_exact(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A checkpoint after every epoch; the worker dies after epoch 6 of 5..8, the reaper
    requeues the run, and the next attempt resumes from the checkpoint: the same history and
    the same weights as a warm start nobody interrupted."""
    worker = settings.model_copy(
        update={"checkpoint_every_seconds": 1e-6, "cancel_poll_seconds": 0.0}
    )
    body = {"spec": {**SPEC, "epochs": 4}, "init_from_model_id": trained["model_id"]}
    reference = _trained_run(api, tenant_key, db, worker, dataset_id=dataset_id, **body)

    crashing = submit(api, tenant_key, dataset_id, **body).json()["id"]
    original = lease.Attempt.on_epoch

    def on_epoch_then_die(self: lease.Attempt, e: EpochEnd) -> None:
        original(self, e)
        if e.epoch == 6:
            raise Crash

    monkeypatch.setattr(lease.Attempt, "on_epoch", on_epoch_then_die)
    with pytest.raises(Crash):
        training.run_training(db, crashing, settings=worker)
    monkeypatch.setattr(lease.Attempt, "on_epoch", original)
    stuck = api.get(f"/v1/runs/{crashing}", headers=bearer(tenant_key)).json()
    assert stuck["status"] == "running" and stuck["progress"]["epoch"] == 6
    assert stuck["progress"]["fraction"] == 0.5  # 2 of this run's 4 epochs

    later = utcnow() + timedelta(seconds=worker.lease_seconds + 1)
    assert runs.reap_stale_runs(db, settings=worker, now=later) == [crashing]
    assert training.run_training(db, crashing, settings=worker) == "succeeded"
    final = api.get(f"/v1/runs/{crashing}", headers=bearer(tenant_key)).json()
    assert final["attempts"] == 2 and final["progress"]["epoch"] == 8

    def losses(run_id: str) -> list[tuple[int, float, float | None]]:
        return [
            (e["epoch"], e["train_loss"], e["val_loss"]) for e in _history(api, tenant_key, run_id)
        ]

    assert [e for e, _, _ in losses(crashing)] == [5, 6, 7, 8]
    assert losses(crashing) == losses(reference["id"])
    expected = _weights(api, tenant_key, reference["model_id"])
    got = _weights(api, tenant_key, final["model_id"])
    assert expected.keys() == got.keys() and expected
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
