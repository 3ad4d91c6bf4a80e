"""Subnormals are flushed to zero while training, and only then."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from models import train
from models.fpenv import subnormals_flushed
from tests.models.conftest import small_spec

TINY = np.float32(1e-39)  # a float32 subnormal (the smallest normal is 1.2e-38)

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only"
)


def _survives() -> bool:
    return bool(np.array([TINY]) * np.float32(1.0) != 0)


def test_flushed_inside_restored_after_even_on_error() -> None:
    assert _survives()
    with subnormals_flushed() as flushed:
        assert flushed
        assert not _survives()
    assert _survives()
    with pytest.raises(RuntimeError), subnormals_flushed():
        raise RuntimeError("boom")
    assert _survives()


def test_training_flushes_and_leaves_the_callers_environment(iris) -> None:
    x, y = iris
    seen: list[bool] = []
    train(x, y, small_spec(epochs=2), on_epoch=lambda _end: seen.append(_survives()))
    assert seen == [False, False]  # during training: flushed
    assert _survives()  # after: the caller's environment again
