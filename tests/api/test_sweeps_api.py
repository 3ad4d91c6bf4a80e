"""/v1/sweeps over HTTP on both backends: expansion, validation before anything is stored,
trials waiting for slots, ASHA, cancel, tenant isolation, and the trials as ordinary runs.
The worker is core.runs.training.run_training in-process (what the Celery task calls)."""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.runs import lease, training
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import Sent, api, blobs_csv, dataset_id, sent, submit
from tests.conftest import sql_scalar

__all__ = ["api", "dataset_id", "sent"]  # fixtures

BASE = {"epochs": 4, "batch_size": 16, "seed": 3, "optimizer": {"name": "adam"},
        "layers": [{"units": 8}]}  # fmt: skip
GRID = {
    "method": "grid",
    "space": {
        "optimizer.learning_rate": [0.05, 0.0001],
        "layers": [[{"units": 8}], [{"units": 4}]],
    },
}


def sweep_body(dataset: str, **extra: Any) -> dict[str, Any]:
    return {"dataset_id": dataset, "spec": BASE, "search": GRID, "metric": "val_loss", **extra}


def drain(db: Database, settings: Settings, sent: Sent, *, limit: int = 100) -> list[str]:
    """A sequential worker: trains whatever was sent, in order, until nothing is left; what a
    trial's end sends (the next waiting trial) lands in ``sent`` too."""
    done = 0
    while done < len(sent) and done < limit:
        training.run_training(db, sent[done], settings=settings, enqueue=sent)
        done += 1
    return list(sent[:done])


def show(api: TestClient, key: str, sweep_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/sweeps/{sweep_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_grid_sweep_trains_every_trial_and_ranks_them_best_first(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings,
    sent: Sent,
) -> None:  # fmt: skip
    created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id))
    assert created.status_code == 202, created.text
    sweep = created.json()
    assert sweep["status"] == "running" and sweep["mode"] == "min"
    before = show(api, tenant_key, sweep["id"])
    # The expansion's order: the last key varies fastest.
    by_trial = sorted(before["trials"], key=lambda t: t["trial"])
    assert [t["params"] for t in by_trial] == [
        {"optimizer.learning_rate": 0.05, "layers": [{"units": 8}]},
        {"optimizer.learning_rate": 0.05, "layers": [{"units": 4}]},
        {"optimizer.learning_rate": 0.0001, "layers": [{"units": 8}]},
        {"optimizer.learning_rate": 0.0001, "layers": [{"units": 4}]},
    ]
    assert before["best"] is None and len(sent) == 4  # the default max_parallel: the limit, 4

    drain(db, settings, sent)
    final = show(api, tenant_key, sweep["id"])
    assert final["status"] == "succeeded" and final["finished_at"] is not None
    values = [t["best_value"] for t in final["trials"]]
    assert values == sorted(values)
    for trial in final["trials"]:
        history = api.get(f"/v1/runs/{trial['run_id']}/history", headers=bearer(tenant_key))
        assert trial["best_value"] == min(e["val_loss"] for e in history.json()["epochs"])
        assert trial["status"] == "succeeded" and trial["epochs_done"] == 4
        assert not trial["stopped_early"]
    best = final["best"]
    assert best["run_id"] == final["trials"][0]["run_id"] and best["value"] == values[0]
    assert best["params"]["optimizer.learning_rate"] == 0.05
    run = api.get(f"/v1/runs/{best['run_id']}", headers=bearer(tenant_key)).json()
    assert run["model_id"] == best["model_id"] and run["sweep_id"] == sweep["id"]
    # The resolved spec of the trial carries its parameters.
    assert run["spec"]["optimizer"]["learning_rate"] == 0.05


def test_a_trial_with_an_invalid_spec_is_422_naming_it_and_nothing_is_stored(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, sent: Sent
) -> None:
    search = {"method": "grid", "space": {"optimizer.learning_rate": [0.1, -1.0]}}
    response = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, search=search)
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["details"]["trial"] == 1
    assert error["details"]["params"] == {"optimizer.learning_rate": -1.0}
    assert error["details"]["field"] == "spec.optimizer.learning_rate"
    assert "trial 1" in error["message"]
    assert sql_scalar(db, "SELECT count(*) FROM sweeps") == 0
    assert sql_scalar(db, "SELECT count(*) FROM runs") == 0
    assert sent == []
    too_big = {"method": "grid", "space": {"epochs": list(range(1, 41)), "seed": list(range(30))}}
    response = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, search=too_big)
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "too_many_trials"


