"""Format detection: decided from the first bytes; the file name and content type only break
ties. ``parse_upload`` sends a file to the parser of its format."""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.config import Settings
from core.datasets import csv, images, json, npz, parquet
from core.datasets.images import ImageShape
from core.datasets.parsed import Deadline, ParsedDataset
from core.errors import InvalidInput, PayloadTooLarge, UnsupportedFormat
from store.tables import DatasetFormat

_SNIFF_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024


@contextmanager
def gunzipped(path: Path, settings: Settings) -> Iterator[Path]:
    """The decompressed file beside the upload, removed after; refused (413) as soon as it
    passes ``max_decompressed_bytes`` (a gzip bomb costs that much disk, never more)."""
    # Named like an upload's temporary file, so housekeeping removes it if this process dies.
    target = path.with_name(f"{path.stem}-gunzipped{path.suffix or '.part'}")
    written = 0
    try:
        with gzip.open(path, "rb") as source, target.open("wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > settings.max_decompressed_bytes:
                    raise PayloadTooLarge(
                        f"the file decompresses to more than {settings.max_decompressed_bytes} "
                        "bytes",
                        {"limit_bytes": settings.max_decompressed_bytes},
                        code="decompressed_too_large",
                    )
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        target.unlink(missing_ok=True)
        raise InvalidInput(
            f"the gzip stream is corrupt or truncated: {exc}", {}, code="invalid_gzip"
        ) from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if written == 0:
        target.unlink(missing_ok=True)
        raise InvalidInput("the file is empty once decompressed", {}, code="empty_file")
    try:
        yield target
    finally:
        target.unlink(missing_ok=True)


def detect_format(head: bytes, filename: str | None, content_type: str | None) -> DatasetFormat:
    """Decide the format from the first bytes; the name and content type only break ties."""
    name = (filename or "").lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # Both are zip archives: NPZ holds .npy arrays, an image dataset folders of pictures.
        return DatasetFormat.npz if _holds_arrays(head, name) else DatasetFormat.images
    if head.startswith(b"PAR1"):
        return DatasetFormat.parquet
    if name.endswith(".npz") or ctype == "application/x-npz":
        raise InvalidInput(
            "the file is named or typed as NPZ but is not a zip archive",
            {"field": "file"},
            code="invalid_npz",
        )
    if name.endswith(".zip") or ctype in {"application/zip", "application/x-zip-compressed"}:
        # A zip upload is an image archive: its parser gives the "not a zip" answer.
        raise images.not_a_zip()
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
            "unrecognised file format; send CSV (UTF-8, with a header, or gzipped), Parquet, "
            "JSON, NPZ, or a zip of image folders",
            {"accepted": ["csv", "csv.gz", "parquet", "json", "npz", "zip of images"]},
        )
    if text.lstrip()[:1] in (b"{", b"[") or name.endswith(".json") or ctype == "application/json":
        return DatasetFormat.json
    return DatasetFormat.csv


def _holds_arrays(head: bytes, name: str) -> bool:
    """An NPZ's first member is an ``.npy`` file (the local header names it); ``.npz`` in the
    file name decides too."""
    if name.endswith(".npz"):
        return True
    if name.endswith(".zip"):
        return False
    name_length = int.from_bytes(head[26:28], "little")
    first = head[30 : 30 + name_length]
    return first.endswith(b".npy") or not head.startswith(b"PK\x03\x04")


def parse_upload(
    path: Path,
    *,
    filename: str | None,
    content_type: str | None,
    label: str | None,
    settings: Settings,
    image_shape: ImageShape | None = None,
) -> ParsedDataset:
    """Parse and validate an uploaded file (already on disk, within the upload size cap), within
    ``settings.parse_budget_seconds``. ``image_shape`` is for image archives (default 32 x 32
    grayscale)."""
    deadline = Deadline(settings.parse_budget_seconds)
    if label is not None:
        label = label.strip() or None
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise InvalidInput("the file is empty", {}, code="empty_file")
    if head.startswith(_GZIP_MAGIC):
        with gunzipped(path, settings) as inner:
            return parse_upload(
                inner, filename=(filename or "").removesuffix(".gz"), content_type=None,
                label=label, settings=settings, image_shape=image_shape,
            )  # fmt: skip
    fmt = detect_format(head, filename, content_type)
    if fmt is DatasetFormat.images:
        shape = image_shape or ImageShape()
        return images.parse_images(path, shape=shape, settings=settings, deadline=deadline)
    if fmt is DatasetFormat.parquet:
        return parquet.parse_parquet(path, label=label, settings=settings, deadline=deadline)
    if fmt is DatasetFormat.npz:
        return npz.parse_npz(path, label=label, settings=settings, deadline=deadline)
    if fmt is DatasetFormat.json:
        return json.parse_json(path, label=label, settings=settings, deadline=deadline)
    return csv.parse_csv(path, label=label, settings=settings, deadline=deadline)
