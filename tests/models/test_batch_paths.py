"""The step loop's fast paths change where rows and logits are kept, never the numbers.

Large training sets are gathered a batch at a time instead of copied whole per epoch, and train
accuracy keeps the epoch's logits unless they are too many (models.batches): each pair of paths
must give bit-identical weights and history. Resuming across the paths stays exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from models import TrainingState, batches, train
from tests.models.conftest import small_spec


def comparable(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def run(x, y, spec, monkeypatch, *, gather: bool, keep_logits: bool, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(batches, "GATHER_BYTES", 0 if gather else 1 << 40)
        patch.setattr(batches, "EPOCH_LOGITS_BYTES", 1 << 40 if keep_logits else 0)
        return train(x, y, spec, **kwargs)


SPECS = [
    small_spec(),
    small_spec(shuffle=False),
    small_spec(batch_size=1, epochs=2, layers=[{"units": 8, "activation": "tanh"}]),
    small_spec(class_weight="balanced", layers=[{"units": 8, "dropout": 0.3, "l2": 1e-3}]),
]


@pytest.mark.parametrize("spec", SPECS)
def test_gathered_batches_and_kept_logits_change_nothing(iris, spec, monkeypatch) -> None:
    x, y = iris
    y = np.where(y == 2, 1, y) if "class_weight" in spec else y  # two classes: one logit
    reference = run(x, y, spec, monkeypatch, gather=False, keep_logits=False)
    for gather, keep in ((True, False), (False, True), (True, True)):
        other = run(x, y, spec, monkeypatch, gather=gather, keep_logits=keep)
        assert np.array_equal(other.model.network.theta, reference.model.network.theta)
        assert comparable(other.history) == comparable(reference.history)
    assert all(0.0 < h["train_accuracy"] <= 1.0 for h in reference.history)


def test_resume_across_the_paths_is_exact(iris, monkeypatch) -> None:
    x, y = iris
    spec = small_spec()
    saved = {}

    def on_epoch(e):
        if e.epoch == 3:
            saved["state"] = e.state().to_bytes()

    full = run(x, y, spec, monkeypatch, gather=False, keep_logits=True, on_epoch=on_epoch)
    state = TrainingState.from_bytes(saved["state"])
    resumed = run(x, y, spec, monkeypatch, gather=True, keep_logits=False, resume=state)
    assert np.array_equal(resumed.model.network.theta, full.model.network.theta)
    assert comparable(resumed.history) == comparable(full.history)
