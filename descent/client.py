"""The Python client: drive and watch a Descent server without writing HTTP.

    from descent import Client
    client = Client("http://127.0.0.1:8000", api_key=KEY)  # or DESCENT_URL / DESCENT_API_KEY
    ds = client.upload("digits.csv", label="digit")
    run = client.train(ds, {"layers": [{"units": 128}], "epochs": 30})
    for epoch in run.follow():
        print(epoch["epoch"], epoch["val_loss"])
    model = run.wait()  # a Model, or raises RunFailed(code, message)
    model.predict_proba(X)
    more = client.train(ds, {"epochs": 10}, init_from=model)  # 10 more epochs, from its weights
    sweep = client.sweep(ds, {"epochs": 20}, {"method": "grid", "space": {
        "optimizer.learning_rate": [0.01, 0.001]}}, metric="val_accuracy")
    best = sweep.wait()  # the best trial's Model, or raises SweepFailed

Needs httpx and numpy (plus tenacity and httpx-sse); pandas or polars DataFrames are accepted
when installed. 429 and 503 answers are retried with backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from descent.encoding import FileFactory, upload_files
from descent.errors import Conflict, DescentError, RateLimited, Unavailable, error_from_response
from descent.handles import Dataset, Model, Run, Sweep, object_id

DEFAULT_URL = "http://127.0.0.1:8000"
_ANSWER_LOST = "answer_lost"
T = TypeVar("T")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RateLimited | Unavailable) and exc.code != _ANSWER_LOST


def _retry_wait(fallback: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """The server's Retry-After when it gave one, else exponential backoff with jitter."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, DescentError) and exc.retry_after is not None:
            return min(float(exc.retry_after), 60.0)
        return fallback(state)

    return wait


