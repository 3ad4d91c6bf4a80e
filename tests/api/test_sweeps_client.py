"""Sweeps from the Python client and the CLI (``client.sweep``, ``descent sweeps ...``) against
the real app on both backends. The client's HTTP goes through the TestClient's transport; the
worker is in process and trains one sent trial each time the client polls a sweep, so a sweep
advances between polls as it would with real workers, without threads or sleeps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from rich.console import Console

from core.config import Settings
from core.runs import training
from descent import Client, SweepFailed, model_commands, sweep_commands
from descent.cli import main as cli_main
from descent.errors import Conflict, InvalidInput, Unavailable
from store.session import Database
from tests.api.runs_fixtures import Sent, api, dataset_id, in_process_client, sent

__all__ = ["api", "dataset_id", "sent"]  # fixtures

BASE = {"epochs": 6, "batch_size": 16, "seed": 3, "optimizer": {"name": "adam"},
        "layers": [{"units": 8}]}  # fmt: skip
# 0.05 learns the three blobs in a few epochs, 0.0001 barely moves: a known winner.
GRID = {"method": "grid", "space": {"optimizer.learning_rate": [0.0001, 0.05]}}
CENTRES = [[0.0, 0.0, 0.0, 0.0], [2.0, -1.5, 1.0, 0.0], [4.0, -3.0, 2.0, 0.0]]


class PollWorker(httpx.BaseTransport):
    """The app's transport, training the next sent trial before each ``every``-th GET of one
    sweep."""

    def __init__(
        self, inner: httpx.BaseTransport, db: Database, settings: Settings, sent: Sent
    ) -> None:
        self.inner, self.db, self.settings, self.sent = inner, db, settings, sent
        self.trained = self.polls = 0
        self.every = 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        polled = request.method == "GET" and path.startswith("/v1/sweeps/")
        self.polls += polled
        if polled and self.polls % self.every == 0 and self.trained < len(self.sent):
            run_id = self.sent[self.trained]
            training.run_training(self.db, run_id, settings=self.settings, enqueue=self.sent)
            self.trained += 1
        return self.inner.handle_request(request)


@pytest.fixture
def worker(api: TestClient, db: Database, settings: Settings, sent: Sent) -> PollWorker:
    return PollWorker(api._transport, db, settings, sent)


def test_wait_returns_the_best_model_and_it_predicts(
    worker: PollWorker, tenant_key: str, dataset_id: str
) -> None:
    with in_process_client(worker, tenant_key) as client:
        sweep = client.sweep(
            dataset_id, BASE, GRID, metric="val_accuracy", max_parallel=1, name="lr"
        )
        assert sweep.status == "running" and sweep.best is None and len(sweep.trials) == 2
        model = sweep.wait(timeout=60, interval=0)
        assert sweep.status == "succeeded" and worker.trained == 2
        best = sweep.best
        assert best is not None and model.id == best["model_id"]
        assert best["params"] == {"optimizer.learning_rate": 0.05}
        values = [t["best_value"] for t in sweep.trials]
        assert values == sorted(values, reverse=True)  # val_accuracy: highest first
        assert list(model.predict(CENTRES)) == ["blue", "green", "red"]
        # The trials are ordinary runs of the sweep; the listing and get_sweep see it.
        runs = sweep.runs()
        assert {r.id for r in runs} == {t["run_id"] for t in sweep.trials}
        assert {r.data["sweep_id"] for r in runs} == {sweep.id}
        assert client.get_sweep(sweep.id).best == best
        listed = client.sweeps()
        assert [s.id for s in listed] == [sweep.id] and listed[0].data["name"] == "lr"
        assert listed[0].best == best  # a summary fetches its leaderboard when asked


def test_follow_yields_each_change_and_ends_final(
    worker: PollWorker, tenant_key: str, dataset_id: str
) -> None:
    search = {"method": "grid", "space": {"optimizer.learning_rate": [0.05, 0.02, 0.01]}}
    worker.every = 2  # every other poll sees no change: it is not yielded
    with in_process_client(worker, tenant_key) as client:
        sweep = client.sweep(dataset_id, {**BASE, "epochs": 2}, search, metric="val_loss",
                             max_parallel=1)  # fmt: skip
        snapshots = list(sweep.follow(interval=0))
        done = [sum(t["status"] == "succeeded" for t in s["trials"]) for s in snapshots]
        assert done == [0, 1, 2, 3] and worker.polls == 6
        assert [s["status"] for s in snapshots] == ["running"] * 3 + ["succeeded"]
        assert snapshots[-1]["best"] is not None and sweep.done
        # A final sweep: one snapshot, at once.
        assert [s["status"] for s in client.get_sweep(sweep.id).follow()] == ["succeeded"]


def test_cancel_ends_the_sweep_and_wait_raises_with_its_status(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    with in_process_client(api._transport, tenant_key) as client:  # no worker: nothing trains
        sweep = client.sweep(dataset_id, BASE, GRID, metric="val_loss", max_parallel=1)
        with pytest.raises(TimeoutError):
            sweep.wait(timeout=0.05, interval=0.01)
        assert sweep.cancel() == "cancelled"
        assert {t["status"] for t in sweep.trials} == {"cancelled"}  # fetched anew
        with pytest.raises(SweepFailed) as failed:
            sweep.wait(timeout=5)
        assert failed.value.code == "cancelled" and failed.value.best_model_id is None
        with pytest.raises(Conflict) as again:
            sweep.cancel()
        assert again.value.code == "sweep_finished"


def test_a_trial_with_an_invalid_spec_raises_naming_the_trial_and_field(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    search = {"method": "grid", "space": {"optimizer.learning_rate": [0.1, -1.0]}}
    with in_process_client(api._transport, tenant_key) as client:
        with pytest.raises(InvalidInput) as invalid:
            client.sweep(dataset_id, BASE, search, metric="val_loss")
        assert invalid.value.field == "spec.optimizer.learning_rate"
        assert invalid.value.trial == 1
        assert invalid.value.params == {"optimizer.learning_rate": -1.0}
        assert client.sweeps() == []


def test_follow_in_a_terminal_redraws_the_leaderboard_and_exits_0(
    worker: PollWorker, tenant_key: str, dataset_id: str
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=160)
    with in_process_client(worker, tenant_key) as client:
        sweep = client.sweep(dataset_id, {**BASE, "epochs": 2}, GRID, metric="val_loss",
                             max_parallel=1)  # fmt: skip
        assert sweep_commands.follow_sweep(sweep, as_json=False, interval=0, console=console) == 0
    drawn = screen.getvalue()
    assert "1/2 trials done" in drawn and "2/2 trials done" in drawn  # redrawn as trials end
    best = sweep.best
    assert best is not None and f"model {best['model_id']}" in " ".join(drawn.split())


def test_a_lost_answer_to_submit_is_not_retried(tenant_key: str, dataset_id: str) -> None:
    """The server takes no Idempotency-Key for sweeps: a retry could start a second one."""
    calls: list[str] = []

    def lost(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ReadTimeout("no answer", request=request)

    client = Client("http://testserver", api_key=tenant_key, transport=httpx.MockTransport(lost))
    with client, pytest.raises(Unavailable) as unavailable:
        client.sweep(dataset_id, BASE, GRID, metric="val_loss")
    assert unavailable.value.code == "answer_lost" and calls == ["/v1/sweeps"]

    # A 503 answer means nothing was done: retried, as every other call's.
    answers = [httpx.Response(503, headers={"Retry-After": "0"}),
               httpx.Response(202, json={"id": "s1", "status": "running"})]  # fmt: skip
    busy = httpx.MockTransport(lambda _request: answers.pop(0))
    with Client("http://testserver", api_key=tenant_key, transport=busy) as client:
        assert client.sweep(dataset_id, BASE, GRID, metric="val_loss").id == "s1"
    assert answers == []


def _cli(api_or_worker: httpx.BaseTransport, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(
        sweep_commands, "make_client", lambda _u, key: in_process_client(api_or_worker, key)
    )
    return CliRunner(env={"COLUMNS": "200"})  # rich would wrap the tables at 80


def test_cli_submit_follow_list_show_cancel(
    worker: PollWorker,
    tenant_key: str,
    dataset_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "spec.yaml").write_text(
        "epochs: 4\nbatch_size: 16\nseed: 3\nlayers: [{units: 8}]\n"
    )
    # The winner first: with ASHA the other is judged against it at epoch 1 and stopped.
    search = {"method": "grid", "space": {"optimizer.learning_rate": [0.05, 0.0001]}}
    (tmp_path / "search.json").write_text(json.dumps(search))
    runner = _cli(worker, monkeypatch)
    key = ["--key", tenant_key]
    files = ["--spec", str(tmp_path / "spec.yaml"), "--search", str(tmp_path / "search.json")]
    submit = ["sweeps", "submit", "--dataset", dataset_id, *files, "--metric", "val_accuracy", *key]
    options = ["--asha", "1,2", "--max-parallel", "1", "--name", "cli"]
    followed = runner.invoke(cli_main, [*submit, *options, "--follow", "--interval", "0"])
    assert followed.exit_code == 0, followed.output
    sweep_id = followed.output.split()[1].rstrip(":")
    with in_process_client(worker, tenant_key) as client:
        final = client.get_sweep(sweep_id).data
    assert final["status"] == "succeeded" and worker.trained == 2
    assert final["early_termination"] == {"type": "asha", "grace_epochs": 1, "reduction_factor": 2}
    best = final["best"]
    said = followed.output
    assert "optimizer.learning_rate" in said and "2/2 trials done" in said  # the leaderboard
    assert f"run {best['run_id']}, model {best['model_id']}" in " ".join(said.split())

    shown = runner.invoke(cli_main, ["sweeps", "show", sweep_id, *key])
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.output.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and best["run_id"] in rows[0]  # best first
    assert "0.05" in rows[0] and "stopped early" in rows[1] and " 1 │ stopped" in rows[1]
    as_json = runner.invoke(cli_main, ["sweeps", "show", sweep_id, "--json", *key])
    assert json.loads(as_json.output)["trials"] == final["trials"]

    lines = runner.invoke(cli_main, ["sweeps", "follow", sweep_id, "--json", *key]).output
    events = [json.loads(line) for line in lines.splitlines()]
    assert [e["event"] for e in events] == ["snapshot", "final"]
    assert events[-1]["best"] == best

    listed = runner.invoke(cli_main, ["sweeps", "list", *key])
    assert listed.exit_code == 0 and sweep_id in listed.output and "cli" in listed.output

    finished = runner.invoke(cli_main, ["sweeps", "cancel", sweep_id, *key])
    assert finished.exit_code == 1 and "sweep_finished" in finished.output
    queued = runner.invoke(cli_main, [*submit, "--json"])
    assert queued.exit_code == 0, queued.output
    other = json.loads(queued.output)["id"]
    cancelled = runner.invoke(cli_main, ["sweeps", "cancel", other, *key])
    assert cancelled.exit_code == 0 and f"sweep {other} cancelled" in cancelled.output
    # Following a sweep that ended cancelled exits 1, as `runs follow` does.
    again = runner.invoke(cli_main, ["sweeps", "follow", other, "--interval", "0", *key])
    assert again.exit_code == 1 and "no trial has a model" in again.output


def test_cli_submit_errors_name_the_trial_field_and_option(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    search = tmp_path / "search.yaml"
    search.write_text("method: grid\nspace:\n  optimizer.learning_rate: [0.1, -1.0]\n")
    runner = _cli(api._transport, monkeypatch)
    base = ["sweeps", "submit", "--dataset", dataset_id, "--search", str(search),
            "--metric", "val_loss", "--key", tenant_key]  # fmt: skip
    bad = runner.invoke(cli_main, base)
    assert bad.exit_code == 1
    assert "trial 1" in bad.output and "spec.optimizer.learning_rate" in bad.output
    asha = runner.invoke(cli_main, [*base, "--asha", "2"])
    assert asha.exit_code == 2 and "GRACE,FACTOR" in asha.output


def test_the_winner_is_registered_from_python_and_the_cli(
    worker: PollWorker,
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with in_process_client(worker, tenant_key) as client:
        sweep = client.sweep(dataset_id, BASE, GRID, metric="val_accuracy", max_parallel=1)
        first = sweep.register("blobs", alias="production", timeout=60)
        best = sweep.best
        assert best is not None
        assert first == {"name": "blobs", "version": 1, "model_id": best["model_id"],
                         "alias": "production"}  # fmt: skip
        # The name exists now: the next registration is version 2, not an error.
        assert client.register(best["model_id"], "blobs")["version"] == 2
    headers = {"Authorization": f"Bearer {tenant_key}"}
    registered = api.get("/v1/registry/blobs", headers=headers).json()
    assert registered["aliases"] == {"production": 1}
    answer = api.post(
        "/v1/registry/blobs/aliases/production/predict", headers=headers,
        json={"inputs": CENTRES},
    ).json()  # fmt: skip
    assert answer["model_id"] == best["model_id"] and answer["version"] == 1
    assert answer["predictions"] == ["blue", "green", "red"]

    # The CLI: submit --follow --register, then models register.
    runner = _cli(worker, monkeypatch)
    monkeypatch.setattr(
        model_commands, "make_client", lambda _u, key: in_process_client(worker, key)
    )
    (tmp_path / "search.json").write_text(json.dumps(GRID))
    key = ["--key", tenant_key]
    search = ["--search", str(tmp_path / "search.json")]
    submit = ["sweeps", "submit", "--dataset", dataset_id, "--set", "epochs=3", *search,
              "--metric", "val_accuracy", *key]  # fmt: skip
    refused = runner.invoke(cli_main, [*submit, "--register", "cli"])
    assert refused.exit_code == 2 and "--register needs --follow" in refused.output
    done = runner.invoke(
        cli_main,
        [*submit, "--follow", "--interval", "0", "--register", "cli", "--alias", "staging"],
    )
    assert done.exit_code == 0, done.output
    assert "as cli v1 (staging)" in done.output
    again = runner.invoke(cli_main, ["models", "register", best["model_id"], "--name", "cli", *key])
    assert again.exit_code == 0 and f"registered model {best['model_id']} as cli v2" in again.output
