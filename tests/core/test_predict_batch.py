"""Predicts of one model that reach the event loop together answered by one forward pass
(core.predict_batch): each request gets its own rows' answers, an error only its own request,
a large request is not stacked, a request that left does not upset the others."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from core import predict_batch
from core.errors import InvalidInput
from core.predict_batch import BATCH_ROWS, PredictBatcher
from core.predictions import Prediction, predict
from models import Model, train


@pytest.fixture(scope="module")
def model() -> Model:
    x, y = load_iris(return_X_y=True)
    names = ["setosa", "versicolor", "virginica"]
    labels = np.array([names[int(k)] for k in y])
    return train(x, labels, {"layers": [{"units": 8}], "epochs": 3, "seed": 1}).model


@pytest.fixture
def forward_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each forward pass the batcher makes."""
    passes: list[int] = []

    def counting(model: Model, X: Any) -> Prediction:
        passes.append(X.shape[0])
        return predict(model, X)

    monkeypatch.setattr(predict_batch, "predict", counting)
    return passes


def _tables() -> list[np.ndarray]:
    x, _ = load_iris(return_X_y=True)
    return [x[:1], x[50:53], x[100:101], x[10:20]]


def _same(a: Prediction, b: Prediction) -> None:
    assert a.predictions == b.predictions and a.classes == b.classes
    assert a.probabilities is not None and b.probabilities is not None
    # The same arithmetic; BLAS may order a product's sums otherwise for another row count.
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-6, atol=1e-7)
    assert a.probabilities.flags.c_contiguous


def test_requests_in_one_turn_share_one_forward_pass(
    model: Model, forward_passes: list[int]
) -> None:
    batcher, tables = PredictBatcher(), _tables()

    async def together() -> list[Prediction]:
        return list(await asyncio.gather(*(batcher.predict(model, X) for X in tables)))

    answers = asyncio.run(together())
    assert forward_passes == [sum(len(X) for X in tables)]
    for X, answer in zip(tables, answers, strict=True):
        _same(answer, predict(model, X))


def test_one_request_alone_is_its_own_pass(model: Model, forward_passes: list[int]) -> None:
    batcher, (X, *_) = PredictBatcher(), _tables()

    async def one_by_one() -> None:
        for _ in range(3):
            _same(await batcher.predict(model, X), predict(model, X))

    asyncio.run(one_by_one())
    assert forward_passes == [1, 1, 1]


def test_an_error_reaches_only_its_own_request(model: Model, forward_passes: list[int]) -> None:
    batcher, tables = PredictBatcher(), _tables()
    bad = tables[1].copy()
    bad[1, 2] = np.inf  # the engine refuses it, naming row and feature

    async def together() -> list[Any]:
        calls = [batcher.predict(model, X) for X in (tables[0], bad, tables[2])]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    first, error, third = asyncio.run(together())
    assert isinstance(error, InvalidInput) and "row 1" in error.message
    _same(first, predict(model, tables[0]))
    _same(third, predict(model, tables[2]))
    assert forward_passes == [5, 1, 3, 1]  # the batch failed: then each alone


def test_a_large_request_is_not_stacked(model: Model, forward_passes: list[int]) -> None:
    batcher = PredictBatcher()
    x, _ = load_iris(return_X_y=True)
    large = np.repeat(x, 2, axis=0)[: BATCH_ROWS + 1]

    async def together() -> None:
        await asyncio.gather(batcher.predict(model, large), batcher.predict(model, x[:1]))

    asyncio.run(together())
    assert forward_passes == [BATCH_ROWS + 1, 1]


def test_a_request_that_left_leaves_the_others_answered(
    model: Model, forward_passes: list[int]
) -> None:
    batcher, tables = PredictBatcher(), _tables()

    async def one_leaves() -> list[Any]:
        tasks = [asyncio.create_task(batcher.predict(model, X)) for X in tables[:3]]
        await asyncio.sleep(0)  # each has joined the batch
        tasks[1].cancel()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    first, left, third = asyncio.run(one_leaves())
    assert isinstance(left, asyncio.CancelledError)
    _same(first, predict(model, tables[0]))
    _same(third, predict(model, tables[2]))
    assert forward_passes == [5]
