"""Handles on server objects: a Dataset, a Run (follow, wait, cancel, history), a Model
(predict, predict_proba, download) and a Sweep (follow, wait, cancel, its trials). Each holds
the JSON it was last seen with in ``data``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from httpx_sse import EventSource, SSEError, connect_sse

from descent.encoding import predict_bodies
from descent.errors import (
    InvalidInput,
    RunFailed,
    SweepFailed,
    Unavailable,
    error_from_response,
)

if TYPE_CHECKING:
    from descent.client import Client

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
_LONG_POLL_SECONDS = 30
# A sweep has no event stream and no long poll: its handle polls, this often by default.
SWEEP_POLL_SECONDS = 2.0


class _Resource:
    """A server object as last seen: its JSON in ``data``, the common fields as attributes."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client = client
        self.data = data

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def __repr__(self) -> str:
        shown = {k: self.data.get(k) for k in ("id", "name", "status", "task") if k in self.data}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


class Dataset(_Resource):
    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def task(self) -> str:
        return str(self.data["task"])

    @property
    def classes(self) -> list[Any] | None:
        classes = self.data.get("classes")
        return list(classes) if classes is not None else None

    @property
    def n_rows(self) -> int:
        return int(self.data["n_rows"])


class _Tracked(_Resource):
    """A resource with a status that ends (a run, a sweep)."""

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


