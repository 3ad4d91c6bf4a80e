"""What a person does with the client and the CLI, against a real server (``descent serve``, or
uvicorn + a celery worker on PostgreSQL + Redis): the same walk in Python, through click's
runner, and as real ``descent`` subprocesses with ``--json`` output parsed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from descent import Client
from descent.cli import main as cli_main
from descent.errors import InvalidInput, NotFound, RunFailed
from descent.processes import clean_env
from tests.e2e.helpers import DIGITS_SPEC, digits_csv, digits_split

SPEC = DIGITS_SPEC
LONG_SPEC = {**SPEC, "epochs": 5000}


def descent_command() -> list[str]:
    script = Path(sys.executable).parent / "descent"
    if script.exists():
        return [str(script)]
    found = shutil.which("descent")
    return [found] if found else [sys.executable, "-m", "descent.cli"]


def client_flow(base: str, key: str, tmp: Path) -> str:
    """The issue's example, line by line. Returns the dataset id."""
    X_train, X_test, y_train, y_test = digits_split()
    csv_path = tmp / "digits.csv"
    csv_path.write_bytes(digits_csv(X_train, y_train))
    with Client(base, api_key=key) as client:
        ds = client.upload(csv_path, label="digit")
        assert ds.task == "classification" and ds.n_rows == len(y_train)
        run = client.train(ds, SPEC)
        assert run.status == "queued"
        epochs = [entry["epoch"] for entry in run.follow()]
        assert epochs == list(range(1, 9))  # pushed, in order, once each
        model = run.wait()
        assert run.status == "succeeded"
        assert [e["epoch"] for e in run.history()] == epochs

        proba = model.predict_proba(X_test)
        assert proba.shape == (len(y_test), 10)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        predicted = model.predict(X_test)
        assert model.classes == list(range(10))
        assert np.mean(predicted == y_test) >= 0.9
        np.testing.assert_array_equal(np.asarray(model.classes)[proba.argmax(axis=1)], predicted)

        weights = model.download(tmp / "m.npz")
        with np.load(weights, allow_pickle=False) as arrays:
            assert len(arrays.files) > 0

        assert run.id in [r.id for r in client.runs(status="succeeded")]
        assert client.run(run.id).model_id == model.id

        # Typed errors carrying the server's code and details.
        with pytest.raises(NotFound):
            client.run(str(uuid.uuid4()))
        with pytest.raises(InvalidInput) as invalid:
            client.train(ds, {"epochs": 0})
        assert invalid.value.field == "spec.epochs"

        # A cancelled run: wait() raises RunFailed naming it.
        long_run = client.train(ds, LONG_SPEC)
        long_run.refresh(wait_seconds=30, after_epoch=0)  # until it has trained an epoch
        assert long_run.cancel() in ("cancelling", "cancelled")
        with pytest.raises(RunFailed) as failed:
            long_run.wait(timeout=60)
        assert failed.value.code == "cancelled" and long_run.status == "cancelled"
        return ds.id


def _env(base: str, key: str, home: Path) -> dict[str, str]:
    env = clean_env()
    # A config folder of its own: login writes there, not into the user's home.
    env.update(DESCENT_URL=base, DESCENT_API_KEY=key, XDG_CONFIG_HOME=str(home), HOME=str(home))
    return env


