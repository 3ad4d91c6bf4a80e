"""Sweep request and response models (API.md, "Sweeps"). Shapes only: the space's semantics,
the trials' specs and the limits are checked by core.sweeps, whose 422s name the field."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api import examples as ex
from api.examples import examples
from api.schemas import RunStatusName, SpecJson
from core.sweeps import Leaderboard, Trial

SweepStatusName = Literal["running", "succeeded", "failed", "cancelled"]


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["grid", "random"]
    space: dict[str, Any] = Field(
        description="Dotted spec field -> a list of values (grid and random), or for random "
        '{"uniform": [a, b]}, {"log_uniform": [a, b]} or {"int_uniform": [a, b]}'
    )
    n_trials: int | None = Field(default=None, description="Random search: how many trials")
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        description="Random search: the same seed gives the same trials (default: drawn, and "
        "reported back)",
    )


class EarlyTerminationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["asha"]
    grace_epochs: int = Field(description="The first rung: no trial is stopped before it")
    reduction_factor: int = Field(description="Rungs at g, g*r, g*r^2, ...; the top 1/r go on")


class SweepIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.SWEEP_IN))

    dataset_id: uuid.UUID
    name: str | None = None
    spec: SpecJson = Field(default_factory=dict, description="The base TrainingSpec")
    search: SearchIn
    metric: str = Field(default="val_loss", max_length=64)
    mode: Literal["min", "max"] | None = Field(
        default=None, description="Default: max for accuracy-like metrics, else min"
    )
    max_parallel: int | None = Field(
        default=None, description="Trials at once (default: the tenant's concurrent-run limit)"
    )
    early_termination: EarlyTerminationIn | None = None


class TrialOut(BaseModel):
    run_id: uuid.UUID
    trial: int
    params: dict[str, Any]
    status: RunStatusName
    best_value: float | None
    epochs_done: int
    stopped_early: bool

    @classmethod
    def of(cls, t: Trial) -> TrialOut:
        return cls(
            run_id=t.run_id, trial=t.trial, params=t.params, status=t.status.value,
            best_value=t.best_value, epochs_done=t.epochs_done, stopped_early=t.stopped_early,
        )  # fmt: skip


class BestTrialOut(BaseModel):
    run_id: uuid.UUID
    model_id: uuid.UUID
    value: float
    params: dict[str, Any]


class SweepSummaryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.SWEEP_SUMMARY))

    id: uuid.UUID
    name: str | None
    dataset_id: uuid.UUID | None
    status: SweepStatusName
    metric: str
    mode: Literal["min", "max"]
    max_parallel: int
    seed: int | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def fields_of(cls, row: Any) -> dict[str, Any]:
        return {
            "id": row.id, "name": row.name, "dataset_id": row.dataset_id,
            "status": row.status.value, "metric": row.metric, "mode": row.mode.value,
            "max_parallel": row.max_parallel, "seed": row.seed, "created_at": row.created_at,
            "finished_at": row.finished_at,
        }  # fmt: skip

    @classmethod
    def from_row(cls, row: Any) -> SweepSummaryOut:
        return cls(**cls.fields_of(row))


class SweepOut(SweepSummaryOut):
    model_config = ConfigDict(json_schema_extra=examples(ex.SWEEP))

    search: dict[str, Any]
    early_termination: dict[str, Any] | None
    trials: list[TrialOut] = Field(description="Best first; trials without a value yet last")
    best: BestTrialOut | None

    @classmethod
    def of(cls, board: Leaderboard) -> SweepOut:
        best = board.best
        return cls(
            **cls.fields_of(board.sweep),
            search=board.sweep.search,
            early_termination=board.sweep.early_termination,
            trials=[TrialOut.of(t) for t in board.trials],
            best=None
            if best is None or best.model_id is None or best.best_value is None
            else BestTrialOut(
                run_id=best.run_id, model_id=best.model_id, value=best.best_value,
                params=best.params,
            ),
        )  # fmt: skip


class SweepPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.SWEEP_PAGE))

    items: list[SweepSummaryOut]
    next_cursor: str | None
