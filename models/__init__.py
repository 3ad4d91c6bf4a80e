"""Descent's training engine: small dense networks trained by SGD in pure numpy.

from models import train
result = train(X, y, {"layers": [{"units": 64}], "epochs": 20})
result.model.predict_proba(X[:3]); result.history[-1]["val_accuracy"]
"""

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
from models.spec import (
    TrainingSpec,
    count_parameters,
    flops_per_epoch,
    parse_spec,
    resolve_spec,
)
from models.state import TrainingState
from models.train import EpochEnd, TrainResult, infer_task, train

__all__ = [
    "ArtifactError",
    "DataError",
    "DivergenceError",
    "EngineError",
    "EpochEnd",
    "InputError",
    "Model",
    "ResumeError",
    "SpecError",
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
    "train",
]