class Client:
    """A connection to one Descent server, with one API key."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        max_retry_seconds: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``sleep`` waits between retries and reconnects (a test's may only record)."""
        self.url = (url or os.environ.get("DESCENT_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or os.environ.get("DESCENT_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._retries = retries
        self._max_retry_seconds = max_retry_seconds
        self.sleep = sleep

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        files: FileFactory | None = None,
        data: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One API call; 429, 503 and connection failures are retried (files are reopened for
        each attempt), any other error answer raises its ``descent.errors`` type.

        ``idempotent=False``: a failure after the request may have reached the server (a lost
        answer) is raised, not retried, since a retry could act twice."""
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in self.retrying():
            with attempt, ExitStack() as stack:
                try:
                    response = self._http.request(
                        method,
                        path,
                        json=json_body,
                        params=clean_params,
                        headers=headers,
                        files=files(stack) if files is not None else None,
                        data=data,
                    )
                except httpx.TransportError as exc:
                    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                    if idempotent or unsent:
                        raise Unavailable(
                            f"cannot reach {self.url}: {exc}", code="connection_failed"
                        ) from exc
                    raise Unavailable(
                        f"no answer from {self.url} ({exc}); the request may have been done",
                        code=_ANSWER_LOST,
                    ) from exc
                if response.is_error:
                    raise error_from_response(response)
                return response
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def retrying(self) -> Retrying:
        """The retry policy of every call (and of opening a run's event stream): 429 and 503
        answers and unreachable servers are retried, waiting the answer's Retry-After (at
        most 60 s) or else exponential backoff with jitter, up to ``retries`` times and
        ``max_retry_seconds`` in all."""
        return Retrying(
            retry=retry_if_exception(_retryable),
            # Exponential from 0.5 s up to 20 s, plus up to 1 s of jitter (every tenacity 8-9).
            wait=_retry_wait(wait_exponential(multiplier=0.5, max=20) + wait_random(0, 1)),
            stop=stop_after_attempt(self._retries + 1) | stop_after_delay(self._max_retry_seconds),
            sleep=self.sleep,
            reraise=True,
        )

    def retried(self, call: Callable[[], T]) -> T:
        """``call()`` under the retry policy (``retrying``)."""
        for attempt in self.retrying():
            with attempt:
                return call()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def _pages(self, path: str, params: dict[str, Any], limit: int | None) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = self._json("GET", path, params={**params, "limit": 500, "cursor": cursor})
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if cursor is None or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items

    # -- datasets ---------------------------------------------------------------------------

    def upload(
        self,
        data: str | os.PathLike[str] | Any,
        y: Any = None,
        *,
        label: str | None = None,
        name: str | None = None,
        image_size: int | None = None,
        color_mode: str | None = None,
    ) -> Dataset:
        """Upload a file (streamed from disk), a pandas/polars DataFrame, or arrays ``X`` and
        ``y``. ``label`` names the target column of a table (default: its last column). A zip
        of class folders of pictures becomes an image dataset: each picture ``image_size``
        pixels square (default 32), ``color_mode`` "grayscale" (default) or "rgb"."""
        given = {"label": label, "name": name, "image_size": image_size, "color_mode": color_mode}
        fields = {k: str(v) for k, v in given.items() if v is not None}
        files = upload_files(data, y)
        return Dataset(self, self._json("POST", "/v1/datasets", files=files, data=fields))

    def dataset(self, dataset_id: str) -> Dataset:
        return Dataset(self, self._json("GET", f"/v1/datasets/{dataset_id}"))

    def datasets(self, *, limit: int | None = 50) -> list[Dataset]:
        return [Dataset(self, d) for d in self._pages("/v1/datasets", {}, limit)]

    def delete_dataset(self, dataset: Dataset | str) -> None:
        self.request("DELETE", f"/v1/datasets/{object_id(dataset)}")

    # -- runs -------------------------------------------------------------------------------

    def train(
        self,
        dataset: Dataset | str,
        spec: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        idempotency_key: str | None = None,
        init_from: Model | str | None = None,
    ) -> Run:
        """Start a run. Safe to retry: every call carries an Idempotency-Key, so a retried
        request after a lost answer returns the same run instead of a second one.

        ``init_from`` (a Model or its id) warm-starts the run from that model's weights. Spec
        fields left out are the model's; those given must keep its hidden layers, and the
        dataset its features (else InvalidInput naming the field). ``spec["epochs"]`` are
        this run's, numbered on from the model's."""
        body = {"dataset_id": object_id(dataset), "spec": dict(spec or {}), "name": name}
        if init_from is not None:
            body["init_from_model_id"] = object_id(init_from)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return Run(self, self._json("POST", "/v1/runs", json_body=body, headers=headers))

    def validate(
        self,
        dataset: Dataset | str,
        spec: Mapping[str, Any] | None = None,
        *,
        init_from: Model | str | None = None,
    ) -> Any:
        """The resolved spec, parameter count, FLOPs and warnings; nothing is queued."""
        body = {"dataset_id": object_id(dataset), "spec": dict(spec or {})}
        if init_from is not None:
            body["init_from_model_id"] = object_id(init_from)
        return self._json("POST", "/v1/runs/validate", json_body=body)

    def run(self, run_id: str) -> Run:
        return Run(self, self._json("GET", f"/v1/runs/{run_id}"))

    def runs(
        self,
        *,
        status: str | None = None,
        dataset: Dataset | str | None = None,
        sweep: Sweep | str | None = None,
        limit: int | None = 50,
    ) -> list[Run]:
        params = {
            "status": status,
            "dataset_id": object_id(dataset) if dataset else None,
            "sweep_id": object_id(sweep) if sweep else None,
        }
        return [Run(self, r) for r in self._pages("/v1/runs", params, limit)]

    # -- sweeps -----------------------------------------------------------------------------

    def sweep(
        self,
        dataset: Dataset | str,
        spec: Mapping[str, Any] | None,
        search: Mapping[str, Any],
        *,
        metric: str,
        mode: str | None = None,
        max_parallel: int | None = None,
        early_termination: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> Sweep:
        """Start a hyperparameter sweep: one run per point of ``search`` (``{"method": "grid"
        | "random", "space": {dotted.field: [values] | {"log_uniform": [a, b]} ...},
        "n_trials": ..., "seed": ...}``) applied to the base ``spec``, ranked by ``metric``
        (``mode`` "min" or "max"; default max for accuracy-like metrics).

        ``early_termination`` is ASHA: ``{"grace_epochs": g, "reduction_factor": r}``. Every
        trial's spec is checked first: InvalidInput names the ``trial``, its ``params`` and
        the ``field``, and nothing is queued. A lost answer is raised (Unavailable, code
        ``answer_lost``), not retried: the server takes no Idempotency-Key for sweeps, and a
        retry could start a second one (``client.sweeps()`` shows whether it started)."""
        body: dict[str, Any] = {
            "dataset_id": object_id(dataset),
            "spec": dict(spec or {}),
            "search": dict(search),
            "metric": metric,
            "mode": mode,
            "max_parallel": max_parallel,
            "name": name,
        }
        if early_termination is not None:
            body["early_termination"] = {"type": "asha", **early_termination}
        return Sweep(self, self._json("POST", "/v1/sweeps", json_body=body, idempotent=False))

    def register(
        self, model: Model | str, name: str, *, alias: str | None = None
    ) -> dict[str, Any]:
        """Add ``model`` to the registry as the next version of ``name`` (the name is created
        when new) and, with ``alias``, point the alias at that version. Returns ``{name,
        version, model_id}`` (and ``alias``)."""
        try:
            self._json("POST", "/v1/registry", json_body={"name": name})
        except Conflict as exc:
            if exc.code != "name_taken":
                raise
        # Not retried once sent: a repeat would add a second version.
        version: dict[str, Any] = self._json(
            "POST", f"/v1/registry/{name}/versions",
            json_body={"model_id": object_id(model)}, idempotent=False,
        )  # fmt: skip
        if alias is not None:
            body = {"version": version["version"]}
            self._json("PUT", f"/v1/registry/{name}/aliases/{alias}", json_body=body)
            version["alias"] = alias
        return version

    def get_sweep(self, sweep_id: str) -> Sweep:
        return Sweep(self, self._json("GET", f"/v1/sweeps/{sweep_id}"))

    def sweeps(self, *, limit: int | None = 50) -> list[Sweep]:
        """Sweeps, newest first (summaries: ``trials`` and ``best`` fetch the leaderboard)."""
        return [Sweep(self, s) for s in self._pages("/v1/sweeps", {}, limit)]

    # -- models -----------------------------------------------------------------------------

    def model(self, model_id: str) -> Model:
        return Model(self, self._json("GET", f"/v1/models/{model_id}"))


__all__ = ["Client", "Dataset", "Model", "Run", "Sweep"]
