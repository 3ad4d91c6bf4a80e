"""Request bodies over real HTTP: a real uvicorn process (``api.app:serve_app``) on PostgreSQL and
a redis-server of its own. The API process's memory is read from /proc (VmRSS before, VmHWM
after, the peak reset in between), so each test measures what a hostile body costs the server,
not only the status it gets.

Before the edge middleware (figures from the finding): 100 MB to /v1/runs/validate with no key
cost 0.7 GB and 3.3 s before its 401, with a key 7.4 GB and 46 s before a 422; predict buffered
300 MB (0.7 GB) before its 413. Also the hostile query values that were 500s on PostgreSQL.
"""

from __future__ import annotations

import base64
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core import runs as run_service
from core.auth import authenticate
from core.config import Settings
from core.datasets import create_dataset
from tests.api.runs_fixtures import SPEC, blobs_csv
from tests.security.live import LiveApi

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

MiB = 1024 * 1024
JSON_CAP = Settings.model_fields["max_json_body_bytes"].default
PREDICT_CAP = Settings.model_fields["max_predict_body_bytes"].default
CHUNK = 64 * 1024
ZERO_ID = "00000000-0000-0000-0000-000000000000"
# What one request may cost besides its body: the interpreter's own allocations for a request,
# uvicorn's 64 KiB read buffer, allocator slack.
SLACK = 4 * MiB


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with LiveApi(tmp_path_factory.mktemp("live")) as api:
        # Warm up what the first requests build lazily (pool, limiter, pydantic, error paths),
        # so the measured requests see only their own cost.
        with httpx.Client(base_url=api.base, headers=api.headers, timeout=30) as http:
            for _ in range(3):
                http.post("/v1/runs/validate", json={"dataset_id": ZERO_ID, "spec": SPEC})
                http.post(f"/v1/models/{ZERO_ID}/predict", json={"inputs": [[1.0]]})
                http.post("/v1/runs/validate", headers={"Authorization": "Bearer nope"})
            raw_post(api.port, "/v1/runs/validate", key=api.key, total=2 * JSON_CAP)
        yield api


@dataclass(frozen=True)
class Answer:
    status: int
    head: str
    body: bytes
    sent: int  # body bytes the client had sent when the answer came
    seconds: float  # from the end of the request head to the answer