def test_random_search_repeats_from_its_seed(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    search = {"method": "random", "n_trials": 5, "seed": 11,
              "space": {"optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
                        "batch_size": {"int_uniform": [8, 32]}}}  # fmt: skip

    def params(body: dict[str, Any]) -> list[dict[str, Any]]:
        created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
        assert created.status_code == 202, created.text
        trials = show(api, tenant_key, created.json()["id"])["trials"]
        return [t["params"] for t in sorted(trials, key=lambda t: t["trial"])]

    first = params(sweep_body(dataset_id, search=search, max_parallel=1))
    assert first == params(sweep_body(dataset_id, search=search, max_parallel=1))
    assert first != params(sweep_body(dataset_id, search={**search, "seed": 12}, max_parallel=1))
    assert len(first) == 5 and all(8 <= p["batch_size"] <= 32 for p in first)
    unseeded = api.post(
        "/v1/sweeps",
        headers=bearer(tenant_key),
        json=sweep_body(dataset_id, search={**search, "seed": None}, max_parallel=1),
    ).json()
    assert isinstance(unseeded["seed"], int)  # drawn, and reported so it can be repeated


def test_more_trials_than_the_concurrent_limit_wait_and_run_as_slots_free(
    settings: Settings, db: Database, tenant_key: str, sent: Sent
) -> None:
    limited = settings.model_copy(update={"max_concurrent_runs_per_tenant": 2})
    api = TestClient(create_app(limited, database=db, enqueue=sent))
    uploaded = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("b.csv", blobs_csv())}
    )
    dataset = uploaded.json()["id"]
    search = {
        "method": "grid",
        "space": {"optimizer.learning_rate": [0.05, 0.02, 0.01, 0.005, 0.002]},
    }
    body = sweep_body(dataset, search=search, max_parallel=4, spec={**BASE, "epochs": 2})
    created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
    assert created.status_code == 202, created.text
    sweep_id = created.json()["id"]

    def statuses() -> list[str]:
        trials = show(api, tenant_key, sweep_id)["trials"]
        return [t["status"] for t in sorted(trials, key=lambda t: t["trial"])]

    assert len(sent) == 2 and statuses() == ["queued", "queued", "pending", "pending", "pending"]
    # The tenant is at its limit: a plain run is refused, as always.
    assert submit(api, tenant_key, dataset).status_code == 429
    training.run_training(db, sent[0], settings=limited, enqueue=sent)
    assert len(sent) == 3 and statuses()[:3] == ["succeeded", "queued", "queued"]
    live_seen = []
    done = 1
    while done < len(sent):  # grows as trials end
        live_seen.append(sum(s in ("queued", "running") for s in statuses()))
        training.run_training(db, sent[done], settings=limited, enqueue=sent)
        done += 1
    assert max(live_seen) <= 2
    assert len(sent) == 5 and statuses() == ["succeeded"] * 5
    assert show(api, tenant_key, sweep_id)["status"] == "succeeded"


def test_asha_stops_losing_trials_keeps_their_models_and_never_the_best(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings,
    sent: Sent,
) -> None:  # fmt: skip
    # One at a time and the best first: each later trial meets the leader at every rung.
    search = {"method": "grid",
              "space": {"optimizer.learning_rate": [0.05, 0.02, 0.0003, 0.0001]}}  # fmt: skip
    body = sweep_body(
        dataset_id, search=search, max_parallel=1, spec={**BASE, "epochs": 8},
        early_termination={"type": "asha", "grace_epochs": 1, "reduction_factor": 2},
    )  # fmt: skip
    created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
    assert created.status_code == 202, created.text
    assert len(sent) == 1
    drain(db, settings, sent)
    final = show(api, tenant_key, created.json()["id"])
    assert final["status"] == "succeeded"
    stopped = [t for t in final["trials"] if t["stopped_early"]]
    assert len(stopped) >= 2, final["trials"]
    for trial in stopped:
        assert trial["status"] == "succeeded" and trial["epochs_done"] < 8
        assert trial["epochs_done"] in (1, 2, 4)  # a rung
        run = api.get(f"/v1/runs/{trial['run_id']}", headers=bearer(tenant_key)).json()
        assert run["model_id"] is not None and run["progress"]["epoch"] == trial["epochs_done"]
        history = api.get(f"/v1/runs/{trial['run_id']}/history", headers=bearer(tenant_key))
        assert len(history.json()["epochs"]) == trial["epochs_done"]
    leader = final["trials"][0]
    assert not leader["stopped_early"] and leader["epochs_done"] == 8
    assert final["best"]["run_id"] == leader["run_id"]
    assert leader["params"] == {"optimizer.learning_rate": 0.05}
    # Fewer epochs than the full grid's 4 x 8.
    assert sum(t["epochs_done"] for t in final["trials"]) < 32


