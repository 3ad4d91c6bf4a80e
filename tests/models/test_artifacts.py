"""Model artifacts and training states: .npz without pickle, shapes checked, round trips exact."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from models import ArtifactError, InputError, TrainingState, load_model, train
from tests.models.conftest import small_spec


@pytest.fixture(scope="module")
def trained(iris):
    x, y = iris
    return train(x, np.array(["setosa", "versicolor", "virginica"])[y], small_spec())


def test_model_round_trip_predicts_identically(trained, iris) -> None:
    x, _ = iris
    data = trained.model.to_bytes()
    restored = load_model(data)
    np.testing.assert_array_equal(restored.predict_proba(x), trained.model.predict_proba(x))
    assert restored.classes == ["setosa", "versicolor", "virginica"]
    assert restored.metrics == trained.model.metrics


def test_weights_file_needs_nothing_of_ours(trained, iris) -> None:
    """A user with numpy alone can rebuild the forward pass from the downloaded .npz."""
    x, _ = iris
    with np.load(io.BytesIO(trained.model.to_bytes()), allow_pickle=False) as npz:
        import json

        meta = json.loads(str(npz["model.json"]))
        h = (x - npz["preprocessing.mean"]) / npz["preprocessing.scale"]
        h = np.maximum(h @ npz["layer0.W"] + npz["layer0.b"], 0)
        logits = h @ npz["layer1.W"] + npz["layer1.b"]
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p, trained.model.predict_proba(x), rtol=1e-4, atol=1e-6)


def rewrite(data: bytes, name: str, array: np.ndarray) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.namelist():
            if item == f"{name}.npy":
                buf = io.BytesIO()
                np.save(buf, array, allow_pickle=True)
                dst.writestr(item, buf.getvalue())
            else:
                dst.writestr(item, src.read(item))
    return out.getvalue()


def test_wrong_shapes_and_pickles_are_rejected(trained, tmp_path) -> None:
    data = trained.model.to_bytes()
    with pytest.raises(ArtifactError, match=r"layer0\.W has shape"):
        load_model(rewrite(data, "layer0.W", np.zeros((3, 3), dtype=np.float32)))
    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    with pytest.raises(ArtifactError):
        load_model(rewrite(data, "layer0.W", np.array([Evil()], dtype=object)))
    assert not canary.exists()
    with pytest.raises(ArtifactError):
        load_model(b"not a zip")
    with pytest.raises(ArtifactError):
        TrainingState.from_bytes(data)  # a model is not a training state


def test_predict_input_errors_name_the_problem(trained) -> None:
    model = trained.model
    with pytest.raises(InputError, match="expected 4 features, got 3"):
        model.predict([[1.0, 2.0, 3.0]])
    with pytest.raises(InputError, match=r"feature 'x1'.*not a finite"):
        model.predict([[1.0, float("inf"), 3.0, 4.0]])
    # NaN and None are missing values: imputed, not refused (tests/models/test_impute.py).
    assert model.predict([[1.0, float("nan"), 3.0, None]]).shape == (1,)
    with pytest.raises(InputError, match="'abc' is not a number"):
        model.predict([[1.0, "abc", 3.0, 4.0]])
    with pytest.raises(InputError, match="no rows"):
        model.predict(np.zeros((0, 4)))
