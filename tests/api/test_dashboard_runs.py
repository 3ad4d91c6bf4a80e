"""The run page's server-side parts without a browser, on both backends: the history CSV holds
every metric the epochs report (a regression run's R², MAE, RMSE), the page carries the
server's best epoch for its chart, and a bad max_points is a 4xx page."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.routes.dashboard.runs import HISTORY_FIELDS
from core.config import Settings
from models.metrics import HISTORY_METRICS
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import api, dataset_id, sent, submit, trained, work

__all__ = ["api", "dataset_id", "sent", "trained"]  # fixtures


def _sign_in(client: TestClient, key: str) -> None:
    signed_in = client.post("/ui/login", data={"api_key": key}, follow_redirects=False)
    assert signed_in.status_code == 303


def _regression_run(api: TestClient, key: str, db: Database, settings: Settings) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=120)
    table = "a,b,c,target\n" + "".join(
        f"{r[0]:.5f},{r[1]:.5f},{r[2]:.5f},{t:.5f}\n" for r, t in zip(x, y, strict=True)
    )
    dataset = api.post("/v1/datasets", headers=bearer(key), files={"file": ("r.csv", table)})
    assert dataset.status_code == 201 and dataset.json()["task"] == "regression", dataset.text
    spec = {"layers": [{"units": 8}], "epochs": 5, "batch_size": 16, "seed": 2}
    run = submit(api, key, dataset.json()["id"], spec).json()
    assert work(db, settings, run["id"]) == "succeeded"
    return str(run["id"])


def test_a_regression_runs_csv_has_r2_and_every_extra_metric(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    run_id = _regression_run(api, tenant_key, db, settings)
    _sign_in(api, tenant_key)
    response = api.get(f"/ui/runs/{run_id}/history.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert set(HISTORY_METRICS) <= set(rows[0]) and tuple(rows[0])[: len(HISTORY_FIELDS)] == (
        HISTORY_FIELDS
    )
    history = api.get(f"/v1/runs/{run_id}/history", headers=bearer(tenant_key)).json()["epochs"]
    assert [int(r["epoch"]) for r in rows] == [e["epoch"] for e in history] == [1, 2, 3, 4, 5]
    for row, epoch in zip(rows, history, strict=True):
        for name in ("val_r2", "val_mae", "val_rmse"):
            assert float(row[name]) == pytest.approx(epoch["metrics"][name], rel=1e-12), name
        assert float(row["val_loss"]) == pytest.approx(epoch["val_loss"], rel=1e-12)
        assert row["val_accuracy"] == "" and row["val_auc"] == ""  # not a classifier's


def test_a_classifiers_csv_has_its_extra_metrics(
    api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    _sign_in(api, tenant_key)
    text = api.get(f"/ui/runs/{trained['id']}/history.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == trained["spec"]["epochs"]
    assert all(row[m] != "" for row in rows for m in ("val_accuracy", "val_f1", "val_log_loss"))


def test_the_run_page_carries_the_servers_best_epoch(
    api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    _sign_in(api, tenant_key)
    page = api.get(f"/ui/runs/{trained['id']}?max_points=3").text
    best = trained["best"]
    assert f'data-best-epoch="{best["epoch"]}"' in page
    loss = re.search(r'data-best-loss="([^"]+)"', page)
    assert loss is not None and float(loss[1]) == pytest.approx(best["loss"], rel=1e-12)
    assert 'data-max-points="3"' in page
    shown = re.search(r'data-testid="run-best">([^<]*)<', page)
    assert shown is not None and shown[1].endswith(f"@ epoch {best['epoch']}")


@pytest.mark.parametrize("max_points", ["1", "0", "20001", "many"])
def test_a_bad_max_points_is_a_page_that_names_it(
    api: TestClient, tenant_key: str, trained: dict[str, Any], max_points: str
) -> None:
    _sign_in(api, tenant_key)
    response = api.get(f"/ui/runs/{trained['id']}?max_points={max_points}")
    assert response.status_code == 422
    assert 'data-testid="error-page"' in response.text and "max_points" in response.text