def test_cancel_ends_the_sweep_and_its_waiting_and_queued_trials(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings,
    sent: Sent,
) -> None:  # fmt: skip
    created = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, max_parallel=2)
    )
    sweep_id = created.json()["id"]
    assert lease.claim(db, uuid.UUID(sent[0])) is not None  # trial 0 is running
    cancelled = api.post(f"/v1/sweeps/{sweep_id}/cancel", headers=bearer(tenant_key))
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    final = show(api, tenant_key, sweep_id)
    statuses = [t["status"] for t in sorted(final["trials"], key=lambda t: t["trial"])]
    # The running one stops cooperatively (its worker ends it cancelled), the rest at once.
    assert statuses == ["cancelling", "cancelled", "cancelled", "cancelled"]
    assert final["finished_at"] is not None and final["best"] is None
    # The queued trial's message is still on its way: the worker skips it.
    assert training.run_training(db, sent[1], settings=settings, enqueue=sent) == "skipped"
    assert len(sent) == 2
    again = api.post(f"/v1/sweeps/{sweep_id}/cancel", headers=bearer(tenant_key))
    assert again.status_code == 409 and again.json()["error"]["code"] == "sweep_finished"


def test_another_tenants_sweep_is_not_found_and_its_dataset_not_usable(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str
) -> None:
    sweep_id = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id)
    ).json()["id"]
    assert api.get(f"/v1/sweeps/{sweep_id}", headers=bearer(other_key)).status_code == 404
    cancel = api.post(f"/v1/sweeps/{sweep_id}/cancel", headers=bearer(other_key))
    assert cancel.status_code == 404 and cancel.json()["error"]["code"] == "sweep_not_found"
    assert api.get("/v1/sweeps", headers=bearer(other_key)).json()["items"] == []
    runs = api.get(f"/v1/runs?sweep_id={sweep_id}", headers=bearer(other_key)).json()
    assert runs["items"] == []
    theirs = api.post("/v1/sweeps", headers=bearer(other_key), json=sweep_body(dataset_id))
    assert theirs.status_code == 422
    assert theirs.json()["error"]["code"] == "dataset_not_found"
    assert api.get(f"/v1/sweeps/{sweep_id}", headers=bearer(tenant_key)).status_code == 200


def test_trials_are_runs_listed_by_sweep_and_sweeps_page_newest_first(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    plain = submit(api, tenant_key, dataset_id).json()
    assert plain["sweep_id"] is None
    ids = [
        api.post(
            "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, max_parallel=1)
        ).json()["id"]
        for _ in range(3)
    ]
    listed = api.get(f"/v1/runs?sweep_id={ids[0]}&limit=3", headers=bearer(tenant_key)).json()
    page2 = api.get(
        f"/v1/runs?sweep_id={ids[0]}&cursor={listed['next_cursor']}", headers=bearer(tenant_key)
    ).json()
    runs = listed["items"] + page2["items"]
    assert len(runs) == 4 and {r["sweep_id"] for r in runs} == {ids[0]}
    assert plain["id"] not in {r["id"] for r in runs}
    pending = api.get(
        f"/v1/runs?sweep_id={ids[0]}&status=pending", headers=bearer(tenant_key)
    ).json()
    assert len(pending["items"]) == 3
    first = api.get("/v1/sweeps?limit=2", headers=bearer(tenant_key)).json()
    rest = api.get(f"/v1/sweeps?cursor={first['next_cursor']}", headers=bearer(tenant_key))
    assert [s["id"] for s in first["items"] + rest.json()["items"]] == ids[::-1]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "accuracy"}, "metric"),
        ({"early_termination": {"type": "asha", "grace_epochs": 0, "reduction_factor": 2}},
         "early_termination.grace_epochs"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"search": {"method": "random", "space": {"epochs": [1, 2]}}}, "search.n_trials"),
    ],
)  # fmt: skip
def test_bad_sweep_bodies_are_422_naming_the_field(
    api: TestClient, tenant_key: str, dataset_id: str, change: dict[str, Any], field: str
) -> None:
    response = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, **change)
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == field


