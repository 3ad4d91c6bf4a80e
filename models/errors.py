"""Errors the engine raises. Each names what is wrong and where, so a caller can show it as is."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "engine_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class SpecError(EngineError, ValueError):
    """A spec that is valid on its own but does not fit the data; `field` names the culprit."""

    code = "invalid_spec"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.field = field


class DataError(EngineError, ValueError):
    """Training data the engine cannot learn from (shapes, NaN, a single class...)."""

    code = "invalid_data"


class InputError(EngineError, ValueError):
    """Prediction input that does not match the model (feature count, NaN, unknown column)."""

    code = "invalid_input"


class TrainingError(EngineError):
    """Training started but could not produce a model."""

    code = "training_failed"


class DivergenceError(TrainingError):
    code = "diverged"

    def __init__(self, epoch: int, batch: int, learning_rate: float) -> None:
        super().__init__(
            f"training diverged: the loss became non-finite in epoch {epoch}, batch {batch}; "
            f"try a lower learning rate than {learning_rate:g} (or clipnorm)",
            epoch=epoch,
            batch=batch,
            learning_rate=learning_rate,
        )
        self.epoch = epoch
        self.batch = batch


class ResumeError(TrainingError):
    """A saved TrainingState that does not belong to this spec and data."""

    code = "resume_mismatch"


class ArtifactError(EngineError, ValueError):
    """Bytes that are not a valid model artifact or training state."""

    code = "invalid_artifact"
