"""``client.upload`` from a DataFrame (polars: the one installed; pandas takes the same path
through ``to_csv``) and from arrays X and y, against the real app on both backends (the
client's HTTP through the TestClient's transport; the worker in process)."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from fastapi.testclient import TestClient

from core.config import Settings
from core.runs import training
from descent import Client
from store.session import Database
from tests.api.runs_fixtures import FEATURES, SPEC, api, blobs_csv, in_process_client, sent

__all__ = ["api", "sent"]


def _client(api: TestClient, key: str) -> Client:
    return in_process_client(api._transport, key)


def test_upload_a_polars_dataframe(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    frame = pl.read_csv(io.BytesIO(blobs_csv()))
    with _client(api, tenant_key) as client:
        ds = client.upload(frame, label="colour", name="blobs-frame")
        assert ds.data["name"] == "blobs-frame" and ds.n_rows == frame.height
        assert ds.data["feature_names"] == FEATURES and ds.data["label"] == "colour"
        assert ds.task == "classification" and ds.classes == ["blue", "green", "red"]
        run = client.train(ds, SPEC)
        assert training.run_training(db, run.id, settings=settings) == "succeeded"
        model = run.wait(timeout=10)
        # A frame predicts by column name: the columns in another order give the same answer.
        features = frame.select(FEATURES)
        shuffled = frame.select(list(reversed(FEATURES)))
        np.testing.assert_array_equal(model.predict(features), model.predict(shuffled))
        assert np.mean(model.predict(features) == frame["colour"].to_numpy()) >= 0.9


def test_upload_arrays_x_and_y(api: TestClient, tenant_key: str) -> None:
    frame = pl.read_csv(io.BytesIO(blobs_csv()))
    X = frame.select(FEATURES).to_numpy()
    y = np.array([["blue", "green", "red"].index(c) for c in frame["colour"]])
    with _client(api, tenant_key) as client:
        ds = client.upload(X, y, name="blobs-arrays")
        assert ds.data["format"] == "npz" and ds.data["name"] == "blobs-arrays"
        assert ds.n_rows == len(y) and ds.data["n_features"] == X.shape[1]
        assert ds.task == "classification" and ds.classes == [0, 1, 2]
        assert client.dataset(ds.id).data["sha256"] == ds.data["sha256"]