class Run(_Tracked):
    @property
    def model_id(self) -> str | None:
        value = self.data.get("model_id")
        return str(value) if value is not None else None

    def refresh(self, *, wait_seconds: float | None = None, after_epoch: int | None = None) -> Run:
        """Fetch the run again; with ``wait_seconds`` the server answers as soon as there is
        an epoch after ``after_epoch`` or the run is final (long poll)."""
        params = {"wait_seconds": wait_seconds, "after_epoch": after_epoch}
        self.data = self.client._json("GET", f"/v1/runs/{self.id}", params=params)
        return self

    def history(self, *, since_epoch: int = 0) -> list[dict[str, Any]]:
        body = self.client._json(
            "GET", f"/v1/runs/{self.id}/history", params={"since_epoch": since_epoch}
        )
        return list(body["epochs"])

    def cancel(self) -> str:
        """Ask the run to stop; returns ``cancelling`` or ``cancelled``."""
        status = str(self.client._json("POST", f"/v1/runs/{self.id}/cancel")["status"])
        self.data["status"] = status
        return status

    def follow(self, *, after_epoch: int = 0, max_reconnects: int = 20) -> Iterator[dict[str, Any]]:
        """Each epoch as the server pushes it (Server-Sent Events), in order and once each;
        a dropped connection is resumed with ``Last-Event-ID``. Ends when the run is final."""
        last = after_epoch
        failures = 0
        while True:
            try:
                for event, payload in self._events(last):
                    failures = 0
                    if event == "epoch":
                        last = int(payload["epoch"])
                        yield payload
                    elif event == "status":
                        self.data.update(payload)
                        if payload.get("status") in FINAL_STATUSES:
                            return
            except (httpx.TransportError, SSEError) as exc:
                failures += 1
                if failures > max_reconnects:
                    raise Unavailable(f"lost the event stream of run {self.id}: {exc}") from exc
                self.client.sleep(min(10.0, 0.25 * 2**failures))
            else:
                # The stream closed before a final status (a proxy or a restart): resume.
                failures += 1
                if failures > max_reconnects:
                    raise Unavailable(f"the event stream of run {self.id} keeps closing")

    def _events(self, after_epoch: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """The stream's events after ``after_epoch``. Opening it is retried as every call is
        (Client.retrying: 429 and 503 wait their Retry-After), each time with the same
        Last-Event-ID; a stream that breaks once open is follow's to resume."""
        stack, source = self.client.retried(lambda: self._open_stream(after_epoch))
        with stack:
            for sse in source.iter_sse():
                if sse.event in ("epoch", "status") and sse.data:
                    yield sse.event, json.loads(sse.data)

    def _open_stream(self, after_epoch: int) -> tuple[ExitStack, EventSource]:
        """The stream opened with a 200 answer (and what closes it), or the error answer
        raised, its connection closed first so that a retry starts clean."""
        http = self.client._http
        headers = {"Last-Event-ID": str(after_epoch)}
        timeout = httpx.Timeout(http.timeout.connect, read=60.0)  # the server pings every 15 s
        stack = ExitStack()
        source = stack.enter_context(
            connect_sse(http, "GET", f"/v1/runs/{self.id}/events", headers=headers, timeout=timeout)
        )
        if source.response.is_error:
            with stack:
                source.response.read()
                raise error_from_response(source.response)
        return stack, source

    def wait(self, timeout: float | None = None) -> Model:
        """Block until the run is final: its Model if it succeeded, else RunFailed (code and
        message are the run's error; a cancelled run raises it with code ``cancelled``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = _LONG_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {self.id} is still {self.status} after {timeout} s")
            self.refresh(wait_seconds=max(1, min(_LONG_POLL_SECONDS, int(left))))
        if self.status != "succeeded" or self.model_id is None:
            error = self.data.get("error") or {}
            code = error.get("code") or self.status
            message = error.get("message") or f"the run ended {self.status}"
            raise RunFailed(self.id, self.status, str(code), str(message))
        return self.client.model(self.model_id)


class Model(_Resource):
    @property
    def classes(self) -> list[Any] | None:
        classes = self.data.get("classes")
        return list(classes) if classes is not None else None

    @property
    def task(self) -> str:
        return str(self.data["task"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.data["input"]["feature_names"])

    def _predict(self, X: Any) -> tuple[list[Any], list[Any] | None]:
        predictions: list[Any] = []
        probabilities: list[Any] | None = None
        for body in predict_bodies(X):
            answer = self.client._json("POST", f"/v1/models/{self.id}/predict", json_body=body)
            predictions.extend(answer["predictions"])
            if answer.get("probabilities") is not None:
                probabilities = (probabilities or []) + answer["probabilities"]
        return predictions, probabilities

    def predict_images(
        self, paths: list[str | os.PathLike[str]]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """An image model's classes and probabilities for picture files (PNG or JPEG), decoded
        on the server as the training pictures were."""
        parts = [("file", (Path(p).name, Path(p).read_bytes())) for p in paths]
        answer = self.client._json(
            "POST", f"/v1/models/{self.id}/predict", files=lambda _stack: parts
        )
        return np.asarray(answer["predictions"]), np.asarray(answer["probabilities"])

    def predict_with_proba(
        self, X: Any
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """Predictions and (for a classifier) probabilities from one pass over ``X``."""
        predictions, probabilities = self._predict(X)
        proba = np.asarray(probabilities, dtype=np.float64) if probabilities is not None else None
        return np.asarray(predictions), proba

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """Class names (classification) or values (regression), one per row of ``X``."""
        return np.asarray(self._predict(X)[0])

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, one row per input, columns in ``classes`` order."""
        _, probabilities = self._predict(X)
        if probabilities is None:
            raise InvalidInput(
                "this model is a regression model: it has no class probabilities",
                code="not_a_classifier",
            )
        return np.asarray(probabilities, dtype=np.float64)

    def register(self, name: str, *, alias: str | None = None) -> dict[str, Any]:
        """This model as the next version of the registry name ``name`` (see Client.register)."""
        return self.client.register(self, name, alias=alias)

    def download(self, path: str | os.PathLike[str]) -> Path:
        """The weights as a self-contained ``.npz`` (numpy.load(..., allow_pickle=False))."""
        target = Path(path)
        response = self.client.request("GET", f"/v1/models/{self.id}/weights")
        target.write_bytes(response.content)
        return target


class Sweep(_Tracked):
    """A hyperparameter sweep. ``data`` is its leaderboard as last fetched (a handle from
    ``client.sweeps()`` holds only the summary until ``refresh()``, which ``trials`` and
    ``best`` call when needed)."""

    @property
    def trials(self) -> list[dict[str, Any]]:
        """Best first (trials without a value yet last): run_id, trial, params, status,
        best_value, epochs_done, stopped_early."""
        if "trials" not in self.data:
            self.refresh()
        return list(self.data["trials"])

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial with a model so far: run_id, model_id, value, params."""
        if "trials" not in self.data:
            self.refresh()
        best = self.data.get("best")
        return dict(best) if best is not None else None

    def refresh(self) -> Sweep:
        self.data = self.client._json("GET", f"/v1/sweeps/{self.id}")
        return self

    def runs(self) -> list[Run]:
        """The trials as ordinary runs (history, events, cancel one by one)."""
        return self.client.runs(sweep=self, limit=None)

    def cancel(self) -> str:
        """Cancel the trials still waiting or training; returns ``cancelled`` (Conflict if the
        sweep has ended). A training trial stops between batches, as a cancelled run does."""
        # The answer is the summary: trials and best are fetched again when next asked for.
        self.data = self.client._json("POST", f"/v1/sweeps/{self.id}/cancel")
        return self.status

    def follow(self, *, interval: float = SWEEP_POLL_SECONDS) -> Iterator[dict[str, Any]]:
        """Leaderboard snapshots (the sweep's JSON) as they change, ending with the final one.
        The server has no event stream for sweeps, so this polls ``GET /v1/sweeps/{id}``
        every ``interval`` seconds; ``Run.follow`` on a trial gives its epochs as pushed."""
        last: dict[str, Any] | None = None
        while True:
            self.refresh()
            if self.data != last:
                last = self.data
                yield dict(self.data)
            if self.done:
                return
            time.sleep(interval)

    def wait(self, timeout: float | None = None, *, interval: float = SWEEP_POLL_SECONDS) -> Model:
        """Block until the sweep is final: the best trial's Model if it succeeded, else
        SweepFailed (``best_model_id`` keeps a cancelled sweep's best so far)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            left = interval if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"sweep {self.id} is still {self.status} after {timeout} s")
            time.sleep(min(interval, left))
        best = self.best
        model_id = None if best is None else str(best["model_id"])
        if self.status == "succeeded" and model_id is not None:
            return self.client.model(model_id)
        code = self.status if self.status != "succeeded" else "no_model"
        message = f"the sweep ended {self.status}" + ("" if model_id else " without a model")
        raise SweepFailed(self.id, self.status, code, message, model_id)

    def register(
        self, name: str, *, alias: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait for the sweep, then register its best model as the next version of ``name``
        (with ``alias`` pointing at it); SweepFailed when the sweep did not succeed."""
        return self.wait(timeout).register(name, alias=alias)


def object_id(obj: _Resource | str) -> str:
    return obj.id if isinstance(obj, _Resource) else str(obj)


__all__ = ["Dataset", "Model", "Run", "Sweep", "object_id"]
