"""Uploads parse in time linear in their bytes whatever their shape, within a memory bound, and a
huge bad value is never echoed back. Time is compared only within one test (the machine is
shared): a ratio of throughputs, never an absolute time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from core.config import Settings
from core.datasets import csv as csv_parser
from core.datasets import json as json_parser
from core.datasets import parse_upload
from core.datasets.parsed import Deadline, ParsedDataset
from core.errors import DescentError, InvalidInput, PayloadTooLarge
from core.runs.training import _features
from tests.core.npz_payloads import npz_bytes

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://",
        data_dir=tmp_path,
        max_upload_bytes=256 * MiB,
        max_decompressed_bytes=256 * MiB,
    )


def write_numeric_csv(path: Path, rows: int, features: int, seed: int = 0) -> None:
    """Values like ``0.123456`` and a 0/1 label, written in blocks of rows."""
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(features)]
    block = max(1, 500_000 // features)
    with path.open("wb") as handle:
        handle.write((",".join([*names, "label"]) + "\n").encode())
        for start in range(0, rows, block):
            n = min(block, rows - start)
            frame = pl.DataFrame(rng.random((n, features)), schema=names, orient="row")
            frame = frame.with_columns(pl.Series("label", rng.integers(0, 2, n)))
            frame.write_csv(handle, include_header=False, float_precision=6)


def parse(path: Path, cfg: Settings, filename: str = "d.csv") -> ParsedDataset:
    return parse_upload(path, filename=filename, content_type=None, label=None, settings=cfg)


def best_mb_per_s(paths: list[Path], cfg: Settings, rounds: int = 5) -> list[float]:
    """Each file's best throughput, parsed in turn round after round so that a noisy moment
    of the shared machine hits them alike."""
    best = [float("inf")] * len(paths)
    for _ in range(rounds):
        for i, path in enumerate(paths):
            started = time.perf_counter()
            parse(path, cfg)
            best[i] = min(best[i], time.perf_counter() - started)
    return [path.stat().st_size / MiB / b for path, b in zip(paths, best, strict=True)]


def with_text_column(source: Path, target: Path) -> None:
    """The same table with its first feature made categorical: the all-text path."""
    header, *lines = source.read_bytes().splitlines()
    # Every value is 8 characters (``0.123456``): swap the first for one of three words.
    out = [header] + [b"c" + bytes([97 + i % 3]) + line[8:] for i, line in enumerate(lines)]
    target.write_bytes(b"\n".join(out) + b"\n")


# Measured ratios: numeric ~0.7, text ~0.35 (it pays a few polars expressions per column).
# The per-column loop these guard against ran at 0.002.
@pytest.mark.parametrize(("path_kind", "floor"), [("numeric", 0.35), ("text", 0.15)])
def test_wide_parses_at_the_throughput_of_narrow(
    tmp_path: Path, cfg: Settings, path_kind: str, floor: float
) -> None:
    """5,000 columns x 200 rows against 20 columns of the same bytes, parsed alternately."""
    narrow, wide = tmp_path / "narrow.csv", tmp_path / "wide.csv"
    write_numeric_csv(wide, rows=200, features=4_999)
    rows = wide.stat().st_size // (20 * 9)
    write_numeric_csv(narrow, rows=rows, features=19)
    if path_kind == "text":
        for path in (narrow, wide):
            with_text_column(path, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
    assert 0.8 < wide.stat().st_size / narrow.stat().st_size < 1.25
    parsed = parse(wide, cfg)
    assert parsed.X_numeric.shape == (200, 4_999 if path_kind == "numeric" else 4_998)
    narrow_speed, wide_speed = best_mb_per_s([narrow, wide], cfg)
    assert wide_speed >= floor * narrow_speed, (wide_speed, narrow_speed)


_PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    from core.config import Settings
    from core.datasets import parse_upload

    def hwm():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    path = Path(sys.argv[1])
    settings = Settings(
        database_url="sqlite://", data_dir=Path(tempfile.gettempdir()), max_upload_bytes=1 << 30
    )
    baseline = hwm()
    parsed = parse_upload(path, filename="d.csv", content_type=None, label=None, settings=settings)
    print(json.dumps({"baseline": baseline, "peak": hwm(), "shape": parsed.X_numeric.shape}))
    """
)


