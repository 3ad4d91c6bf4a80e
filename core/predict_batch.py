"""Small predicts of one model that arrive together answered by one forward pass.

A forward pass of a few rows costs numpy's per-call overhead, not arithmetic (a 1-row predict
of a 64-64-10 network: 16 us, of which the matrix products are under 2), so the requests that
reach the event loop in the same turn are stacked and predicted at once, as model servers
batch dynamically (TF Serving, Triton). Nothing waits for a batch to fill: the batch is
predicted in the loop's next turn, after the requests already running in this one have
parsed their bodies and joined it. One request alone pays a future and that turn, a few
microseconds.

A row's answer is the same arithmetic whatever it is stacked with, but BLAS may order a
matrix product's sums differently for another number of rows: numbers may differ in the last
float32 digit (as between predicting a row alone and in a table). If a batch fails, each of its
requests is predicted alone, so an error reaches only the request it belongs to.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.predictions import Prediction, predict
from models import Model as LoadedModel

# Requests of up to this many rows are batched; a batch holds at most MAX_BATCH_ROWS.
BATCH_ROWS = 256
MAX_BATCH_ROWS = 1024


@dataclass
class _Batch:
    model: LoadedModel
    rows: int = 0
    inputs: list[NDArray[Any]] = field(default_factory=list)
    waiting: list[asyncio.Future[Prediction]] = field(default_factory=list)


class PredictBatcher:
    """One per API process, used from its event loop."""

    def __init__(self) -> None:
        self._open: dict[int, _Batch] = {}  # by id(model): the batch still taking requests

    async def predict(self, model: LoadedModel, X: NDArray[Any]) -> Prediction:
        if X.shape[0] > BATCH_ROWS:
            return predict(model, X)
        loop = asyncio.get_running_loop()
        key = id(model)
        batch = self._open.get(key)
        if batch is None or batch.model is not model or batch.rows + X.shape[0] > MAX_BATCH_ROWS:
            batch = self._open[key] = _Batch(model)
            loop.call_soon(self._answer, key, batch)
        answer: asyncio.Future[Prediction] = loop.create_future()
        batch.rows += X.shape[0]
        batch.inputs.append(X)
        batch.waiting.append(answer)
        return await answer

    def _answer(self, key: int, batch: _Batch) -> None:
        if self._open.get(key) is batch:
            del self._open[key]
        if len(batch.inputs) > 1:
            try:
                whole = predict(batch.model, np.concatenate(batch.inputs))
            except Exception:
                pass  # each alone, below: the error goes to its own request
            else:
                start = 0
                for X, answer in zip(batch.inputs, batch.waiting, strict=True):
                    stop = start + X.shape[0]
                    _settle(answer, result=_rows(whole, start, stop))
                    start = stop
                return
        for X, answer in zip(batch.inputs, batch.waiting, strict=True):
            try:
                _settle(answer, result=predict(batch.model, X))
            except Exception as exc:
                _settle(answer, error=exc)


def _rows(whole: Prediction, start: int, stop: int) -> Prediction:
    probabilities = whole.probabilities
    return Prediction(
        predictions=whole.predictions[start:stop],
        probabilities=None if probabilities is None else probabilities[start:stop],
        classes=whole.classes,
    )


def _settle(
    answer: asyncio.Future[Prediction],
    *,
    result: Prediction | None = None,
    error: Exception | None = None,
) -> None:
    if answer.done():  # its request was cancelled (the client left)
        return
    if error is not None:
        answer.set_exception(error)
    else:
        assert result is not None
        answer.set_result(result)
