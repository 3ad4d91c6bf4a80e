"""What an upload costs the API process, over real HTTP (uvicorn on PostgreSQL, a redis-server of
its own), with the peak read from /proc. The finding: a 199 MiB CSV of ``0,1`` values in 5,000
columns held a core for over 600 s and 3.3 GB; short cells made the float64 matrix alone four
times the file, and the profile's temporaries as much again. Now: at most 3x the file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.security.live import LiveApi

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

MiB = 1024 * 1024
FILE_BYTES = 128 * MiB


def write_bits_csv(path: Path, columns: int) -> int:
    """``0``/``1`` cells (two bytes each with the comma) and a 0/1 label: the shortest numbers
    a CSV can hold, so the matrix is largest against the file."""
    rows = FILE_BYTES // (2 * columns)
    cells = np.random.default_rng(0).integers(0, 2, size=(rows, columns), dtype=np.uint8)
    text = np.full((rows, 2 * columns), ord(","), dtype=np.uint8)
    text[:, 0::2] = cells + ord("0")
    text[:, -1] = ord("\n")
    header = ",".join([*(f"f{i}" for i in range(columns - 1)), "label"]) + "\n"
    with path.open("wb") as out:
        out.write(header.encode())
        out.write(text.tobytes())
    return rows


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with LiveApi(tmp_path_factory.mktemp("live")) as api:
        # Warm up what the first upload builds lazily (polars' pools, the profile, the pool).
        warm = tmp_path_factory.mktemp("warm") / "warm.csv"
        warm.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(64)))
        with httpx.Client(base_url=api.base, headers=api.headers, timeout=60) as http:
            for _ in range(2):
                with warm.open("rb") as body:
                    assert http.post("/v1/datasets", files={"file": body}).status_code == 201
        yield api


@pytest.mark.timeout(240)
@pytest.mark.parametrize("columns", [20, 5_000], ids=["narrow", "wide"])
def test_an_upload_of_short_numbers_costs_at_most_three_times_the_file(
    live: LiveApi, tmp_path: Path, columns: int
) -> None:
    path = tmp_path / f"bits-{columns}.csv"
    rows = write_bits_csv(path, columns)
    size = path.stat().st_size
    before = live.start_measuring()
    started = time.perf_counter()
    with (
        httpx.Client(base_url=live.base, headers=live.headers, timeout=200) as http,
        path.open("rb") as body,
    ):
        answer = http.post("/v1/datasets", files={"file": ("bits.csv", body, "text/csv")})
    seconds = time.perf_counter() - started
    growth = live.growth(before)
    assert answer.status_code == 201, answer.text[:500]
    dataset = answer.json()
    assert (dataset["n_rows"], dataset["n_features"]) == (rows, columns - 1)
    print(
        f"{columns} columns: {size / MiB:.0f} MiB in {seconds:.1f} s ({size / MiB / seconds:.0f}"
        f" MiB/s), API peak +{growth / MiB:.0f} MiB = {growth / size:.2f}x the file"
    )
    assert growth <= 3 * size, f"the API's peak grew {growth / size:.2f}x the file"
