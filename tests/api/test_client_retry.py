"""The client's retries against a scripted server (httpx.MockTransport): 429 and 503 are
retried waiting the answer's Retry-After, on plain calls and when (re)opening a run's event
stream, which resumes with Last-Event-ID. The sleep is injected: it records, never waits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from descent import Client
from descent.errors import InvalidInput, RateLimited
from descent.handles import Run

RUN_ID = "5d1e7c3b-2a9f-4c8e-b6d4-1f0a3e2c7b9d"
EVENTS = f"/v1/runs/{RUN_ID}/events"


def _error(status: int, code: str, retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": {"code": code, "message": code, "details": {}}}
    return httpx.Response(status, json=body, headers=headers)


def _epoch(n: int) -> str:
    entry = {"epoch": n, "train_loss": 1.0 / n, "val_loss": None, "learning_rate": 0.01}
    return f"event: epoch\nid: {n}\ndata: {json.dumps(entry)}\n\n"


def _status(status: str) -> str:
    data = {"status": status, "error": None, "model_id": None}
    return f"event: status\ndata: {json.dumps(data)}\n\n"


def _stream(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


class Script:
    """Answers in order, recording each request's path and Last-Event-ID."""

    def __init__(self, answers: list[Callable[[], httpx.Response]]) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, request.headers.get("last-event-id")))
        assert self.answers, f"unexpected request {request.method} {request.url}"
        return self.answers.pop(0)()


def _client(script: Script, slept: list[float], **kwargs: Any) -> Client:
    return Client(
        "http://descent.test",
        api_key="dsk_test",
        transport=httpx.MockTransport(script),
        sleep=slept.append,
        **kwargs,
    )


def test_a_call_answered_429_waits_retry_after_then_succeeds() -> None:
    script = Script(
        [
            lambda: _error(429, "rate_limited", "7"),
            lambda: _error(503, "dependency_down", "2"),
            lambda: httpx.Response(200, json={"id": RUN_ID, "status": "queued"}),
        ]
    )
    slept: list[float] = []
    with _client(script, slept) as client:
        run = client.run(RUN_ID)
    assert run.status == "queued"
    assert slept == [7.0, 2.0]  # the server's Retry-After, not the backoff
    assert len(script.seen) == 3


def test_retries_end_with_the_typed_error() -> None:
    script = Script([lambda: _error(429, "rate_limited", "1")] * 3)
    slept: list[float] = []
    with _client(script, slept, retries=2) as client, pytest.raises(RateLimited) as raised:
        client.run(RUN_ID)
    assert raised.value.retry_after == 1.0 and raised.value.code == "rate_limited"
    assert slept == [1.0, 1.0]


def test_stream_open_and_reconnect_retry_429_and_503_resuming_from_the_last_epoch() -> None:
    script = Script(
        [
            # Opening: refused twice, then epochs 1 and 2 and the stream drops (a restart).
            lambda: _error(429, "rate_limited", "3"),
            lambda: _error(503, "dependency_down", "5"),
            lambda: _stream(_status("running") + _epoch(1) + _epoch(2)),
            # Reconnecting: refused once more, then the rest from epoch 3 and the final status.
            lambda: _error(429, "rate_limited", "4"),
            lambda: _stream(_epoch(3) + _status("succeeded")),
        ]
    )
    slept: list[float] = []
    with _client(script, slept) as client:
        run = Run(client, {"id": RUN_ID, "status": "queued"})
        epochs = [entry["epoch"] for entry in run.follow()]
    assert epochs == [1, 2, 3]  # each once, in order
    assert run.status == "succeeded"
    assert slept == [3.0, 5.0, 4.0]
    assert script.seen == [
        (EVENTS, "0"),
        (EVENTS, "0"),
        (EVENTS, "0"),
        (EVENTS, "2"),  # the retry of a reconnect keeps its Last-Event-ID
        (EVENTS, "2"),
    ]


def test_a_stream_refused_past_the_retries_raises_rate_limited() -> None:
    script = Script([lambda: _error(429, "rate_limited", "1")] * 2)
    slept: list[float] = []
    with _client(script, slept, retries=1) as client:
        run = Run(client, {"id": RUN_ID, "status": "queued"})
        with pytest.raises(RateLimited):
            list(run.follow())
    assert slept == [1.0]


@pytest.mark.parametrize(
    ("details", "column", "line"),
    [
        ({"column": "petal_width", "line": 12, "value": "n/a"}, "petal_width", 12),
        ({"row": 3, "column": 2, "value": "x"}, 2, None),  # arrays: the column's index
        ({"field": "spec.epochs"}, None, None),
    ],
)
def test_invalid_input_carries_the_column_and_line(
    details: dict[str, Any], column: str | int | None, line: int | None
) -> None:
    script = Script([lambda: httpx.Response(422, json={"error": {
        "code": "invalid_value", "message": "not a number", "details": details}})])  # fmt: skip
    with _client(script, []) as client, pytest.raises(InvalidInput) as raised:
        client.upload(__file__)
    assert raised.value.column == column and raised.value.line == line
    assert raised.value.details == details and raised.value.status == 422
