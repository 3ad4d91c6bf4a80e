"""D1 / D3: several processes race to claim the same 120 queued runs, on SQLite (WAL, BEGIN
IMMEDIATE, busy timeout) and on PostgreSQL: each run is claimed exactly once, and no claimer
sees an error ('database is locked' or otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.harness import REPO, Cluster, cluster

pytestmark = [pytest.mark.fault]

N_RUNS = 120
N_CLAIMERS = 4


def _wait_until_ready(outs: list[Path], children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 30
    while not all(Path(f"{out}.ready").exists() for out in outs):
        assert all(child.poll() is None for child in children), "a claimer died before the start"
        assert time.monotonic() < deadline, "claimers not ready after 30 s"
        time.sleep(0.01)


def _race(c: Cluster, tmp: Path) -> None:
    run_ids = [c.submit(send=False, epochs=2) for _ in range(N_RUNS)]
    ids_file, go = tmp / "ids.txt", tmp / "go"
    ids_file.write_text("\n".join(run_ids))
    outs = [tmp / f"claims-{i}.jsonl" for i in range(N_CLAIMERS)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.claimer",
                c.database_url,
                str(ids_file),
                str(out),
                str(go),
            ],
            cwd=REPO,
            env=c.env,
        )
        for out in outs
    ]
    try:
        _wait_until_ready(outs, children)
        go.touch()
        for child in children:
            assert child.wait(60) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(5)
    results = [json.loads(x) for out in outs for x in out.read_text().splitlines()]
    errors = [r["error"] for r in results if "error" in r]
    claimed = [r["claimed"] for r in results if "claimed" in r]
    per_claimer = [len(out.read_text().splitlines()) for out in outs]
    print(f"claims: {len(claimed)} of {N_RUNS}, distinct {len(set(claimed))}, errors {errors}")
    print(f"claims per claimer: {per_claimer}")
    assert errors == []
    assert sorted(claimed) == sorted(run_ids)  # every run exactly once
    assert all(c.run(r).attempts == 1 for r in run_ids)
    assert sum(n > 0 for n in per_claimer) >= 2  # the claimers really competed


@pytest.mark.timeout(90)
def test_d1_sqlite_claim_race(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'descent.sqlite3'}"
    with cluster(tmp_path, database_url=url) as c:
        _race(c, tmp_path)


@pytest.mark.timeout(90)
@pytest.mark.postgres
def test_d3_postgres_claim_race(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        _race(c, tmp_path)
