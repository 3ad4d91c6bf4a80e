"""CLI commands through click's runner against the real app on both backends (the client's
HTTP goes through the TestClient's transport; the worker runs in process): ``models show``,
``runs show``, ``--spec FILE.json``, ``models predict --input FILE.json``, ``login`` (--json,
errors without a traceback) and environment variables overriding the saved login."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from core.config import Settings
from core.runs import training
from descent import Client, client_commands
from descent.cli import main as cli_main
from descent.errors import InvalidInput
from descent.processes import free_port
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, api, blobs_csv, dataset_id, sent, trained

__all__ = ["api", "dataset_id", "sent", "trained"]

ROWS = [[0.1, 0.2, 0.0, 0.0], [4.0, -3.0, 2.0, 0.0]]


class Connections(list[tuple[str | None, str | None]]):
    """Every Client the commands made: (url, key); each talks to the app in process."""


@pytest.fixture
def connections(api: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Connections:
    made = Connections()

    def connect(url: str | None, api_key: str | None, **kwargs: Any) -> Client:
        made.append((url, api_key))
        return Client(url, api_key, **{**kwargs, "transport": api._transport, "retries": 0})

    monkeypatch.setattr(client_commands, "Client", connect)
    # The config file (descent login) in a folder of the test's own; no DESCENT_ variables.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DESCENT_URL", raising=False)
    monkeypatch.delenv("DESCENT_API_KEY", raising=False)
    return made


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli_main, args, env=env)


def test_models_show_and_runs_show(
    connections: Connections, tenant_key: str, trained: dict[str, Any]
) -> None:
    key = ["--key", tenant_key]
    shown = invoke(["models", "show", trained["model_id"], *key, "--json"])
    assert shown.exit_code == 0, shown.output
    model = json.loads(shown.stdout)
    assert model["id"] == trained["model_id"] and model["run_id"] == trained["id"]
    assert model["classes"] == ["blue", "green", "red"]
    table = invoke(["models", "show", trained["model_id"], *key])
    assert table.exit_code == 0, table.output
    assert trained["model_id"] in table.stdout and "classification" in table.stdout

    run = invoke(["runs", "show", trained["id"], *key, "--json"])
    assert run.exit_code == 0, run.output
    data = json.loads(run.stdout)
    assert data["status"] == "succeeded" and data["model_id"] == trained["model_id"]
    assert data["progress"]["epoch"] == SPEC["epochs"]
    table = invoke(["runs", "show", trained["id"], *key])
    assert table.exit_code == 0, table.output
    assert "succeeded" in table.stdout and trained["id"] in table.stdout


def test_submit_reads_the_spec_from_a_json_file(
    connections: Connections,
    tenant_key: str,
    dataset_id: str,
    tmp_path: Path,
    db: Database,
    settings: Settings,
) -> None:
    optimizer = {"name": "sgd", "learning_rate": 0.07, "momentum": 0.5}
    spec = {**SPEC, "optimizer": optimizer}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    args = ["runs", "submit", "--dataset", dataset_id, "--spec", str(path), "--set", "epochs=3"]
    result = invoke([*args, "--key", tenant_key, "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    # The stored spec is resolved (every default filled in): the file's values are in it.
    assert run["spec"]["optimizer"].items() >= optimizer.items()
    assert [layer["units"] for layer in run["spec"]["layers"]] == [8]
    assert run["spec"]["epochs"] == 3  # --set over the file
    assert training.run_training(db, run["id"], settings=settings) == "succeeded"
    # Not an object: refused before anything is sent.
    path.write_text("[1, 2]")
    refused = invoke([*args, "--key", tenant_key])
    assert refused.exit_code == 2 and "must hold an object" in refused.output


@pytest.mark.parametrize(
    "content",
    [ROWS, {"inputs": ROWS}, [dict(zip("abcd", row, strict=True)) for row in ROWS]],
    ids=["rows", "predict-body", "records"],
)
def test_predict_reads_a_json_input_file(
    connections: Connections,
    api: TestClient,
    tenant_key: str,
    trained: dict[str, Any],
    tmp_path: Path,
    content: Any,
) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(content))
    args = ["models", "predict", trained["model_id"], "--input", str(path), "--key", tenant_key]
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    expected = api.post(
        f"/v1/models/{trained['model_id']}/predict", headers=bearer(tenant_key),
        json={"inputs": ROWS},
    ).json()  # fmt: skip
    assert answer["predictions"] == expected["predictions"]
    for got, want in zip(answer["probabilities"], expected["probabilities"], strict=True):
        assert got == pytest.approx(want)
    # As CSV for people: a header, then one line per row.
    table = invoke(args)
    lines = table.stdout.splitlines()
    assert lines[0] == "prediction,p_blue,p_green,p_red" and len(lines) == 1 + len(ROWS)


def test_environment_variables_override_the_saved_login(
    connections: Connections, api: TestClient, tenant_key: str, other_key: str, dataset_id: str
) -> None:
    logged = invoke(["login", "--url", "http://saved.test", "--key", tenant_key, "--json"])
    assert logged.exit_code == 0, logged.output
    saved = json.loads(logged.stdout)
    assert saved["url"] == "http://saved.test" and tenant_key not in logged.stdout
    assert Path(saved["config"]).stat().st_mode & 0o777 == 0o600
    # The saved login alone: tenant A's dataset.
    mine = invoke(["datasets", "list", "--json"])
    assert [d["id"] for d in json.loads(mine.stdout)] == [dataset_id]
    assert connections[-1] == ("http://saved.test", tenant_key)
    # DESCENT_API_KEY wins over the saved key: tenant B sees none of A's datasets.
    env = {"DESCENT_API_KEY": other_key}
    theirs = invoke(["datasets", "list", "--json"], env=env)
    assert theirs.exit_code == 0, theirs.output
    assert json.loads(theirs.stdout) == []
    assert connections[-1] == ("http://saved.test", other_key)
    # DESCENT_URL wins over the saved URL; --url and --key over both.
    invoke(["datasets", "list", "--json"], env={"DESCENT_URL": "http://env.test"})
    assert connections[-1] == ("http://env.test", tenant_key)
    flags = ["--url", "http://flag.test", "--key", other_key]
    invoke(["datasets", "list", *flags, "--json"], env={"DESCENT_URL": "http://env.test"})
    assert connections[-1] == ("http://flag.test", other_key)


def test_login_refuses_a_bad_key_or_url_in_one_line(
    connections: Connections, tenant_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_key = invoke(["login", "--url", "http://testserver", "--key", "dsk_wrong"])
    assert bad_key.exit_code == 1
    assert bad_key.stderr.startswith("Error: ") and "Traceback" not in bad_key.output
    assert len(bad_key.stderr.strip().splitlines()) == 1
    assert not client_commands.config_path().exists()  # nothing saved

    not_a_url = invoke(["login", "--url", "localhost:8000", "--key", tenant_key])
    assert not_a_url.exit_code == 2 and "--url" in not_a_url.stderr
    # A server that is not there: the real network (a closed port), one retry, one line.
    monkeypatch.setattr(client_commands, "Client", Client)
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = invoke(["login", "--url", closed, "--key", tenant_key, "--json"])
    assert unreachable.exit_code == 1 and "Traceback" not in unreachable.output
    assert "cannot reach" in unreachable.stderr and unreachable.stdout == ""
    assert not client_commands.config_path().exists()


def test_invalid_input_names_the_column_and_line(
    connections: Connections, tenant_key: str, tmp_path: Path
) -> None:
    text = blobs_csv(9).decode().splitlines()
    text[4] = "0.1,oops,0.3,0.4,red"  # a word in a numeric column, on line 5
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    with (
        client_commands.make_client(None, tenant_key) as client,
        pytest.raises(InvalidInput) as raised,
    ):
        client.upload(path, label="colour")
    assert raised.value.column == "b" and raised.value.line == 5
    assert raised.value.field is None
