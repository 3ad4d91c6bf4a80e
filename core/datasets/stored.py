"""The stored form of a dataset: a compressed NPZ without object arrays, metadata as JSON."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import orjson

from core import npz
from core.datasets.parsed import ParsedDataset
from models.vocabulary import Task
from store.tables import DatasetFormat

_NPZ_FORMAT_VERSION = 1
# Sanity bound when decoding our own stored blobs (uploads have their own, smaller caps).
_STORED_BLOB_MAX_BYTES = 16 * 1024**3


def encode_npz(parsed: ParsedDataset) -> bytes:
    """The stored form: compressed NPZ, no object arrays, metadata as JSON bytes."""
    meta = {
        "version": _NPZ_FORMAT_VERSION,
        "format": parsed.format.value,
        "feature_names": parsed.feature_names,
        "feature_types": parsed.feature_types,
        "categories": parsed.categories,
        "label": parsed.label,
        "task": parsed.task.value,
        "classes": parsed.classes,
    }
    return npz.encode_arrays(
        {
            "X_numeric": parsed.X_numeric,
            "X_categorical": parsed.X_categorical,
            "y": parsed.y,
            "meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8),
        }
    )


def decode_npz(blob: bytes, *, max_bytes: int = _STORED_BLOB_MAX_BYTES) -> ParsedDataset:
    arrays = npz.load_arrays(blob, ["X_numeric", "X_categorical", "y", "meta"], max_bytes=max_bytes)
    meta = orjson.loads(arrays["meta"].tobytes())
    if meta.get("version") != _NPZ_FORMAT_VERSION:
        raise ValueError(f"unknown stored dataset version {meta.get('version')!r}")
    return ParsedDataset(
        format=DatasetFormat(meta["format"]),
        feature_names=list(meta["feature_names"]),
        feature_types=list(meta["feature_types"]),
        X_numeric=arrays["X_numeric"],
        X_categorical=arrays["X_categorical"],
        categories=[list(c) for c in meta["categories"]],
        y=arrays["y"],
        label=meta["label"],
        task=Task(meta["task"]),
        classes=meta["classes"],
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