def regression_csv(n: int = 80) -> bytes:
    lines = ["a,b,y"] + [
        f"{i / n:.4f},{(i % 7) / 7:.4f},{2 * i / n + (i % 7) / 7:.4f}" for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_a_metric_kept_beside_the_columns_ranks_the_trials_highest_first(
    api: TestClient, tenant_key: str, db: Database, settings: Settings, sent: Sent
) -> None:
    """val_r2 lives in run_epochs.metrics (JSON), read in SQL on both backends; accuracy-like
    metrics default to mode max."""
    up = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("r.csv", regression_csv())}
    )
    assert up.status_code == 201, up.text
    search = {"method": "grid", "space": {"optimizer.learning_rate": [0.05, 0.0001]}}
    body = sweep_body(up.json()["id"], search=search, metric="val_r2")
    created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
    assert created.status_code == 202, created.text
    assert created.json()["mode"] == "max" and len(created.json()["trials"]) == 2
    drain(db, settings, sent)
    final = show(api, tenant_key, created.json()["id"])
    values = [t["best_value"] for t in final["trials"]]
    assert None not in values and values == sorted(values, reverse=True)
    for trial in final["trials"]:
        history = api.get(f"/v1/runs/{trial['run_id']}/history", headers=bearer(tenant_key))
        assert trial["best_value"] == max(e["metrics"]["val_r2"] for e in history.json()["epochs"])
    assert final["best"]["params"] == {"optimizer.learning_rate": 0.05}


def test_pending_trials_hold_their_dataset_and_can_be_cancelled_one_by_one(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    created = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, max_parallel=1)
    ).json()
    pending = [t for t in created["trials"] if t["status"] == "pending"]
    assert len(pending) == 3
    deleted = api.delete(f"/v1/datasets/{dataset_id}", headers=bearer(tenant_key))
    assert deleted.status_code == 409, deleted.text
    one = api.post(f"/v1/runs/{pending[0]['run_id']}/cancel", headers=bearer(tenant_key))
    assert one.status_code == 202 and one.json()["status"] == "cancelled"
    run = api.get(f"/v1/runs/{pending[0]['run_id']}", headers=bearer(tenant_key)).json()
    assert run["status"] == "cancelled" and run["sweep_id"] == created["id"]


def test_the_largest_grid_is_accepted_and_one_more_trial_is_not(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, sent: Sent
) -> None:
    space = {"seed": list(range(100)), "epochs": list(range(1, 11))}  # 1,000 trials
    body = sweep_body(dataset_id, search={"method": "grid", "space": space}, max_parallel=3)
    created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
    assert created.status_code == 202, created.text
    assert len(created.json()["trials"]) == 1000 and len(sent) == 3
    assert sql_scalar(db, "SELECT count(*) FROM runs WHERE status = 'pending'") == 997
    space["batch_size"] = [16, 32]
    too_many = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"] == {
        "field": "search.space", "trials": 2000, "limit": 1000,
    }  # fmt: skip
    assert sql_scalar(db, "SELECT count(*) FROM sweeps") == 1


def test_a_pending_trials_page_follows_it_live(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    """Pending is not finished: the dashboard's run page keeps following the trial."""
    created = api.post(
        "/v1/sweeps", headers=bearer(tenant_key), json=sweep_body(dataset_id, max_parallel=1)
    ).json()
    waiting = next(t for t in created["trials"] if t["status"] == "pending")
    signed_in = api.post("/ui/login", data={"api_key": tenant_key}, follow_redirects=False)
    assert signed_in.status_code == 303
    page = api.get(f"/ui/runs/{waiting['run_id']}")
    assert page.status_code == 200 and 'data-final="false"' in page.text
    assert "pending" in page.text