def _run_cli(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*descent_command(), *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def cli_flow(base: str, key: str, tmp: Path) -> None:
    """The CLI as a real subprocess: upload, submit with --set and --follow, list, show,
    history, predict to a file, download; --json parsed; exit codes."""
    X_train, X_test, y_train, y_test = digits_split()
    csv_path = tmp / "digits.csv"
    csv_path.write_bytes(digits_csv(X_train, y_train))
    test_path = tmp / "digits-test.csv"
    test_path.write_bytes(digits_csv(X_test, y_test))
    spec_path = tmp / "spec.yaml"
    spec_path.write_text(
        "layers:\n  - units: 64\noptimizer:\n  name: adam\n  learning_rate: 0.01\nepochs: 20\n"
    )
    env = _env(base, key, tmp / "home")

    up = _run_cli(["datasets", "upload", str(csv_path), "--label", "digit", "--json"], env, tmp)
    assert up.returncode == 0, up.stderr
    dataset = json.loads(up.stdout)
    assert dataset["n_features"] == 64

    submitted = _run_cli(
        ["runs", "submit", "--dataset", dataset["id"], "--spec", str(spec_path),
         "--set", "epochs=6", "--set", "optimizer.learning_rate=0.005", "--follow", "--json"],
        env, tmp,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    lines = [json.loads(line) for line in submitted.stdout.splitlines()]
    assert [e["epoch"] for e in lines if e["event"] == "epoch"] == list(range(1, 7))
    final = lines[-1]
    assert final["event"] == "final" and final["status"] == "succeeded"
    assert final["spec"]["optimizer"]["learning_rate"] == 0.005 and final["spec"]["epochs"] == 6
    run_id, model_id = final["id"], final["model_id"]

    listed = json.loads(
        _run_cli(["runs", "list", "--status", "succeeded", "--json"], env, tmp).stdout
    )
    assert run_id in [r["id"] for r in listed]
    history = json.loads(_run_cli(["runs", "history", run_id, "--json"], env, tmp).stdout)
    assert [e["epoch"] for e in history] == list(range(1, 7))

    out = tmp / "predictions.csv"
    predicted = _run_cli(
        ["models", "predict", model_id, "--input", str(test_path), "--output", str(out)], env, tmp
    )
    assert predicted.returncode == 0, predicted.stderr
    rows = out.read_text().splitlines()
    assert rows[0].split(",")[:2] == ["prediction", "p_0"] and len(rows) == len(y_test) + 1
    accuracy = np.mean([int(r.split(",")[0]) == y for r, y in zip(rows[1:], y_test, strict=True)])
    assert accuracy >= 0.85

    downloaded = _run_cli(["models", "download", model_id, "-o", "w.npz", "--json"], env, tmp)
    assert json.loads(downloaded.stdout)["path"] == "w.npz"
    with np.load(tmp / "w.npz", allow_pickle=False) as arrays:
        assert len(arrays.files) > 0

    # A run that does not succeed: --follow exits 1 and says so.
    long_run = _run_cli(
        ["runs", "submit", "--dataset", dataset["id"], "--set", "epochs=5000", "--json"], env, tmp
    )
    long_id = json.loads(long_run.stdout)["id"]
    cancelled = _run_cli(["runs", "cancel", long_id, "--json"], env, tmp)
    assert cancelled.returncode == 0, cancelled.stderr
    followed = _run_cli(["runs", "follow", long_id], env, tmp)
    assert followed.returncode == 1 and "cancelled" in followed.stdout

    # A server's refusal: a one-line message naming the field, exit 1.
    refused = _run_cli(
        ["runs", "submit", "--dataset", dataset["id"], "--set", "epochs=0"], env, tmp
    )
    assert refused.returncode == 1 and "epochs" in refused.stderr

    # login stores the URL and key (mode 0600); with them saved, no variables are needed.
    logged = _run_cli(["login", "--url", base, "--key", key], env, tmp)
    assert logged.returncode == 0, logged.stderr
    config = next((tmp / "home").rglob("config.json"))
    assert config.stat().st_mode & 0o777 == 0o600
    bare = {k: v for k, v in env.items() if k not in ("DESCENT_URL", "DESCENT_API_KEY")}
    shown = _run_cli(["datasets", "show", dataset["id"], "--json"], bare, tmp)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == dataset["id"]


def cli_runner_flow(base: str, key: str, dataset_id: str) -> None:
    """The same commands in process, through click's runner: tables for people by default."""
    runner = CliRunner()
    env = {"DESCENT_URL": base, "DESCENT_API_KEY": key}
    listed = runner.invoke(cli_main, ["datasets", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert dataset_id[:8] in listed.output
    shown = runner.invoke(cli_main, ["datasets", "show", dataset_id, "--json"], env=env)
    assert shown.exit_code == 0 and json.loads(shown.output)["id"] == dataset_id
    runs: Any = json.loads(runner.invoke(cli_main, ["runs", "list", "--json"], env=env).output)
    # client_flow's two runs on this dataset: the succeeded one and the cancelled one.
    mine = [r["status"] for r in runs if r["dataset_id"] == dataset_id]
    assert sorted(mine) == ["cancelled", "succeeded"]
    missing = runner.invoke(cli_main, ["runs", "show", str(uuid.uuid4())], env=env)
    assert missing.exit_code == 1 and "not found" in missing.output
