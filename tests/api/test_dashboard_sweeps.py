"""The sweep pages without a browser, on both backends: the list, a sweep's leaderboard in the
order of GET /v1/sweeps/{id}, its per-parameter chart data, the htmx board alone, cancel by
form (CSRF), another tenant's sweep as the not-found page, and bad input as a 4xx page."""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.routes.dashboard.sweeps import param_charts
from core.config import Settings
from core.runs import training
from core.sweeps import Trial
from store.session import Database
from store.tables import RunStatus
from tests.api.conftest import bearer
from tests.api.runs_fixtures import Sent, api, dataset_id, sent

__all__ = ["api", "dataset_id", "sent"]  # fixtures

BASE = {"epochs": 3, "batch_size": 16, "seed": 3, "optimizer": {"name": "adam"},
        "layers": [{"units": 8}]}  # fmt: skip
SPACE = {"optimizer.learning_rate": [0.05, 0.0001], "layers": [[{"units": 8}], [{"units": 4}]]}


def _sign_in(client: TestClient, key: str) -> str:
    assert (
        client.post("/ui/login", data={"api_key": key}, follow_redirects=False).status_code == 303
    )
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/sweeps").text)
    assert match is not None
    return match[1]


def _submit(api: TestClient, key: str, dataset: str) -> dict[str, Any]:
    body = {"dataset_id": dataset, "name": "lr-by-width", "spec": BASE,
            "search": {"method": "grid", "space": SPACE}, "metric": "val_loss"}  # fmt: skip
    response = api.post("/v1/sweeps", headers=bearer(key), json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _drain(db: Database, settings: Settings, sent: Sent) -> None:
    done = 0
    while done < len(sent):
        training.run_training(db, sent[done], settings=settings, enqueue=sent)
        done += 1


def _rows(page: str) -> list[dict[str, str]]:
    rows = re.findall(r'<tr data-testid="trial-row"([^>]*)>', page)
    return [dict(re.findall(r'data-([\w-]+)="([^"]*)"', attrs)) for attrs in rows]


def _charts(page: str) -> list[dict[str, Any]]:
    match = re.search(r"data-charts='([^']*)'", page)
    assert match is not None
    return list(json.loads(html.unescape(match[1])))


def test_a_sweep_page_follows_the_leaderboard_to_the_end(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings,
    sent: Sent,
) -> None:  # fmt: skip
    sweep = _submit(api, tenant_key, dataset_id)
    _sign_in(api, tenant_key)
    running = api.get(f"/ui/sweeps/{sweep['id']}")
    assert running.status_code == 200
    assert 'hx-trigger="every 2s"' in running.text  # polled while it runs
    assert 'data-testid="cancel-sweep"' in running.text
    assert len(_rows(running.text)) == 4
    assert 'data-testid="nav-sweeps"' in running.text
    listed = api.get("/ui/sweeps").text
    assert f'data-sweep-id="{sweep["id"]}"' in listed and "lr-by-width" in listed

    _drain(db, settings, sent)
    final = api.get(f"/v1/sweeps/{sweep['id']}", headers=bearer(tenant_key)).json()
    assert final["status"] == "succeeded"
    page = api.get(f"/ui/sweeps/{sweep['id']}").text
    assert "hx-trigger" not in page and 'data-testid="cancel-sweep"' not in page
    rows = _rows(page)
    assert [r["run-id"] for r in rows] == [t["run_id"] for t in final["trials"]]  # best first
    assert [float(r["best-value"]) for r in rows] == [t["best_value"] for t in final["trials"]]
    ranks = re.findall(r'data-testid="trial-rank">(\d+)<', page)
    assert ranks == ["1", "2", "3", "4"]
    assert f'href="/ui/runs/{final["best"]["run_id"]}" data-testid="best-run"' in page
    assert f'href="/ui/models/{final["best"]["model_id"]}" data-testid="best-model"' in page

    lr, layers = _charts(page)
    assert (lr["name"], lr["scale"]) == ("optimizer.learning_rate", "log")  # 500x: 2.7 decades
    assert sorted(p[0] for p in lr["points"]) == [0.0001, 0.0001, 0.05, 0.05]
    assert (layers["scale"], layers["ticks"]) == ("category", ['[{"units":8}]', '[{"units":4}]'])
    best = {t["best_value"] for t in final["trials"]}
    assert {p[1] for p in lr["points"]} == best == {p[1] for p in layers["points"]}

    board = api.get(f"/ui/sweeps/{sweep['id']}", headers={"HX-Request": "true"}).text
    assert "<html" not in board
    assert 'id="sweep-board"' in board and len(_rows(board)) == 4

    trial_page = api.get(f"/ui/runs/{final['trials'][0]['run_id']}").text
    assert f'href="/ui/sweeps/{sweep["id"]}" data-testid="sweep-link"' in trial_page


def test_trials_asha_stopped_are_flagged(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings,
    sent: Sent,
) -> None:  # fmt: skip
    # As tests/api/test_sweeps_api.py: one at a time, the best first, so later ones are stopped.
    body = {
        "dataset_id": dataset_id, "spec": {**BASE, "epochs": 8}, "max_parallel": 1,
        "search": {"method": "grid",
                   "space": {"optimizer.learning_rate": [0.05, 0.02, 0.0003, 0.0001]}},
        "early_termination": {"type": "asha", "grace_epochs": 1, "reduction_factor": 2},
    }  # fmt: skip
    created = api.post("/v1/sweeps", headers=bearer(tenant_key), json=body)
    assert created.status_code == 202, created.text
    _drain(db, settings, sent)
    sweep_id = created.json()["id"]
    final = api.get(f"/v1/sweeps/{sweep_id}", headers=bearer(tenant_key)).json()
    stopped = {t["run_id"] for t in final["trials"] if t["stopped_early"]}
    assert len(stopped) >= 2
    _sign_in(api, tenant_key)
    page = api.get(f"/ui/sweeps/{sweep_id}").text
    assert {r["run-id"] for r in _rows(page) if r.get("stopped-early") == "true"} == stopped
    assert page.count('data-testid="stopped-early"') == len(stopped)
    assert "ASHA: rungs from epoch 1, ×2, the top 1/2 go on" in page
    epochs = re.findall(r'<td class="num">(\d+)</td>\s*<td><span class="status', page)
    assert [int(e) for e in epochs] == [t["epochs_done"] for t in final["trials"]]


def test_cancel_from_the_page_needs_the_csrf_token(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    sweep = _submit(api, tenant_key, dataset_id)
    csrf = _sign_in(api, tenant_key)
    cancel = f"/ui/sweeps/{sweep['id']}/cancel"
    assert api.post(cancel, data={"csrf_token": "wrong"}).status_code == 403
    cross_site = api.post(
        cancel, data={"csrf_token": csrf}, headers={"Origin": "https://x.example"}
    )
    assert cross_site.status_code == 403
    assert api.get(f"/v1/sweeps/{sweep['id']}", headers=bearer(tenant_key)).json()["status"] == (
        "running"
    )
    done = api.post(cancel, data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/sweeps/{sweep['id']}"
    shown = api.get(f"/v1/sweeps/{sweep['id']}", headers=bearer(tenant_key)).json()
    assert shown["status"] == "cancelled"
    assert {t["status"] for t in shown["trials"]} == {"cancelled"}
    again = api.post(cancel, data={"csrf_token": csrf}, follow_redirects=False)
    assert again.status_code == 303  # already over: back to the page, which says so


def test_another_tenants_sweep_is_the_not_found_page(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str
) -> None:
    sweep = _submit(api, tenant_key, dataset_id)
    csrf = _sign_in(api, other_key)
    page = api.get(f"/ui/sweeps/{sweep['id']}")
    assert page.status_code == 404 and 'data-testid="error-page"' in page.text
    assert "sweep not found" in page.text
    assert sweep["id"] not in api.get("/ui/sweeps").text
    cancel = api.post(f"/ui/sweeps/{sweep['id']}/cancel", data={"csrf_token": csrf})
    assert cancel.status_code == 404
    assert api.get(f"/v1/sweeps/{sweep['id']}", headers=bearer(tenant_key)).json()["status"] == (
        "running"
    )


@pytest.mark.parametrize(
    ("path", "status", "named"),
    [
        ("/ui/sweeps?cursor=%%%", 400, "cursor"),
        ("/ui/sweeps?cursor=" + "x" * 300, 422, "cursor"),
        (f"/ui/sweeps/{uuid.uuid4()}", 404, "sweep not found"),
        ("/ui/sweeps/not-a-uuid", 404, "not_found"),
    ],
)
def test_bad_input_is_a_page_that_names_it(
    api: TestClient, tenant_key: str, path: str, status: int, named: str
) -> None:
    _sign_in(api, tenant_key)
    response = api.get(path)
    assert response.status_code == status, response.text[:300]
    assert 'data-testid="error-page"' in response.text and named in response.text


def test_sweep_pages_need_a_session(api: TestClient) -> None:
    for path in ("/ui/sweeps", f"/ui/sweeps/{uuid.uuid4()}"):
        response = api.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"


def _trial(i: int, value: float | None, **params: Any) -> Trial:
    return Trial(run_id=uuid.uuid4(), trial=i, params=params, status=RunStatus.succeeded,
                 best_value=value, epochs_done=3, stopped_early=False, model_id=None)  # fmt: skip


def test_chart_scales() -> None:
    trials = [
        _trial(0, 0.5, lr=0.01, units=8, act="relu", flag=True),
        _trial(1, 0.4, lr=0.02, units=64, act="tanh", flag=False),
        _trial(2, None, lr=0.05, units=16, act="relu", flag=True),  # no value yet: no point
        _trial(3, 0.3, lr=0.099, units=800, act="relu", flag=True),
    ]
    lr, units, act, flag = param_charts(["lr", "units", "act", "flag"], trials)
    assert lr["scale"] == "linear"  # 0.01..0.099: under two decades
    assert units["scale"] == "log"  # 8..800: two decades
    assert [p[0] for p in units["points"]] == [8.0, 64.0, 800.0]
    assert (act["scale"], act["ticks"]) == ("category", ["relu", "tanh"])
    assert sorted(act["points"]) == [[0.0, 0.3], [0.0, 0.5], [1.0, 0.4]]
    assert (flag["scale"], flag["ticks"]) == ("category", ["true", "false"])  # not numbers
    assert all(len(c["points"]) == 3 for c in (lr, units, act, flag))
    assert param_charts(["lr"], [_trial(0, None, lr=0.1)])[0]["points"] == []