def raw_post(
    port: int,
    path: str,
    *,
    key: str | None,
    total: int,
    chunked: bool = False,
    send_body: bool = True,
    timeout: float = 120,
) -> Answer:
    """POST ``total`` bytes of JSON-ish body, stopping as soon as the server answers (an HTTP
    client library would send the whole body before reading anything)."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}{framing}\r\n\r\n"
    )
    piece = b'{"inputs": "' + b"x" * (CHUNK - 12)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(head.encode())
        start = time.monotonic()
        sent = 0
        try:
            while send_body and sent < total and not select.select([sock], [], [], 0)[0]:
                data = piece[: total - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if send_body and chunked and sent >= total:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the answer is in the receive buffer
        return _read_answer(sock, sent, start)
    finally:
        sock.close()


def _read_answer(sock: socket.socket, sent: int, start: float) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    seconds = time.monotonic() - start
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    length = next(
        (
            int(line.split(":")[1])
            for line in text.split("\r\n")
            if line.lower().startswith("content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(text.split()[1]), text, body, sent, seconds)


def _error(answer: Answer) -> dict[str, Any]:
    import orjson

    error: dict[str, Any] = orjson.loads(answer.body)["error"]
    return error


def _report(what: str, answer: Answer, growth: int) -> None:
    print(
        f"\n{what}: {answer.status} after {answer.seconds:.3f} s, {answer.sent / MiB:.1f} MiB "
        f"sent, API peak memory +{growth / MiB:.1f} MiB"
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_no_key_is_401_before_the_body(live: LiveApi, chunked: bool) -> None:
    total = 100 * 1000 * 1000
    rss = live.start_measuring()
    answer = raw_post(live.port, "/v1/runs/validate", key=None, total=total, chunked=chunked)
    growth = live.growth(rss)
    _report("no key, 100 MB", answer, growth)
    assert answer.status == 401 and _error(answer)["code"] == "unauthorized"
    assert answer.sent < total // 4, "the server waited for the body"
    assert answer.seconds < 2.0
    assert growth <= SLACK


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/v1/runs/validate", JSON_CAP), (f"/v1/models/{ZERO_ID}/predict", PREDICT_CAP)],
)
def test_declared_length_over_the_cap_is_413_unread(live: LiveApi, path: str, cap: int) -> None:
    """Only the head is sent: the answer must not wait for a body."""
    rss = live.start_measuring()
    answer = raw_post(live.port, path, key=live.key, total=300 * MiB, send_body=False, timeout=10)
    growth = live.growth(rss)
    _report(f"declared 300 MiB to {path}", answer, growth)
    assert answer.status == 413 and answer.sent == 0
    error = _error(answer)
    assert error["code"] == "body_too_large" and error["details"] == {"limit_bytes": cap}
    assert "connection: close" in answer.head.lower()
    assert growth <= SLACK


@pytest.mark.parametrize(
    ("path", "cap", "total"),
    [
        ("/v1/runs/validate", JSON_CAP, 100 * 1000 * 1000),
        (f"/v1/models/{ZERO_ID}/predict", PREDICT_CAP, 300 * 1000 * 1000),
    ],
    ids=["json-100MB", "predict-300MB"],
)
def test_chunked_body_is_cut_at_the_cap(live: LiveApi, path: str, cap: int, total: int) -> None:
    rss = live.start_measuring()
    answer = raw_post(live.port, path, key=live.key, total=total, chunked=True)
    growth = live.growth(rss)
    _report(f"chunked {total // 1000**2} MB to {path}", answer, growth)
    assert answer.status == 413, answer.body
    error = _error(answer)
    assert error["code"] == "body_too_large" and error["details"] == {"limit_bytes": cap}
    assert answer.sent < total // 2, "the server read on past the cap"
    assert growth <= 2 * cap + SLACK


# -- hostile query values that were 500s on PostgreSQL ----------------------------------------


@pytest.fixture(scope="module")
def run_id(live: LiveApi) -> str:
    """A queued run (made in process: nothing is sent to a worker)."""
    with live.db.read_session() as session:
        tenant_id = authenticate(session, live.key).tenant_id
    csv = live.tmp / "blobs.csv"
    csv.write_bytes(blobs_csv())
    with live.db.session() as session:
        dataset = create_dataset(
            session, tenant_id=tenant_id, upload_path=csv, filename="blobs.csv", name=None,
            label=None, settings=live.settings,
        )  # fmt: skip
    with live.db.session() as session:
        run = run_service.submit_run(
            session, tenant_id=tenant_id, dataset_id=dataset.id, spec=SPEC, name=None,
            settings=live.settings, enqueue=lambda _run_id: None,
        )  # fmt: skip
    return str(run.id)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_history_epoch_past_int32(live: LiveApi, run_id: str) -> None:
    with httpx.Client(base_url=live.base, headers=live.headers, timeout=30) as http:
        url = f"/v1/runs/{run_id}/history"
        too_big = http.get(url, params={"since_epoch": 2**31})
        assert too_big.status_code == 422, too_big.text
        assert too_big.json()["error"]["details"]["field"] == "since_epoch"
        largest = http.get(url, params={"since_epoch": 2**31 - 1})
        assert largest.status_code == 200 and largest.json()["epochs"] == []


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/datasets"])
@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-23:59"])
def test_cursor_at_the_edge_of_time(live: LiveApi, run_id: str, path: str, stamp: str) -> None:
    cursor = _b64(f"{stamp}|{ZERO_ID}")
    response = httpx.get(f"{live.base}{path}", params={"cursor": cursor}, headers=live.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_cursor"
