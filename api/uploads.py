"""Streaming multipart upload to a temporary file, with the size cap enforced while streaming.

Starlette's form parser spools file parts to disk without any limit, so the body is parsed here
instead (python-multipart's push parser): the cap holds with or without a Content-Length
header, and a lying Content-Length changes nothing because the bytes themselves are counted.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

import anyio.to_thread
from fastapi import Depends, Request
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from api.deps import PrincipalDep, SettingsDep
from core.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedFormat

# Room for the multipart framing and the small text fields around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 4 * 1024
MAX_PARTS = 8
TEXT_FIELDS = frozenset({"name", "label", "image_size", "color_mode"})
FILE_FIELD = "file"


@dataclass(frozen=True)
class ReceivedUpload:
    path: Path
    size: int
    filename: str | None
    content_type: str | None
    fields: dict[str, str]


def upload_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload exceeds the limit of {limit} bytes",
        {"limit_bytes": limit},
        code="upload_too_large",
    )


class _MultipartReceiver:
    """Callbacks for python-multipart; file bytes go straight to ``sink``."""

    def __init__(self, boundary: bytes, sink: IO[bytes], max_file_bytes: int) -> None:
        self.sink = sink
        self.max_file_bytes = max_file_bytes
        self.file_bytes = 0
        self.parts = 0
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_content_type: str | None = None
        self.saw_file = False
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._is_file = False
        self._buffer = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(f"too many form parts (at most {MAX_PARTS})", code="too_many_parts")
        self._headers = {}
        self._buffer = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD:
            if self.saw_file:
                raise InvalidInput("send exactly one file", {"field": FILE_FIELD})
            self.saw_file = True
            self._is_file = True
            raw_filename = options.get(b"filename")
            self.filename = raw_filename.decode("utf-8", "replace") if raw_filename else None
            ctype = self._headers.get(b"content-type")
            self.file_content_type = ctype.decode("latin-1") if ctype else None
        elif name in TEXT_FIELDS:
            if name in self.fields:
                raise InvalidInput(f"field {name!r} given twice", {"field": name})
            self._is_file = False
        else:
            raise InvalidInput(
                f"unexpected form field {name!r}; expected {sorted({FILE_FIELD, *TEXT_FIELDS})}",
                {"field": name},
                code="unexpected_field",
            )
        self._name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                raise upload_too_large(self.max_file_bytes)
            self.sink.write(data[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise InvalidInput(
                    f"field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes",
                    {"field": self._name, "limit_bytes": MAX_FIELD_BYTES},
                )

    def _part_end(self) -> None:
        if not self._is_file:
            try:
                text = self._buffer.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(
                    f"field {self._name!r} is not UTF-8", {"field": self._name}
                ) from exc
            if "\x00" in text:  # PostgreSQL text cannot hold it
                raise InvalidInput(
                    f"field {self._name!r} contains a NUL character", {"field": self._name}
                )
            self.fields[self._name] = text

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except MultipartParseError as exc:
            raise BadRequest(f"malformed multipart body: {exc}", code="malformed_body") from exc

    def finish(self) -> None:
        try:
            self.parser.finalize()
        except MultipartParseError as exc:
            raise BadRequest(f"malformed multipart body: {exc}", code="malformed_body") from exc
        self.sink.flush()


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data body; 415 for any other media type (checked by the
    edge middleware before the body's length, and again here)."""
    mimetype, params = parse_options_header(content_type)
    if mimetype != b"multipart/form-data":
        raise UnsupportedFormat(
            "send the dataset as multipart/form-data with a 'file' field",
            {"content_type": mimetype.decode("latin-1")},
            code="unsupported_media_type",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart body without a boundary", code="malformed_body")
    return boundary


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        # Refused before reading a byte.
        raise upload_too_large(limit - MULTIPART_OVERHEAD_BYTES)


def _open_temp(directory: Path) -> tuple[Path, IO[bytes]]:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
    return Path(name), os.fdopen(fd, "wb")


def _discard(path: Path, handle: IO[bytes]) -> None:
    handle.close()
    path.unlink(missing_ok=True)


async def receive_dataset_upload(
    request: Request, _principal: PrincipalDep, settings: SettingsDep
) -> AsyncIterator[ReceivedUpload]:
    """Authenticate first (the principal dependency), then stream the body to a temp file that
    is removed when the request ends, whatever happens."""
    boundary = multipart_boundary(request.headers.get("content-type"))
    body_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    _check_declared_length(request, body_limit)
    path, handle = await anyio.to_thread.run_sync(_open_temp, settings.data_dir / "uploads")
    try:
        receiver = _MultipartReceiver(boundary, handle, settings.max_upload_bytes)
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > body_limit:
                    raise upload_too_large(settings.max_upload_bytes)
                # Parsing and the disk write happen off the event loop.
                await anyio.to_thread.run_sync(receiver.feed, chunk)
        except ClientDisconnect as exc:
            raise BadRequest("the client disconnected during the upload") from exc
        await anyio.to_thread.run_sync(receiver.finish)
        if not receiver.saw_file:
            raise InvalidInput(
                "the form has no 'file' field", {"field": FILE_FIELD}, code="missing_field"
            )
        handle.close()
        yield ReceivedUpload(
            path=path,
            size=receiver.file_bytes,
            filename=receiver.filename,
            content_type=receiver.file_content_type,
            fields=receiver.fields,
        )
    finally:
        await anyio.to_thread.run_sync(_discard, path, handle)


UploadDep = Annotated[ReceivedUpload, Depends(receive_dataset_upload)]
