"""Sweeps seen from the API: submit (expand, validate every trial, store, fill the slots),
read (the leaderboard), list, cancel.

Nothing is stored or queued unless every trial's resolved spec passes core.runs.validation's
check_spec; the 422 names the trial, its parameters and the field.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from core.broker import Enqueuer
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound, quote
from core.pagination import Page, newest_page
from core.runs.validation import check_spec, dataset_for_run
from core.sweeps import slots
from core.sweeps.asha import Asha
from core.sweeps.space import MAX_TRIALS, Method, apply, expand, parse_space
from store import datasets as dataset_store
from store import runs as run_store
from store import sweeps as sweep_store
from store.base import Reads, utcnow
from store.tables import MAX_NAME_CHARS, Run, RunStatus, Sweep, SweepMode, SweepStatus

# A metric every epoch reports: train_loss, val_loss, val_accuracy, val_r2, ...
_METRIC = re.compile(r"^(train|val)_[a-z0-9_]{1,40}$")
_HIGHER_IS_BETTER = ("accuracy", "r2", "auc", "f1", "precision", "recall")


def _not_found() -> NotFound:
    return NotFound("sweep not found", code="sweep_not_found")


def default_mode(metric: str) -> SweepMode:
    return SweepMode.max if metric.endswith(_HIGHER_IS_BETTER) else SweepMode.min


def _check_metric(metric: str) -> None:
    if not _METRIC.match(metric):
        raise InvalidInput(
            f"metric {quote(metric)} is not one the epochs report (train_loss, val_loss, "
            "val_accuracy, val_r2, ...)",
            {"field": "metric"},
            code="invalid_metric",
        )


def _trial_error(index: int, params: dict[str, Any], exc: InvalidInput) -> InvalidInput:
    return InvalidInput(
        f"trial {index} {quote(params)}: {exc.message}",
        {**exc.details, "trial": index, "params": params},
        code=exc.code,
    )


def submit_sweep(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    dataset_id: uuid.UUID,
    name: str | None,
    spec: dict[str, Any],
    method: Method,
    space: dict[str, Any],
    n_trials: int | None,
    seed: int | None,
    metric: str,
    mode: SweepMode | None,
    max_parallel: int | None,
    early_termination: dict[str, Any] | None,
    settings: Settings,
    enqueue: Enqueuer,
) -> Leaderboard:
    """Expand the space, check every trial's spec, commit the sweep and its trials pending,
    then queue as many as the slots allow (core.sweeps.slots). Returns the new sweep."""
    if name is not None and len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"name is longer than {MAX_NAME_CHARS} characters",
            {"field": "name", "limit": MAX_NAME_CHARS},
        )
    _check_metric(metric)
    asha = None if early_termination is None else Asha.parse(early_termination)
    if max_parallel is not None and not 1 <= max_parallel <= MAX_TRIALS:
        raise InvalidInput(
            f"max_parallel must be between 1 and {MAX_TRIALS}", {"field": "max_parallel"}
        )
    if method == "random" and seed is None:
        seed = secrets.randbelow(2**31)  # recorded, so the sweep can be repeated exactly
    trials = expand(parse_space(space, method), method, n_trials=n_trials, seed=seed or 0)
    dataset = dataset_for_run(session, tenant_id, dataset_id)
    resolved: list[dict[str, Any]] = []
    for index, params in enumerate(trials):
        try:
            check = check_spec(dataset, apply(spec, params), settings)
        except InvalidInput as exc:
            session.rollback()
            raise _trial_error(index, params, exc) from None
        if metric.startswith("val_") and check.spec.validation_split == 0:
            session.rollback()
            raise _trial_error(
                index, params,
                InvalidInput(
                    f"validation_split is 0, so {metric} is never reported",
                    {"field": "spec.validation_split"}, code="invalid_spec",
                ),
            )  # fmt: skip
        resolved.append(check.spec.model_dump(mode="json"))
    # As submit_run: lock the dataset row so a concurrent delete cannot slip in before the insert.
    if dataset_store.get_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id, for_update=True
    ) is None:  # fmt: skip
        raise InvalidInput(
            "dataset not found",
            {"field": "dataset_id", "value": str(dataset_id)},
            code="dataset_not_found",
        )
    sweep = Sweep(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=name,
        dataset_id=dataset_id,
        spec=spec,
        search={"method": method, "space": space, "n_trials": n_trials},
        metric=metric,
        mode=mode or default_mode(metric),
        max_parallel=max_parallel or settings.max_concurrent_runs_per_tenant,
        early_termination=None if asha is None else {"type": "asha", **vars(asha)},
        seed=seed,
        status=SweepStatus.running,
    )
    sweep_store.insert_sweep(session, sweep)
    run_store.insert_runs(
        session,
        [
            Run(
                tenant_id=tenant_id,
                dataset_id=dataset_id,
                name=None if name is None else f"{name[: MAX_NAME_CHARS - 8]} #{index}",
                status=RunStatus.pending,
                spec=trial_spec,
                epoch=0,
                epochs=trial_spec["epochs"],
                sweep_id=sweep.id,
                trial=index,
                params=params,
            )
            for index, (params, trial_spec) in enumerate(zip(trials, resolved, strict=True))
        ],
    )
    # The first slots are filled in the same transaction; committed before anything is sent.
    promoted = slots.promote_waiting(
        session, sweep_id=sweep.id, settings=settings, sent_at=utcnow()
    )
    session.commit()
    slots.send(promoted, enqueue)
    return get_sweep(session, tenant_id=tenant_id, sweep_id=sweep.id)


@dataclass(frozen=True)
class Trial:
    run_id: uuid.UUID
    trial: int
    params: dict[str, Any]
    status: RunStatus
    best_value: float | None
    epochs_done: int
    stopped_early: bool
    model_id: uuid.UUID | None


@dataclass(frozen=True)
class Leaderboard:
    sweep: Row[Any]
    trials: list[Trial]  # best first; trials without a value last, in their order
    best: Trial | None  # the best trial with a model


def sweep_view(reads: Reads, *, tenant_id: uuid.UUID, sweep_id: uuid.UUID) -> Row[Any]:
    row = sweep_store.sweep_view(reads, tenant_id=tenant_id, sweep_id=sweep_id)
    if row is None:
        raise _not_found()
    return row


def get_sweep(reads: Reads, *, tenant_id: uuid.UUID, sweep_id: uuid.UUID) -> Leaderboard:
    sweep = sweep_view(reads, tenant_id=tenant_id, sweep_id=sweep_id)
    highest = sweep.mode == SweepMode.max
    values = sweep_store.best_values(reads, sweep_id=sweep_id, metric=sweep.metric, highest=highest)
    trials = [
        Trial(
            run_id=r.id, trial=r.trial, params=r.params or {}, status=r.status,
            best_value=values.get(r.id), epochs_done=r.epoch, stopped_early=r.stopped_early,
            model_id=r.model_id,
        )
        for r in sweep_store.trials(reads, sweep_id=sweep_id)
    ]  # fmt: skip

    def rank(t: Trial) -> tuple[bool, float, int]:
        if t.best_value is None:
            return (True, 0.0, t.trial)
        return (False, -t.best_value if highest else t.best_value, t.trial)

    trials.sort(key=rank)
    best = next((t for t in trials if t.model_id is not None and t.best_value is not None), None)
    return Leaderboard(sweep=sweep, trials=trials, best=best)


def list_sweeps(
    reads: Reads, *, tenant_id: uuid.UUID, limit: int, cursor: str | None = None
) -> Page[Row[Any]]:
    return newest_page(
        lambda after, n: sweep_store.list_sweeps(reads, tenant_id=tenant_id, limit=n, after=after),
        limit=limit,
        cursor=cursor,
    )


def cancel_sweep(session: Session, *, tenant_id: uuid.UUID, sweep_id: uuid.UUID) -> Sweep:
    """Cancel the trials still pending, queued or running (a running one stops cooperatively,
    as a cancelled run does) and end the sweep ``cancelled``; 409 once it has ended.

    Locks in the order every writer takes them (a run's row, then its sweep's: the ASHA judge
    holds its trial's row when it locks the sweep), so a cancel never deadlocks a decision."""
    sweep = sweep_store.get_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
    if sweep is None:
        raise _not_found()
    if sweep.status != SweepStatus.running:
        raise _finished(session, sweep)
    now = utcnow()
    for run_id in sweep_store.active_trial_ids(session, sweep_id=sweep_id):
        run_store.request_cancel(session, run_id=run_id, now=now)
    # No slot is filled from here on (core.sweeps.slots reads the sweep's status).
    if not sweep_store.finish_sweep(
        session, sweep_id=sweep_id, status=SweepStatus.cancelled, now=now
    ):  # fmt: skip
        session.rollback()  # it ended meanwhile (its trials were all final)
        ended = sweep_store.get_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
        assert ended is not None
        raise _finished(session, ended)
    session.commit()
    session.refresh(sweep)
    return sweep


def _finished(session: Session, sweep: Sweep) -> Conflict:
    status = sweep.status.value
    session.rollback()
    return Conflict(
        f"the sweep has already finished ({status})", {"status": status}, code="sweep_finished"
    )
