"""Upload parsing and validation (no database): formats, type and task inference, every bad
input named precisely, and hostile NPZ files rejected before they cost memory or run code."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from core.config import Settings
from core.datasets import ParsedDataset, decode_npz, detect_format, encode_npz, parse_upload
from core.errors import DescentError, InvalidInput, PayloadTooLarge, UnsupportedFormat
from models.vocabulary import Task
from store.tables import DatasetFormat
from tests.core.dataset_cases import BAD_UPLOADS, BadUpload
from tests.core.npz_payloads import (
    header_bomb,
    lying_member,
    npz_bytes,
    pickle_npz,
    raw_pickle,
    zip_bomb,
)

MiB = 1024 * 1024


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://",
        data_dir=tmp_path,
        max_upload_bytes=2 * MiB,
        max_decompressed_bytes=8 * MiB,
        max_json_upload_bytes=2 * MiB,
    )


def parse(
    tmp_path: Path, cfg: Settings, content: bytes, filename: str = "d.csv", label: str | None = None
) -> ParsedDataset:
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    return parse_upload(path, filename=filename, content_type=None, label=label, settings=cfg)


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=lambda c: c.id)
def test_bad_upload_is_named_precisely(tmp_path: Path, cfg: Settings, case: BadUpload) -> None:
    with pytest.raises(DescentError) as caught:
        parse(tmp_path, cfg, case.content, case.filename, case.label)
    error = caught.value
    assert (error.status_code, error.code) == (case.status, case.code), error.message
    assert case.details.items() <= error.details.items()
    for fragment in case.message_has:
        assert fragment in error.message


def test_csv_types_task_and_classes(tmp_path: Path, cfg: Settings) -> None:
    rows = "".join(
        f"{i},{i * 0.5},{'red' if i % 3 else 'blue'},{'yes' if i % 2 else 'no'}\n"
        for i in range(12)
    )
    parsed = parse(tmp_path, cfg, f"n, x ,color,target\n{rows}".encode())
    assert parsed.feature_names == ["n", "x", "color"]
    assert parsed.feature_types == ["numeric", "numeric", "categorical"]
    assert parsed.label == "target"
    assert parsed.task is Task.classification
    assert parsed.classes == ["no", "yes"]
    assert parsed.X_numeric.shape == (12, 2) and parsed.X_numeric.dtype == np.float64
    assert parsed.X_numeric[3].tolist() == [3.0, 1.5]
    assert parsed.categories == [["blue", "red"]]
    assert parsed.X_categorical[:4, 0].tolist() == [0, 1, 1, 0]
    assert parsed.y[:3].tolist() == ["no", "yes", "no"]
    assert parsed.y_codes()[:3].tolist() == [0, 1, 0]


def test_label_chosen_by_name_and_trailing_blank_lines_ignored(
    tmp_path: Path, cfg: Settings
) -> None:
    parsed = parse(tmp_path, cfg, b"y,a,b\n0.5,1,2\n1.5,3,4\n2.5,5,6\n\n\n", label="y")
    assert parsed.feature_names == ["a", "b"]
    assert parsed.task is Task.regression and parsed.classes is None
    assert parsed.y.tolist() == [0.5, 1.5, 2.5]


@pytest.mark.parametrize(
    ("labels", "task", "classes"),
    [
        ([0, 1, 2] * 10, Task.classification, [0, 1, 2]),
        ([0.5, 1.25, 2.0] * 10, Task.regression, None),
        (list(range(30)), Task.regression, None),  # id-like: every value once
        (list(range(101)) * 3, Task.classification, list(range(101))),  # codes 0..100, repeated
        ([7 * i for i in range(101)] * 3, Task.regression, None),  # 101 values, 3 rows each
        (["b", "a"] * 5, Task.classification, ["a", "b"]),
        ([True, False] * 5, Task.classification, ["false", "true"]),
    ],
    ids=["ints", "floats", "id-like", "many-codes", "many-ints", "strings", "bools"],
)
def test_task_inference(
    tmp_path: Path, cfg: Settings, labels: list[object], task: Task, classes: list[object] | None
) -> None:
    import orjson

    body = orjson.dumps({"X": [[float(i)] for i in range(len(labels))], "y": labels})
    parsed = parse(tmp_path, cfg, body, "d.json")
    assert parsed.task is task
    assert parsed.classes == classes


def test_json_records_and_label_field(tmp_path: Path, cfg: Settings) -> None:
    body = (
        b'{"records": [{"size": 1, "kind": "a", "price": 9.5}, {"size": 2, "kind": "b", '
        b'"price": 3.25}, {"size": 3, "kind": "a", "price": 1.5}], "label": "price"}'
    )
    parsed = parse(tmp_path, cfg, body, "r.json")
    assert parsed.format is DatasetFormat.json
    assert parsed.feature_names == ["size", "kind"]
    assert parsed.feature_types == ["numeric", "categorical"]
    assert parsed.task is Task.regression
    assert parsed.y.tolist() == [9.5, 3.25, 1.5]


def test_npz_with_string_labels_and_feature_names(tmp_path: Path, cfg: Settings) -> None:
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.array(["cat", "dog"] * 5)
    parsed = parse(tmp_path, cfg, npz_bytes(X=X, y=y, feature_names=np.array(["w", "h"])), "d.npz")
    assert parsed.feature_names == ["w", "h"]
    assert parsed.classes == ["cat", "dog"]
    assert np.array_equal(parsed.X_numeric, X.astype(np.float64))


def test_encode_decode_roundtrip_is_exact_and_deterministic(tmp_path: Path, cfg: Settings) -> None:
    rows = "".join(f"{i / 7},{['x', 'y', 'z'][i % 3]},{i % 2}\n" for i in range(20))
    parsed = parse(tmp_path, cfg, f"a,c,y\n{rows}".encode())
    blob = encode_npz(parsed)
    assert blob == encode_npz(parsed)  # same arrays, same bytes, same sha256
    back = decode_npz(blob)
    assert np.array_equal(back.X_numeric, parsed.X_numeric)
    assert np.array_equal(back.X_categorical, parsed.X_categorical)
    assert np.array_equal(back.y, parsed.y)
    for attr in ("feature_names", "feature_types", "categories", "label", "task", "classes"):
        assert getattr(back, attr) == getattr(parsed, attr)
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        assert all(stored[name].dtype != object for name in stored.files)


@hyp_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=2, max_size=2
        ),
        min_size=4,
        max_size=30,
    )
)
def test_csv_floats_roundtrip_exactly(
    tmp_path: Path, cfg: Settings, rows: list[list[float]]
) -> None:
    lines = "".join(f"{a!r},{b!r}\n" for a, b in rows)
    try:
        parsed = parse(tmp_path, cfg, f"a,target\n{lines}".encode())
    except InvalidInput as exc:  # a constant target is rightly refused
        assert exc.code == "single_class"
        return
    assert parsed.X_numeric[:, 0].tolist() == [a for a, _ in rows]


def _zip_head(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(member, b"x")
    return buffer.getvalue()


def test_detect_format() -> None:
    # A zip is NPZ when its first member is an array (or it is named .npz), else image folders.
    assert detect_format(_zip_head("X.npy"), "data.csv", None) is DatasetFormat.npz
    assert detect_format(_zip_head("cat/1.png"), "data.bin", None) is DatasetFormat.images
    assert detect_format(_zip_head("cat/1.png"), "d.npz", None) is DatasetFormat.npz
    assert detect_format(_zip_head("X.npy"), "pets.zip", None) is DatasetFormat.images
    assert detect_format(b"PAR1\x15\x04", "t.bin", None) is DatasetFormat.parquet
    assert detect_format(b'  {"X": []}', None, None) is DatasetFormat.json
    assert detect_format(b"a,b\n1,2\n", "x.npz.csv", "text/csv") is DatasetFormat.csv
    with pytest.raises(UnsupportedFormat):
        detect_format(b"\x93NUMPY\x01\x00", "x.npy", None)


# --- hostile NPZ files ---------------------------------------------------------------------


def _rejected_fast_and_small(
    tmp_path: Path, cfg: Settings, content: bytes | None, path: Path | None = None
) -> DescentError:
    if path is None:
        assert content is not None
        path = tmp_path / "hostile.npz"
        path.write_bytes(content)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DescentError) as caught:
            parse_upload(path, filename="d.npz", content_type=None, label=None, settings=cfg)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0, elapsed
    assert peak < 50 * MiB, peak
    return caught.value


@pytest.mark.parametrize("shape", [(2**40,), (2**31,), (2**20, 2**20)], ids=str)
def test_npz_header_bomb_rejected_before_allocation(
    tmp_path: Path, cfg: Settings, shape: tuple[int, ...]
) -> None:
    content = header_bomb(shape)
    assert len(content) < 1000
    error = _rejected_fast_and_small(tmp_path, cfg, content)
    assert isinstance(error, (PayloadTooLarge, InvalidInput))
    assert error.code in {"dataset_too_large", "invalid_npz"}


def test_npz_zip_bomb_rejected_from_declared_size(tmp_path: Path, cfg: Settings) -> None:
    path = tmp_path / "bomb.npz"
    zip_bomb(path, 200 * MiB)
    assert path.stat().st_size < 1 * MiB  # ~200 KB inflating to 200 MB
    error = _rejected_fast_and_small(tmp_path, cfg, None, path)
    assert isinstance(error, PayloadTooLarge) and error.code == "dataset_too_large"


# 10 rows: the lie shows while reading the header; 50k rows: only while reading the array.
@pytest.mark.parametrize("rows", [10, 50_000])
def test_npz_member_inflating_past_its_declaration_is_cut_off(
    tmp_path: Path, cfg: Settings, rows: int
) -> None:
    error = _rejected_fast_and_small(tmp_path, cfg, lying_member(64 * MiB, rows))
    assert error.status_code == 422 and error.code == "invalid_npz"
    assert "CRC" in error.message


def test_pickle_payloads_never_execute(tmp_path: Path, cfg: Settings) -> None:
    canary = tmp_path / "canary"
    # The payload is live: numpy with allow_pickle=True would create the canary.
    with np.load(io.BytesIO(pickle_npz(canary)), allow_pickle=True) as live:
        live["y"]
    assert canary.exists()
    canary.unlink()

    with pytest.raises(InvalidInput) as caught:
        parse(tmp_path, cfg, pickle_npz(canary), "d.npz")
    assert caught.value.code == "object_array"
    with pytest.raises(InvalidInput) as caught:
        parse(tmp_path, cfg, raw_pickle(canary), "d.npz")
    assert caught.value.code == "invalid_npz"
    with pytest.raises(UnsupportedFormat):
        parse(tmp_path, cfg, raw_pickle(canary), "d.pkl")
    assert not canary.exists()


def test_no_pickle_loading_in_source() -> None:
    root = Path(__file__).resolve().parents[2]
    forbidden = ("allow_pickle=True", "pickle.load", "joblib.load", "torch.load")
    for package in ("api", "core", "store", "worker", "models", "migrations"):
        for path in (root / package).rglob("*.py"):
            source = path.read_text()
            for needle in forbidden:
                assert needle not in source, f"{path}: {needle}"


def test_row_cap(tmp_path: Path, cfg: Settings) -> None:
    small = cfg.model_copy(update={"max_dataset_rows": 5})
    rows = "".join(f"{i},{i % 2}\n" for i in range(6))
    with pytest.raises(PayloadTooLarge) as caught:
        parse(tmp_path, small, f"a,y\n{rows}".encode())
    assert caught.value.code == "too_many_rows"


def test_json_size_cap(tmp_path: Path, cfg: Settings) -> None:
    small = cfg.model_copy(update={"max_json_upload_bytes": 100})
    with pytest.raises(PayloadTooLarge):
        parse(tmp_path, small, b'{"X": [' + b"[1]," * 50 + b'[1]], "y": []}', "d.json")


def test_feature_cap_checked_from_the_header(tmp_path: Path, cfg: Settings) -> None:
    small = cfg.model_copy(update={"max_features": 3})
    with pytest.raises(InvalidInput) as caught:
        parse(tmp_path, small, b"a,b,c,d,y\n1,2,3,4,0\n1,2,3,4,1\n")
    assert caught.value.code == "too_many_features"