def test_peak_memory_of_a_numeric_csv_is_within_three_times_the_file(tmp_path: Path) -> None:
    """In a fresh process, so that its peak RSS is this parse's."""
    path = tmp_path / "big.csv"
    write_numeric_csv(path, rows=200_000, features=24)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    size = path.stat().st_size
    assert 30 * MiB < size < 50 * MiB
    assert figures["shape"] == [200_000, 24]
    growth = figures["peak"] - figures["baseline"]
    assert growth <= 3 * size, f"peak grew {growth / size:.2f}x the file"


def _bad_cell_uploads() -> Iterator[tuple[str, str, bytes, dict[str, object]]]:
    huge = "x" * (10 * MiB)
    rows = "".join(f"{i},{i * 2},{i % 2}\n" for i in range(10))
    yield (
        "csv-numeric-column",
        "d.csv",
        f"a,b,y\n{rows}3,{huge},1\n".encode(),
        {"column": "b", "line": 12},
    )
    words = "".join(f"{'cat' if i % 2 else 'dog'},{i * 2},{i % 2}\n" for i in range(10))
    yield (
        "csv-with-a-categorical-column",
        "d.csv",
        f"a,b,y\n{words}cat,{huge},1\n".encode(),
        {"column": "b", "line": 12},
    )
    yield (
        "json-X",
        "d.json",
        orjson.dumps({"X": [[1, 2], [3, huge]], "y": [0, 1]}),
        {"row": 1, "column": 1},
    )
    yield (
        "json-records",
        "d.json",
        orjson.dumps({"records": [{"a": i, "y": i % 2} for i in range(9)] + [{"a": huge, "y": 1}]}),
        {"column": "a", "record": 9},
    )


@pytest.mark.parametrize(
    ("filename", "content", "where"),
    [case[1:] for case in _bad_cell_uploads()],
    ids=[case[0] for case in _bad_cell_uploads()],
)
def test_a_10_mib_bad_cell_gives_a_small_error_naming_its_place(
    tmp_path: Path, cfg: Settings, filename: str, content: bytes, where: dict[str, object]
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as caught:
        parse(path, cfg, filename)
    error = caught.value
    assert error.status_code == 422 and error.code == "non_numeric_value", error.message[:300]
    assert where.items() <= error.details.items()
    # What the API renders (api/errors.py): the whole body stays small.
    body = orjson.dumps(
        {"error": {"code": error.code, "message": error.message, "details": error.details}}
    )
    assert len(body) < 2048, len(body)
    assert "xxxx" in error.message and "more characters" in error.message


def test_the_label_not_found_error_lists_a_bounded_number_of_columns(
    tmp_path: Path, cfg: Settings
) -> None:
    names = [f"column_with_a_long_name_{i:05d}" for i in range(3_000)]
    path = tmp_path / "d.csv"
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    with pytest.raises(InvalidInput) as caught:
        parse_upload(path, filename="d.csv", content_type=None, label="nope", settings=cfg)
    error = caught.value
    assert error.code == "label_not_found" and error.details["columns"] == 3_000
    assert len(orjson.dumps(error.details)) + len(error.message) < 2048


_BUDGET_UPLOADS: list[tuple[str, bytes]] = [
    ("d.csv", b"a,b,y\n1,2,0\n3,4,1\n5,6,0\n"),
    ("d.csv", b"a,b,y\ncat,2,0\ndog,4,1\ncat,6,0\n"),
    ("d.json", b'{"X": [[1, 2], [3, 4], [5, 6]], "y": [0, 1, 0]}'),
    ("d.json", b'{"records": [{"a": 1, "y": 0}, {"a": 2, "y": 1}]}'),
    ("d.npz", npz_bytes(X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]))),
]


