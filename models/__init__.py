"""Descent's training engine: small dense networks trained by SGD in pure numpy.

from models import train
result = train(X, y, {"layers": [{"units": 64}], "epochs": 20})
result.model.predict_proba(X[:3]); result.history[-1]["val_accuracy"]
more = train(X, y, {"layers": [{"units": 64}], "epochs": 10}, init_model=result.model)

The trainer (`train`, `EpochEnd`, `TrainResult`, in `models.trainer`) loads on first use, so a
process that only predicts (the API) never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.errors import (
    ArtifactError,
    DataError,
    DivergenceError,
    EngineError,
    InputError,
    ResumeError,
    SpecError,
    TrainingError,
)
from models.model import Model, load_model
from models.resolve import resolve_spec
from models.spec import TrainingSpec, count_parameters, flops_per_epoch, parse_spec
from models.split import infer_task, task_note
from models.state import TrainingState
from models.vocabulary import FeatureType, Task

if TYPE_CHECKING:
    from models.trainer import EpochEnd, TrainResult, train

_TRAINER_NAMES = frozenset({"EpochEnd", "TrainResult", "train"})


def __getattr__(name: str) -> Any:
    if name in _TRAINER_NAMES:
        from models import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = [
    "ArtifactError",
    "DataError",
    "DivergenceError",
    "EngineError",
    "EpochEnd",
    "FeatureType",
    "InputError",
    "Model",
    "ResumeError",
    "SpecError",
    "Task",
    "TrainResult",
    "TrainingError",
    "TrainingSpec",
    "TrainingState",
    "count_parameters",
    "flops_per_epoch",
    "infer_task",
    "load_model",
    "parse_spec",
    "resolve_spec",
    "task_note",
    "train",
]
