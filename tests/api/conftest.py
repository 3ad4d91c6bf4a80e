"""HTTP helpers: a TestClient on a migrated database, and a raw ASGI driver that counts how many
request-body bytes the app actually pulled (TestClient buffers the whole body first)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its TestClient; httpx is what the project pins.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from core.config import Settings
from store.session import Database

BOUNDARY = "descent-test-boundary"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    # With its lifespan, as a server runs it: on PostgreSQL the reads then run on the event
    # loop (store.async_reads). The app leaves the session-scoped Database undisposed.
    with TestClient(create_app(settings, database=db)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload_dir(settings: Settings) -> list[Path]:
    directory = settings.data_dir / "uploads"
    return sorted(directory.iterdir()) if directory.exists() else []


def multipart_body(
    file_chunks: Iterable[bytes], filename: str = "d.csv", fields: dict[str, str] | None = None
) -> Iterator[bytes]:
    for name, value in (fields or {}).items():
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    yield from file_chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def drive(
    app: Any,
    path: str,
    chunks: Iterable[bytes],
    *,
    key: str | None,
    content_length: int | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any], dict[str, str], int]:
    """POST ``chunks`` through the ASGI interface, one ``receive`` each; returns (status, json
    body, headers, request bytes the app pulled). TestClient would buffer the whole body first,
    so it could not show how far the app read."""
    headers = [(b"content-type", content_type.encode())]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    source = iter(chunks)
    consumed = 0
    answer: dict[str, Any] = {"body": bytearray()}

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    anyio.run(app, scope, receive, send)
    body = orjson.loads(bytes(answer["body"])) if answer["body"] else {}
    return answer["status"], body, answer["headers"], consumed


def drive_upload(
    app: Any,
    body: Iterable[bytes],
    *,
    key: str | None,
    content_length: int | None = None,
    path: str = "/v1/datasets",
) -> tuple[int, dict[str, Any], dict[str, str], int]:
    """A multipart upload through :func:`drive`."""
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return drive(app, path, body, key=key, content_length=content_length, content_type=content_type)
