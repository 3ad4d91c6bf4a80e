"""ASHA, asynchronous successive halving (Li et al. 2020; as Ray Tune's and Katib's): rungs at
epochs g, g*r, g*r^2, ...; a trial that reaches a rung goes on only if its metric there is in
the top 1/r (rounded up) of the trials that have reached that rung so far. The first trial at a
rung always goes on, and so does the best one at it.

The rung logic is pure (:class:`Asha`, :func:`promoted`); :class:`RungJudge` applies it from the
history in the database, inside the fenced transaction that records the trial's epoch, so each
decision is made once and recorded on the run (``rung``, ``stopped_early``): a resumed attempt
that replays the epoch reads the decision back instead of making another.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InvalidInput
from store import sweeps as sweep_store
from store.tables import Run, SweepMode, SweepStatus

MAX_GRACE_EPOCHS = 100_000
MAX_REDUCTION_FACTOR = 100


@dataclass(frozen=True)
class Asha:
    grace_epochs: int
    reduction_factor: int

    @classmethod
    def parse(cls, config: dict[str, Any]) -> Asha:
        """From ``{"type": "asha", "grace_epochs", "reduction_factor"}``; 422 naming the field."""
        if config.get("type") != "asha":
            raise InvalidInput(
                "early_termination.type must be 'asha'",
                {"field": "early_termination.type"},
                code="invalid_early_termination",
            )
        bounds = {
            "grace_epochs": (1, MAX_GRACE_EPOCHS),
            "reduction_factor": (2, MAX_REDUCTION_FACTOR),
        }
        values: dict[str, int] = {}
        for name, (low, high) in bounds.items():
            value = config.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidInput(
                    f"early_termination.{name} must be a whole number from {low} to {high}",
                    {"field": f"early_termination.{name}"},
                    code="invalid_early_termination",
                )
            values[name] = value
        return cls(values["grace_epochs"], values["reduction_factor"])

    def is_rung(self, epoch: int) -> bool:
        rung = self.grace_epochs
        while rung < epoch:
            rung *= self.reduction_factor
        return rung == epoch

    def rungs(self, epochs: int) -> list[int]:
        """The rungs before the last epoch (a decision at the last one would save nothing)."""
        found, rung = [], self.grace_epochs
        while rung < epochs:
            found.append(rung)
            rung *= self.reduction_factor
        return found


def promoted(value: float, reached: list[float], *, highest: bool, reduction_factor: int) -> bool:
    """Whether ``value`` is in the top 1/r (rounded up) of ``reached`` (which holds it too).
    Ties go on: only the trials strictly better count against it."""
    better = sum(1 for v in reached if (v > value if highest else v < value))
    return better < math.ceil(len(reached) / reduction_factor)


@dataclass(frozen=True)
class RungJudge:
    """The decision for one trial, called by the worker with the epoch's fenced session."""

    run_id: uuid.UUID
    sweep_id: uuid.UUID
    metric: str
    highest: bool
    asha: Asha

    def __call__(self, session: Session, epoch: int, epochs: int) -> bool | None:
        """None when ``epoch`` is no rung (or the last epoch); else whether the trial goes on."""
        if epoch >= epochs or not self.asha.is_rung(epoch):
            return None
        if sweep_store.lock_sweep(session, self.sweep_id) != SweepStatus.running:
            return None  # cancelled: the trials stop anyway
        run = session.get(Run, self.run_id, populate_existing=True)
        if run is None:
            return None
        if run.rung is not None and run.rung >= epoch:
            return not run.stopped_early  # decided by an earlier attempt: the same answer
        values = sweep_store.rung_values(
            session, sweep_id=self.sweep_id, epoch=epoch, metric=self.metric
        )
        own = values.get(self.run_id)
        goes_on = own is None or promoted(
            own, list(values.values()), highest=self.highest,
            reduction_factor=self.asha.reduction_factor,
        )  # fmt: skip
        sweep_store.set_rung(session, run_id=self.run_id, rung=epoch, stopped=not goes_on)
        return goes_on


def judge_for(session: Session, run: Run) -> RungJudge | None:
    """The trial's judge, when its sweep terminates early; None for any other run."""
    if run.sweep_id is None:
        return None
    sweep = sweep_store.get_sweep_unscoped(session, run.sweep_id)
    if sweep is None or sweep.early_termination is None:
        return None
    return RungJudge(
        run_id=run.id,
        sweep_id=sweep.id,
        metric=sweep.metric,
        highest=sweep.mode == SweepMode.max,
        asha=Asha.parse(sweep.early_termination),
    )
