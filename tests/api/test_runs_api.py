"""/v1/runs over HTTP on both backends: submit (resolved spec, 422 naming the field, parameter
cap, idempotency), validate, read, list, history, cancel, tenant isolation."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, Sent, api, dataset_id, sent, submit, trained, work

__all__ = ["api", "dataset_id", "sent", "trained"]


def test_submit_queues_with_resolved_spec(
    api: TestClient, tenant_key: str, dataset_id: str, sent: Sent
) -> None:
    response = submit(api, tenant_key, dataset_id, name="first")
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["status"] == "queued" and run["name"] == "first"
    assert run["dataset_id"] == dataset_id
    spec = run["spec"]
    assert spec["task"] == "classification" and spec["loss"] == "categorical_crossentropy"
    assert spec["optimizer"]["learning_rate"] > 0 and spec["epochs"] == 4
    assert run["progress"] == {"epoch": 0, "epochs": 4, "fraction": 0.0, "eta_seconds": None}
    assert run["error"] is None and run["model_id"] is None and run["attempts"] == 0
    assert sent == [run["id"]]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"epochs": 0}, "spec.epochs"),
        ({"bogus": 1}, "spec.bogus"),
        ({"layers": [{"units": 8, "activation": "nope"}]}, "spec.layers.0.activation"),
        ({"loss": "mse"}, "spec.loss"),
        ({"task": "regression"}, "spec.task"),
    ],
)
def test_submit_rejects_bad_spec_naming_the_field(
    api: TestClient, tenant_key: str, dataset_id: str, sent: Sent, spec: dict, field: str
) -> None:
    response = submit(api, tenant_key, dataset_id, spec=spec)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == field, error
    assert sent == []


def test_parameter_cap(
    api: TestClient, tenant_key: str, dataset_id: str, settings: Settings
) -> None:
    big = {"layers": [{"units": 4000}, {"units": 4000}]}
    response = submit(api, tenant_key, dataset_id, spec=big)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_parameters"
    assert response.json()["error"]["details"]["field"] == "spec.layers"


def test_unknown_or_foreign_dataset_is_422(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str
) -> None:
    for key, ds in ((tenant_key, str(uuid.uuid4())), (other_key, dataset_id)):
        response = submit(api, key, ds)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "dataset_id"
    assert submit(api, tenant_key, "not-a-uuid").status_code == 422


def test_validate(api: TestClient, tenant_key: str, dataset_id: str, sent: Sent) -> None:
    response = api.post(
        "/v1/runs/validate",
        headers=bearer(tenant_key),
        json={"dataset_id": dataset_id, "spec": {**SPEC, "batch_size": 1000, "epochs": 1000}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # 4 inputs -> 8 hidden -> 3 classes.
    assert body["n_parameters"] == 4 * 8 + 8 + 8 * 3 + 3
    # 90 rows, 30 per class; the stratified 20 % split keeps 24 of each for training: 72 rows.
    # 6 FLOPs per weight per row (forward + backward), 4*8 + 8*3 weights.
    assert body["flops_per_epoch"] == 6 * (4 * 8 + 8 * 3) * 72 == 24_192
    # 1000 epochs at the default 2e9 FLOP/s.
    assert body["estimated_seconds"] == round(24_192 * 1000 / 2e9, 3) == 0.012
    assert body["spec"]["loss"] == "categorical_crossentropy"
    assert any("batch_size" in w for w in body["warnings"])
    assert sent == []


def test_idempotency_key(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str, sent: Sent
) -> None:
    headers = {**bearer(tenant_key), "Idempotency-Key": "abc-1"}
    body = {"dataset_id": dataset_id, "spec": SPEC}
    first = api.post("/v1/runs", headers=headers, json=body)
    again = api.post("/v1/runs", headers=headers, json=body)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert sent == [first.json()["id"]]
    other_body = api.post("/v1/runs", headers=headers, json={**body, "name": "different"})
    assert other_body.status_code == 409
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    # Keys are per tenant: another tenant's same key is unrelated (and its dataset differs).
    foreign = api.post(
        "/v1/runs", headers={**bearer(other_key), "Idempotency-Key": "abc-1"}, json=body
    )
    assert foreign.status_code == 422


def test_send_failure_leaves_run_queued(
    api: TestClient, tenant_key: str, dataset_id: str, sent: Sent
) -> None:
    sent.fail = True
    response = submit(api, tenant_key, dataset_id)
    assert response.status_code == 202
    run = api.get(f"/v1/runs/{response.json()['id']}", headers=bearer(tenant_key)).json()
    assert run["status"] == "queued"


def test_get_list_and_isolation(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str
) -> None:
    ids = [submit(api, tenant_key, dataset_id).json()["id"] for _ in range(3)]
    got = api.get(f"/v1/runs/{ids[0]}", headers=bearer(tenant_key))
    assert got.status_code == 200 and got.json()["id"] == ids[0]
    foreign = api.get(f"/v1/runs/{ids[0]}", headers=bearer(other_key))
    missing = api.get(f"/v1/runs/{uuid.uuid4()}", headers=bearer(tenant_key))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert api.get("/v1/runs", headers=bearer(other_key)).json()["items"] == []

    page1 = api.get("/v1/runs?limit=2", headers=bearer(tenant_key)).json()
    page2 = api.get(
        f"/v1/runs?limit=2&cursor={page1['next_cursor']}", headers=bearer(tenant_key)
    ).json()
    listed = [r["id"] for r in page1["items"] + page2["items"]]
    assert listed == ids[::-1] and page2["next_cursor"] is None
    queued = api.get(f"/v1/runs?status=queued&dataset_id={dataset_id}", headers=bearer(tenant_key))
    assert len(queued.json()["items"]) == 3
    assert api.get("/v1/runs?status=succeeded", headers=bearer(tenant_key)).json()["items"] == []
    bad = api.get("/v1/runs?status=nope", headers=bearer(tenant_key))
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "status"
    assert api.get("/v1/runs").status_code == 401


def test_trained_run_history(api: TestClient, tenant_key: str, trained: dict) -> None:
    assert trained["status"] == "succeeded" and trained["attempts"] == 1
    assert trained["progress"]["epoch"] == 4 and trained["progress"]["fraction"] == 1.0
    assert set(trained["latest"]) >= {"train_loss", "val_loss", "train_accuracy", "val_accuracy"}
    assert trained["model_id"] and trained["finished_at"] and trained["started_at"]
    url = f"/v1/runs/{trained['id']}/history"
    epochs = api.get(url, headers=bearer(tenant_key)).json()["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert set(epochs[0]) >= {"train_loss", "val_loss", "learning_rate", "seconds"}
    # The best epoch is the one with the lowest validation loss, with that epoch's metrics.
    lowest = min(epochs, key=lambda e: (e["val_loss"], e["epoch"]))
    assert trained["best"]["epoch"] == lowest["epoch"]
    assert trained["best"]["loss"] == lowest["val_loss"]
    assert trained["best"]["metrics"]["val_accuracy"] == lowest["val_accuracy"]
    since = api.get(f"{url}?since_epoch=2", headers=bearer(tenant_key)).json()["epochs"]
    assert [e["epoch"] for e in since] == [3, 4]
    thin = api.get(f"{url}?max_points=2", headers=bearer(tenant_key)).json()["epochs"]
    assert [e["epoch"] for e in thin] == [1, 4]
    assert api.get(f"{url}?since_epoch=-1", headers=bearer(tenant_key)).status_code == 422


def test_cancel(
    api: TestClient,
    tenant_key: str,
    other_key: str,
    dataset_id: str,
    db: Database,
    settings: Settings,
) -> None:
    queued = submit(api, tenant_key, dataset_id).json()["id"]
    assert api.post(f"/v1/runs/{queued}/cancel", headers=bearer(other_key)).status_code == 404
    response = api.post(f"/v1/runs/{queued}/cancel", headers=bearer(tenant_key))
    assert response.status_code == 202 and response.json() == {"status": "cancelled"}
    # A worker that receives the message later does nothing.
    assert work(db, settings, queued) == "skipped"
    again = api.post(f"/v1/runs/{queued}/cancel", headers=bearer(tenant_key))
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"

    running = submit(api, tenant_key, dataset_id).json()["id"]
    with db.session() as session:
        assert run_store.claim_run(
            session, run_id=uuid.UUID(running), token=uuid.uuid4(), now=utcnow()
        )
        session.commit()
    response = api.post(f"/v1/runs/{running}/cancel", headers=bearer(tenant_key))
    assert response.status_code == 202 and response.json() == {"status": "cancelling"}
    status = api.get(f"/v1/runs/{running}", headers=bearer(tenant_key)).json()["status"]
    assert status == "cancelling"


def test_dataset_in_use_by_queued_run(api: TestClient, tenant_key: str, dataset_id: str) -> None:
    submit(api, tenant_key, dataset_id)
    response = api.delete(f"/v1/datasets/{dataset_id}", headers=bearer(tenant_key))
    assert response.status_code == 409
