"""Helpers for end-to-end tests: the digits dataset as CSV and the newcomer's walk through the
API; process groups and waiting come from ``descent.processes`` (shared with the benchmarks)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from descent.processes import (
    API_APP,
    free_port,
    process,
    stop_group,
    uvicorn_argv,
    wait_for,
    wait_healthy,
    worker_argv,
)

__all__ = [
    "API_APP",
    "digits_csv",
    "digits_split",
    "free_port",
    "process",
    "stop_group",
    "train_digits_through_api",
    "uvicorn_argv",
    "wait_for",
    "wait_healthy",
    "worker_argv",
]


# Learns digits to >= 0.9 held-out accuracy in 8 epochs.
DIGITS_SPEC = {
    "layers": [{"units": 64, "activation": "relu"}],
    "optimizer": {"name": "adam", "learning_rate": 0.003},
    "epochs": 8,
    "batch_size": 32,
    "seed": 1,
}


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
        submitted = http.post("/v1/runs", json={"dataset_id": dataset["id"], "spec": DIGITS_SPEC})
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
