"""Warm start from the Python client and the CLI (``client.train(..., init_from=model)``,
``descent runs submit --init-from MODEL_ID``), against the real app on both backends: the
client's HTTP goes through the TestClient's transport, the worker runs in process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.config import Settings
from core.runs import training
from descent import Client, client_commands
from descent.cli import main as cli_main
from descent.errors import InvalidInput
from store.session import Database
from tests.api.runs_fixtures import SPEC, api, dataset_id, in_process_client, sent, trained

__all__ = ["api", "dataset_id", "sent", "trained"]


def _client(api: TestClient, key: str) -> Client:
    return in_process_client(api._transport, key)


def test_client_trains_on_from_a_model(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    db: Database,
    settings: Settings,
) -> None:
    with _client(api, tenant_key) as client:
        parent = client.model(trained["model_id"])
        checked = client.validate(dataset_id, {**SPEC, "epochs": 2}, init_from=parent)
        assert checked["spec"]["epochs"] == 2
        run = client.train(dataset_id, {**SPEC, "epochs": 2}, init_from=parent)
        assert run.data["parent_model_id"] == parent.id
        assert run.data["progress"]["epoch"] == 4 and run.data["progress"]["epochs"] == 6
        assert training.run_training(db, run.id, settings=settings) == "succeeded"
        model = run.wait(timeout=10)
        assert [e["epoch"] for e in run.history()] == [5, 6]
        # An id works as well as a Model handle.
        again = client.train(dataset_id, {**SPEC, "epochs": 1}, init_from=model.id)
        assert again.data["progress"]["epoch"] == 6

        for call in (client.train, client.validate):
            with pytest.raises(InvalidInput) as invalid:
                call(dataset_id, {**SPEC, "layers": [{"units": 9}]}, init_from=parent)
            assert invalid.value.field == "spec.layers.0.units"
            assert invalid.value.code == "incompatible_init_model"


def test_cli_submit_init_from(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_commands, "make_client", lambda _url, key: _client(api, key))
    runner = CliRunner()
    args = ["runs", "submit", "--dataset", dataset_id, "--set", "epochs=2", "--key", tenant_key]
    result = runner.invoke(cli_main, [*args, "--init-from", trained["model_id"], "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    assert run["parent_model_id"] == trained["model_id"]
    assert run["progress"] == {"epoch": 4, "epochs": 6, "fraction": 0.0, "eta_seconds": None}
    assert training.run_training(db, run["id"], settings=settings) == "succeeded"

    shown = runner.invoke(cli_main, ["runs", "history", run["id"], "--key", tenant_key, "--json"])
    assert [e["epoch"] for e in json.loads(shown.output)] == [5, 6]
    followed = runner.invoke(cli_main, ["runs", "follow", run["id"], "--key", tenant_key])
    assert followed.exit_code == 0, followed.output
    said = " ".join(followed.output.split())  # rich wraps the summary at the terminal width
    assert "6/6" in said and "after 6 epochs" in said
    assert f"warm-started from model {trained['model_id']}" in said

    bad = runner.invoke(cli_main, [*args, "--set", "layers=[{units: 9}]", "--init-from",
                                   trained["model_id"]])  # fmt: skip
    assert bad.exit_code == 1
    assert "spec.layers.0.units" in bad.output and "warm-start" in bad.output
