"""Format detection: decided from the first bytes; the file name and content type only break
ties. ``parse_upload`` sends a file to the parser of its format."""

from __future__ import annotations

import codecs
from pathlib import Path

from core.config import Settings
from core.datasets import csv, json, npz
from core.datasets.parsed import Deadline, ParsedDataset
from core.errors import InvalidInput, UnsupportedFormat
from store.tables import DatasetFormat

_SNIFF_BYTES = 64 * 1024


def detect_format(head: bytes, filename: str | None, content_type: str | None) -> DatasetFormat:
    """Decide the format from the first bytes; the name and content type only break ties."""
    name = (filename or "").lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return DatasetFormat.npz
    if name.endswith(".npz") or ctype in {"application/zip", "application/x-npz"}:
        raise InvalidInput(
            "the file is named or typed as NPZ but is not a zip archive",
            {"field": "file"},
            code="invalid_npz",
        )
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if head.startswith(bom):
            raise UnsupportedFormat(
                f"text in {encoding} is not supported; send UTF-8",
                {"encoding": encoding},
                code="unsupported_encoding",
            )
    if head.startswith(b"\x93NUMPY"):
        raise UnsupportedFormat(
            "a single .npy array is not a dataset; send an .npz with arrays X and y",
            {"detected": "npy"},
        )
    text = head.removeprefix(codecs.BOM_UTF8)
    # NUL bytes mean binary. Text in another 8-bit encoding (latin-1...) goes on to the CSV
    # parser, which names the first line that is not UTF-8.
    if b"\x00" in text:
        raise UnsupportedFormat(
            "unrecognised file format; send CSV (UTF-8, with a header), NPZ or JSON",
            {"accepted": ["csv", "npz", "json"]},
        )
    if text.lstrip()[:1] in (b"{", b"[") or name.endswith(".json") or ctype == "application/json":
        return DatasetFormat.json
    return DatasetFormat.csv


def parse_upload(
    path: Path,
    *,
    filename: str | None,
    content_type: str | None,
    label: str | None,
    settings: Settings,
) -> ParsedDataset:
    """Parse and validate an uploaded file (already on disk, within the upload size cap), within
    ``settings.parse_budget_seconds``."""
    deadline = Deadline(settings.parse_budget_seconds)
    if label is not None:
        label = label.strip() or None
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise InvalidInput("the file is empty", {}, code="empty_file")
    fmt = detect_format(head, filename, content_type)
    if fmt is DatasetFormat.npz:
        return npz.parse_npz(path, label=label, settings=settings, deadline=deadline)
    if fmt is DatasetFormat.json:
        return json.parse_json(path, label=label, settings=settings, deadline=deadline)
    return csv.parse_csv(path, label=label, settings=settings, deadline=deadline)
