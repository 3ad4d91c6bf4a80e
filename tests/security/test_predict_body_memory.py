"""What a large predict body costs the API process, over real HTTP (uvicorn on PostgreSQL, a
redis-server of its own), with the peak read from /proc (tests.security.live).

The finding: orjson builds a float object per number, so a 32 MiB body of 100-column rows of
short numbers grew the API by ~330 MiB (~10x) before numpy saw a value, even when it was then
refused for having too many rows. Now a body over 1 MiB holding a table is read in pieces
(core.predict_tables): refused for its rows it costs about its own bytes (twice, while it is
read); accepted, its bytes plus the float64 matrix and what the prediction holds besides.

Measured over HTTP on this 2-core machine (32 MiB bodies, API peak growth), read whole -> in
pieces: 74,147 rows of ``-0.3``-style numbers accepted +459 -> +185 MiB (of which the matrix is
57 MiB and the model's copies of it ~90 MiB); 35,603 rows of 6-digit numbers +207 -> +100 MiB;
the 74,147 rows refused (413) under the default row limit +468 -> +64 MiB (the body and its
copy while read)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pytest

from core.config import Settings
from core.runs import training
from tests.api.runs_fixtures import SPEC
from tests.security.live import LiveApi

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

MiB = 1024 * 1024
CAP = Settings.model_fields["max_predict_body_bytes"].default
WIDTH = 100
ROWS_LIMIT = 100_000  # raised, so that a near-cap body of short numbers is accepted
SLACK = 16 * MiB  # the interpreter's own allocations for a request, allocator slack


@dataclass(frozen=True)
class Model:
    live: LiveApi
    model_id: str

    @property
    def path(self) -> str:
        return f"/v1/models/{self.model_id}/predict"


def wide_csv(rows: int = 240) -> bytes:
    rng = np.random.default_rng(1)
    labels = np.arange(rows) % 3
    X = rng.normal(size=(rows, WIDTH)) + labels[:, None]
    lines = [",".join([*(f"f{i}" for i in range(WIDTH)), "label"])]
    lines += [
        ",".join(f"{v:.3f}" for v in row) + f",c{k}" for row, k in zip(X, labels, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    env = {"DESCENT_MAX_PREDICT_ROWS": str(ROWS_LIMIT)}
    with LiveApi(tmp_path_factory.mktemp("live"), env=env) as live:
        with httpx.Client(base_url=live.base, headers=live.headers, timeout=60) as http:
            dataset = http.post("/v1/datasets", files={"file": ("wide.csv", wide_csv())})
            assert dataset.status_code == 201, dataset.text
            body = {"dataset_id": dataset.json()["id"], "spec": SPEC}
            run_id = http.post("/v1/runs", json=body).json()["id"]
            assert training.run_training(live.db, run_id, settings=live.settings) == "succeeded"
            found = Model(live, http.get(f"/v1/runs/{run_id}").json()["model_id"])
            # Warm up what the first predictions build lazily (the model cache, numpy's and
            # orjson's pools), small and large, so the measured request sees only its own cost.
            for rows in (1, 3_000):
                warm = http.post(found.path, content=table(rows, 1), headers=JSON)
                assert warm.status_code == 200, warm.text[:300]
        yield found


JSON = {"Content-Type": "application/json"}


def table(rows: int, digits: int) -> bytes:
    """``{"inputs": [[...], ...]}`` of ``rows`` x WIDTH numbers rounded to ``digits``."""
    values = np.round(np.random.default_rng(2).normal(size=(rows, WIDTH)), digits)
    return b'{"inputs": ' + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY) + b"}"


def near_cap(digits: int) -> bytes:
    """The most rows of such numbers under the cap."""
    per_row = len(table(200, digits)) / 200
    return table(int((CAP - 64 * 1024) / per_row), digits)


def post(model: Model, body: bytes) -> tuple[httpx.Response, int, float]:
    live = model.live
    before = live.start_measuring()
    started = time.perf_counter()
    with httpx.Client(base_url=live.base, headers=live.headers, timeout=120) as http:
        answer = http.post(model.path, content=body, headers=JSON)
    seconds = time.perf_counter() - started
    return answer, live.growth(before), seconds


def report(what: str, body: bytes, answer: httpx.Response, growth: int, seconds: float) -> None:
    print(
        f"\n{what}: {len(body) / MiB:.1f} MiB -> {answer.status_code} in {seconds:.2f} s, API peak "
        f"+{growth / MiB:.0f} MiB = {growth / len(body):.2f}x the body"
    )


@pytest.mark.timeout(240)
@pytest.mark.parametrize("digits", [1, 6], ids=["short-numbers", "long-numbers"])
def test_a_near_cap_predict_costs_at_most_three_times_the_body(model: Model, digits: int) -> None:
    body = near_cap(digits)
    rows = body.count(b"[") - 1
    assert CAP - MiB < len(body) <= CAP and rows <= ROWS_LIMIT
    answer, growth, seconds = post(model, body)
    report(f"{rows} rows of {WIDTH}", body, answer, growth, seconds)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()["predictions"]) == rows
    # What the request must hold whatever the parser: the body (twice while it is read), then
    # the body, the float64 matrix and the model's copies of it (models.preprocess.transform:
    # its numeric block, the network's input and the missing-value mask, ~2.1x the matrix).
    # Read whole, the parse alone held ~13x the body of short numbers.
    matrix = rows * WIDTH * 8
    bound = max(2 * len(body), len(body) + 3.2 * matrix) + SLACK
    assert growth <= bound, (
        f"the API's peak grew {growth / len(body):.2f}x the body ({growth / MiB:.0f} MiB; the "
        f"body, matrix and prediction: {bound / MiB:.0f} MiB)"
    )


@pytest.mark.timeout(240)
def test_too_many_rows_costs_about_the_body(model: Model) -> None:
    """The finding's case: under the default row limit (10,000), a near-cap body of short
    numbers (~70,000 rows) is refused; read whole, it cost ~10x its bytes to count them."""
    live = model.live
    live.stop_api()
    live.start_api(DESCENT_MAX_PREDICT_ROWS="10000")
    try:
        with httpx.Client(base_url=live.base, headers=live.headers, timeout=60) as http:
            for _ in range(2):
                assert http.post(model.path, content=table(1, 1), headers=JSON).status_code == 200
        body = near_cap(1)
        rows = body.count(b"[") - 1
        answer, growth, seconds = post(model, body)
        report(f"{rows} rows of {WIDTH}, refused", body, answer, growth, seconds)
        assert answer.status_code == 413, answer.text[:300]
        error = answer.json()["error"]
        assert error["code"] == "too_many_rows" and error["details"]["rows"] == rows
        # The body itself, a copy while it is read, and a little.
        assert growth <= 2 * len(body) + 8 * MiB, f"{growth / len(body):.2f}x the body"
    finally:
        live.stop_api()
        live.start_api()
