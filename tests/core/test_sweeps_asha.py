"""core.sweeps.asha: the rung logic on its own, then the decision through the database (made
once, fenced on the lease, read back by a later attempt)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import InvalidInput
from core.runs import lease
from core.sweeps import submit_sweep
from core.sweeps.asha import Asha, judge_for, promoted
from models import EpochEnd
from store import runs as run_store
from store import sweeps as sweep_store
from store.session import Database
from store.tables import Run, RunStatus
from tests.api.runs_fixtures import SPEC, Sent, tenant_with_blobs


def test_rungs_are_grace_times_powers_of_the_factor_before_the_last_epoch() -> None:
    asha = Asha(grace_epochs=2, reduction_factor=3)
    assert asha.rungs(20) == [2, 6, 18]
    assert asha.rungs(18) == [2, 6]
    assert [e for e in range(1, 60) if asha.is_rung(e)] == [2, 6, 18, 54]


def test_top_one_over_r_goes_on_rounded_up_and_ties_go_on() -> None:
    # Lower is better: the first at a rung always goes on.
    assert promoted(0.9, [0.9], highest=False, reduction_factor=2)
    assert not promoted(0.9, [0.5, 0.9], highest=False, reduction_factor=2)
    assert promoted(0.5, [0.5, 0.9], highest=False, reduction_factor=2)
    # 3 reached, r = 2: the best 2 go on.
    assert promoted(0.7, [0.5, 0.9, 0.7], highest=False, reduction_factor=2)
    assert not promoted(0.9, [0.5, 0.9, 0.7], highest=False, reduction_factor=2)
    # Higher is better, r = 3: of 4, the best 2 (ceil 4/3).
    reached = [0.1, 0.4, 0.3, 0.2]
    assert [promoted(v, reached, highest=True, reduction_factor=3) for v in reached] == [
        False, True, True, False,
    ]  # fmt: skip
    assert promoted(0.5, [0.5, 0.5, 0.5], highest=True, reduction_factor=3)


def test_the_best_at_a_rung_is_never_stopped() -> None:
    import random

    rng = random.Random(0)
    for _ in range(500):
        reached = [rng.random() for _ in range(rng.randint(1, 12))]
        r = rng.randint(2, 5)
        assert promoted(min(reached), reached, highest=False, reduction_factor=r)
        assert promoted(max(reached), reached, highest=True, reduction_factor=r)
        kept = sum(promoted(v, reached, highest=True, reduction_factor=r) for v in reached)
        assert kept == -(-len(reached) // r)  # distinct values: exactly the top ceil(n/r)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"type": "hyperband", "grace_epochs": 1, "reduction_factor": 2}, "type"),
        ({"type": "asha", "grace_epochs": 0, "reduction_factor": 2}, "grace_epochs"),
        ({"type": "asha", "grace_epochs": 1, "reduction_factor": 1}, "reduction_factor"),
        ({"type": "asha", "grace_epochs": True, "reduction_factor": 2}, "grace_epochs"),
    ],
)
def test_bad_configs_are_422_naming_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Asha.parse(config)
    assert caught.value.details["field"] == f"early_termination.{field}"


# --- the decision through the database ---------------------------------------------------------


def _submit(db: Database, settings: Settings, tmp_path: Path, sent: Sent) -> list[uuid.UUID]:
    """A 2-trial ASHA sweep (rungs at 1, 2); returns its trials' run ids in order."""
    tenant, dataset_id = tenant_with_blobs(db, settings, tmp_path, "asha")
    with db.session() as session:
        sweep = submit_sweep(
            session, tenant_id=tenant, dataset_id=dataset_id, name="asha", spec=SPEC,
            method="grid", space={"optimizer.learning_rate": [0.1, 0.01]}, n_trials=None,
            seed=None, metric="val_loss", mode=None, max_parallel=2,
            early_termination={"type": "asha", "grace_epochs": 1, "reduction_factor": 2},
            settings=settings, enqueue=sent,
        )  # fmt: skip
        sweep_id = sweep.sweep.id
    with db.read_session() as session:
        return [row.id for row in sweep_store.trials(session, sweep_id=sweep_id)]


def _attempt(db: Database, settings: Settings, run_id: uuid.UUID) -> lease.Attempt:
    claimed = lease.claim(db, run_id)
    assert claimed is not None
    run, token = claimed
    attempt = lease.Attempt(db=db, run=run, token=token, settings=settings)
    with db.read_session() as session:
        attempt.rung_judge = judge_for(session, run)
    return attempt


def _epoch(epoch: int, val_loss: float) -> EpochEnd:
    metrics = {"epoch": epoch, "train_loss": 1.0, "val_loss": val_loss, "learning_rate": 0.1,
               "seconds": 0.01}  # fmt: skip
    return EpochEnd(epoch, SPEC["epochs"], metrics, lambda: None)  # type: ignore[arg-type, return-value]


def _decision(db: Database, run_id: uuid.UUID) -> tuple[int | None, bool]:
    with db.read_session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.rung, run.stopped_early


def test_a_rung_decision_is_made_once_fenced_and_read_back_on_resume(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    fast = settings.model_copy(update={"cancel_poll_seconds": 0.0})
    leader_id, loser_id = _submit(db, fast, tmp_path, Sent())
    leader, loser = _attempt(db, fast, leader_id), _attempt(db, fast, loser_id)

    leader.on_epoch(_epoch(1, 0.2))  # alone at rung 1: goes on
    assert leader.stop_at is None and _decision(db, leader_id) == (1, False)
    loser.on_epoch(_epoch(1, 0.9))  # behind the leader: stopped, from the history in the DB
    assert loser.stop_at == 1 and loser.should_stop()
    assert _decision(db, loser_id) == (1, True)
    leader.on_epoch(_epoch(2, 0.1))  # rung 2, alone again
    assert _decision(db, leader_id) == (2, False)

    # An attempt that lost the lease writes nothing: no epoch, no decision.
    stale = lease.Attempt(db=db, run=loser.run, token=uuid.uuid4(), settings=fast)
    stale.rung_judge = loser.rung_judge
    with pytest.raises(lease.LeaseLost):
        stale.on_epoch(_epoch(2, 0.01))
    assert _decision(db, loser_id) == (1, True)

    # The loser's worker dies; the reaper puts it back, a new attempt replays epoch 1 with a
    # (this time) winning value: the recorded decision holds.
    with db.session() as session:
        assert run_store.fenced_update(
            session, run_id=loser_id, token=loser.token,
            values={"status": RunStatus.queued, "lease_token": None},
        )  # fmt: skip
        run_store.delete_epochs_after(session, run_id=loser_id, epoch=0)
        session.commit()
    again = _attempt(db, fast, loser_id)
    assert again.stop_at == 1 and not again.stopped_early  # epoch 1 is still to be replayed
    again.on_epoch(_epoch(1, 0.01))
    assert again.stopped_early and _decision(db, loser_id) == (1, True)
