"""Datasets: uploaded bytes in, a validated, stored dataset out.

detect (which format) -> csv | json | npz (one parser each) -> columns (typing and checks)
-> parsed (the in-memory form) -> stored (the NPZ blob) -> service (transactions).
"""

from core.datasets.detect import detect_format, parse_upload
from core.datasets.parsed import ParsedDataset
from core.datasets.service import (
    create_dataset,
    dataset_profile,
    delete_dataset,
    get_dataset,
    list_datasets,
    load_dataset,
)
from core.datasets.stored import decode_npz, encode_npz

__all__ = [
    "ParsedDataset",
    "create_dataset",
    "dataset_profile",
    "decode_npz",
    "delete_dataset",
    "detect_format",
    "encode_npz",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "parse_upload",
]
