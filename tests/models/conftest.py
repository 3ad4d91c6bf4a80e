from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x, y


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x, y


def small_spec(**overrides):
    spec = {
        "layers": [{"units": 16, "activation": "relu"}],
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        "epochs": 6,
        "batch_size": 16,
        "seed": 3,
    }
    spec.update(overrides)
    return spec
