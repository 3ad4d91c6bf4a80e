"""F14: a corrupt latest checkpoint is detected (sha256) and resume falls back to the one
before it, still bit-identical. D4: a paused attempt that lost its lease writes nothing once
it wakes up (fencing on the lease token), with real processes."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from store.tables import Checkpoint
from tests.e2e.helpers import wait_for
from tests.faults.harness import Cluster, cluster, dup_count

pytestmark = [pytest.mark.fault, pytest.mark.postgres]


def _assert_same_weights(c: Cluster, run_id: str, reference: str) -> None:
    assert c.losses(run_id) == c.losses(reference)
    got, want = c.weights(run_id), c.weights(reference)
    assert got.keys() == want.keys()
    for name in want:
        assert np.array_equal(got[name], want[name]), name


@pytest.mark.timeout(90)
def test_f14_corrupt_latest_checkpoint_falls_back(tmp_path: Path) -> None:
    epochs = 10
    with cluster(tmp_path) as c:
        c.start_api()
        c.start_worker()
        run_id = c.submit(epochs=epochs)
        fourth = c.wait_epoch(run_id, 4, timeout=30)
        os.kill(fourth["pid"], signal.SIGKILL)
        assert c.db is not None
        with c.db.session() as session:
            latest = session.scalars(
                select(Checkpoint)
                .where(Checkpoint.run_id == uuid.UUID(run_id))
                .order_by(Checkpoint.epoch.desc())
                .limit(1)
            ).one()
            blob = bytearray(latest.blob)
            blob[len(blob) // 2] ^= 0xFF  # one flipped byte; the stored sha256 is unchanged
            corrupt_epoch = latest.epoch
            session.execute(
                update(Checkpoint).where(Checkpoint.id == latest.id).values(blob=bytes(blob))
            )
            session.commit()
        assert c.run(run_id).attempts == 1  # not resumed yet: the lease is still fresh

        assert c.wait_final([run_id], timeout=40) == {run_id: "succeeded"}
        log = (tmp_path / "worker-w1.log").read_text()
        assert f"checkpoint at epoch {corrupt_epoch} fails its hash" in log
        events = c.events(run_id)
        second = [e["epoch"] for e in events if e["attempt"] == 2]
        assert second[0] == corrupt_epoch  # resumed from the checkpoint before the corrupt one
        assert c.history(run_id) == list(range(1, epochs + 1))
        _assert_same_weights(c, run_id, c.reference(epochs=epochs))


@pytest.mark.timeout(90)
def test_d4_paused_attempt_is_fenced_after_takeover(tmp_path: Path) -> None:
    epochs = 24
    with cluster(tmp_path) as c:
        c.start_api()
        c.start_worker("a")
        run_id = c.submit(epochs=epochs)
        c.start_worker("b")  # the idle one takes the run over once the reaper re-sends it
        third = c.wait_epoch(run_id, 3, timeout=30)
        os.kill(third["pid"], signal.SIGSTOP)  # attempt 1 freezes past its lease
        try:

            def taken_over() -> bool:
                return len([e for e in c.events(run_id) if e["attempt"] == 2]) >= 2

            wait_for(taken_over, timeout=30, what="attempt 2 to train", interval=0.1)
        finally:
            os.kill(third["pid"], signal.SIGCONT)
        resumed_at = time.time()
        assert c.wait_final([run_id], timeout=40) == {run_id: "succeeded"}

        def gave_up() -> bool:
            logs = [(tmp_path / f"worker-{w}.log").read_text() for w in "ab"]
            return any("lease lost" in log for log in logs)

        wait_for(gave_up, timeout=10, what="attempt 1 to notice it lost the lease")
        events = c.events(run_id)
        first = [e for e in events if e["attempt"] == 1]
        second = [e for e in events if e["attempt"] == 2]
        assert first and second
        assert max(e["t"] for e in first) < min(e["t"] for e in second)
        assert not [e for e in first if e["t"] >= resumed_at]
        assert dup_count(events) == 0
        assert c.run(run_id).attempts == 2
        assert c.history(run_id) == list(range(1, epochs + 1))
        _assert_same_weights(c, run_id, c.reference(epochs=epochs))