@pytest.mark.parametrize(("filename", "content"), _BUDGET_UPLOADS, ids=lambda v: str(v)[:12])
def test_past_the_parse_budget_the_upload_is_refused_naming_it(
    tmp_path: Path, cfg: Settings, filename: str, content: bytes
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    parse(path, cfg, filename)  # fine within the default budget
    tiny = cfg.model_copy(update={"parse_budget_seconds": 1e-9})
    with pytest.raises(PayloadTooLarge) as caught:
        parse(path, tiny, filename)
    error = caught.value
    assert error.status_code == 413 and error.code == "parse_budget_exceeded"
    assert "parse_budget_seconds" in error.message and "1e-09 s" in error.message
    assert error.details == {"setting": "parse_budget_seconds", "limit_seconds": 1e-9}


def _ticking_clock(step: float) -> tuple[Callable[[], float], list[float]]:
    """A clock that moves ``step`` seconds each time it is read, and the readings."""
    readings: list[float] = []

    def clock() -> float:
        readings.append(len(readings) * step)
        return readings[-1]

    return clock, readings


def test_the_budget_is_checked_inside_the_json_records_loop(tmp_path: Path, cfg: Settings) -> None:
    records = [{"a": i, "b": float(i), "y": i % 3} for i in range(100_000)]
    path = tmp_path / "r.json"
    path.write_bytes(orjson.dumps({"records": records}))
    clock, readings = _ticking_clock(1.0)
    deadline = Deadline(5.0, clock=clock)
    with pytest.raises(DescentError) as caught:
        json_parser.parse_json(path, label=None, settings=cfg, deadline=deadline)
    assert caught.value.code == "parse_budget_exceeded"
    # Readings: the start (0 s), after the JSON is read (1 s), then once every 4,096 records
    # (2..6 s): past 5 s at record 16,384 of 100,000, well inside the loop.
    assert readings[-1] == 6.0


def test_csv_blocks_split_anywhere_give_the_same_dataset(
    tmp_path: Path, cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The numeric path reads blocks of whole lines: any block size gives what the text path
    gives (CRLF, no final newline, trailing blank lines, the label in the middle)."""
    rng = np.random.default_rng(5)
    lines = [f"{a:.6f},{b % 3},{c:.3e}" for a, b, c in rng.random((300, 3)) * [1, 9, 1e6]]
    path = tmp_path / "d.csv"
    path.write_bytes(("x,y,z\r\n" + "\r\n".join(lines) + "\r\n\r\n\n").encode())

    def parse_y() -> ParsedDataset:
        return parse_upload(path, filename="d.csv", content_type=None, label="y", settings=cfg)

    reference = None
    text_reads: list[int] = []
    read_strings = csv_parser._read_strings

    def counting(*args: object, **kwargs: object) -> pl.DataFrame:
        text_reads.append(1)
        return read_strings(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(csv_parser, "_read_strings", counting)
    for block in (7, 64, 1000, 8 * MiB):
        monkeypatch.setattr(csv_parser, "_block_bytes", lambda _columns, size=block: size)
        parsed = parse_y()
        if reference is None:
            reference = parsed
        assert np.array_equal(parsed.X_numeric, reference.X_numeric)
        assert np.array_equal(parsed.y, reference.y)
    assert reference is not None and reference.X_numeric.shape == (300, 2)
    assert text_reads == [1], "a line longer than the block (7 bytes) falls back, no other size"
    monkeypatch.setattr(csv_parser, "_read_numeric", lambda *a, **k: None)
    text = parse_y()
    assert np.array_equal(text.X_numeric, reference.X_numeric)
    assert np.array_equal(text.y, reference.y) and text.classes == reference.classes


def test_short_numbers_are_kept_as_float32_exactly_and_widen_when_one_needs_float64(
    tmp_path: Path, cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags and small whole numbers fit float32 exactly: the matrix is half the size of
    float64. A value float32 cannot hold (0.1), even in a later block, widens the matrix with
    every earlier value unchanged; training always sees float64."""
    monkeypatch.setattr(
        csv_parser, "_block_bytes", lambda _columns: 64
    )  # many blocks: the widening comes late
    rows = [f"{i % 2},{i % 7},{i % 3}" for i in range(100)]
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    compact = parse(path, cfg)
    assert compact.X_numeric.dtype == np.float32
    assert compact.X_numeric.tolist() == [[i % 2, i % 7] for i in range(100)]
    assert _features(compact).dtype == np.float64
    assert compact.y.tolist() == [i % 3 for i in range(100)] and compact.classes == [0, 1, 2]

    path.write_text("a,b,y\n" + "\n".join([*rows, "0.1,16777217,2"]) + "\n")
    wide = parse(path, cfg)
    assert wide.X_numeric.dtype == np.float64
    assert wide.X_numeric[:100].tolist() == compact.X_numeric.tolist()
    assert wide.X_numeric[100].tolist() == [0.1, 16777217.0]  # neither is a float32


def test_a_numeric_label_then_a_word_is_named_by_the_text_path(
    tmp_path: Path, cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label is read as numbers block by block; a stray word in a later block hands the
    file to the text path, which names it, as it does when the word comes first."""
    monkeypatch.setattr(csv_parser, "_block_bytes", lambda _columns: 64)
    rows = [f"{i},{i % 2}" for i in range(60)]
    path = tmp_path / "d.csv"
    path.write_text("a,y\n" + "\n".join([*rows, "1,oops"]) + "\n")
    with pytest.raises(InvalidInput) as caught:
        parse(path, cfg)
    assert caught.value.details["column"] == "y" and caught.value.details["line"] == 62
