"""Helpers for end-to-end tests: free ports, process groups that are always stopped, an HTTP
client, and the digits dataset as CSV."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(
    argv: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group; SIGINT then SIGKILL to the whole group on exit."""
    with open(log, "wb") as out:
        child = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield child
        finally:
            stop_group(child)


def stop_group(child: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int | None:
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(5)
    return child.returncode


def wait_for(predicate: Any, *, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_healthy(base: str, child: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    def up() -> bool:
        if child.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=timeout, what="/healthz")


def digits_split() -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y
    )
    return X_train, X_test, y_train, y_test


def digits_csv(X: NDArray[Any], y: NDArray[Any]) -> bytes:
    header = ",".join([f"px{i}" for i in range(X.shape[1])] + ["digit"])
    lines = [header] + [
        ",".join(str(int(v)) for v in row) + f",{int(label)}"
        for row, label in zip(X, y, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def train_digits_through_api(base: str, key: str, *, timeout: float = 90) -> dict[str, Any]:
    """The newcomer's walk: upload digits, start a run, poll to success, check history, predict
    held-out rows. Returns the final run."""
    headers = {"Authorization": f"Bearer {key}"}
    X_train, X_test, y_train, y_test = digits_split()
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        up = http.post(
            "/v1/datasets", files={"file": ("digits.csv", digits_csv(X_train, y_train), "text/csv")}
        )
        assert up.status_code == 201, up.text
        dataset = up.json()
        assert dataset["n_features"] == 64 and dataset["task"] == "classification"
        spec = {
            "layers": [{"units": 64, "activation": "relu"}],
            "optimizer": {"name": "adam", "learning_rate": 0.003},
            "epochs": 8,
            "batch_size": 32,
            "seed": 1,
        }
        submitted = http.post("/v1/runs", json={"dataset_id": dataset["id"], "spec": spec})
        assert submitted.status_code == 202, submitted.text
        run = submitted.json()
        assert run["status"] == "queued"

        def finished() -> dict[str, Any] | None:
            current = http.get(f"/v1/runs/{run['id']}").json()
            return current if current["status"] in ("succeeded", "failed", "cancelled") else None

        final = wait_for(finished, timeout=timeout, what="the run to finish", interval=0.3)
        assert final["status"] == "succeeded", final
        assert final["progress"]["fraction"] == 1.0
        history = http.get(f"/v1/runs/{run['id']}/history").json()["epochs"]
        assert [e["epoch"] for e in history] == list(range(1, 9))

        model_id = final["model_id"]
        model = http.get(f"/v1/models/{model_id}").json()
        assert model["input"]["n_features"] == 64
        predicted = http.post(f"/v1/models/{model_id}/predict", json={"inputs": X_test.tolist()})
        assert predicted.status_code == 200, predicted.text
        body = predicted.json()
        probabilities = np.asarray(body["probabilities"])
        assert probabilities.shape == (len(X_test), 10)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
        accuracy = float(np.mean(np.asarray(body["predictions"]) == y_test))
        assert accuracy >= 0.95, accuracy
        weights = http.get(f"/v1/models/{model_id}/weights")
        assert weights.status_code == 200 and weights.content[:2] == b"PK"
        return dict(final)
