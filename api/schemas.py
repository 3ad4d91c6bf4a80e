"""Response (and request) models: the JSON contract of API.md, validated at the edge."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from api import examples as ex
from api.examples import examples
from core.errors import field_path
from models.vocabulary import FeatureType, Task
from store.tables import MAX_NAME_CHARS, DatasetFormat


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=examples(ex.DATASET))

    id: uuid.UUID
    name: str
    format: DatasetFormat
    n_rows: int
    n_features: int
    feature_names: list[str]
    feature_types: list[FeatureType]
    label: str
    task: Task
    # Set when the task was a close call: why it was chosen, and how to ask for the other.
    task_note: str | None = None
    classes: list[int | str] | None
    # Missing values per feature that has any (training imputes them: spec preprocessing.impute).
    missing: dict[str, int] = Field(default_factory=dict)
    # Image datasets: the size and colour mode every picture was made (predict does the same).
    image_shape: dict[str, int | str] | None = None
    sha256: str
    size_bytes: int
    created_at: datetime

    @field_validator("missing", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class DatasetPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.DATASET_PAGE))

    items: list[DatasetOut]
    next_cursor: str | None


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.HEALTH))

    status: Literal["ok"]


class ReadyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.READY))

    status: Literal["ok"]
    checks: dict[str, str]


class VersionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.VERSION))

    version: str
    git_sha: str | None
    numpy: str
    python: str


# ---------------------------------------------------------------------------------------------
# Runs

# pending: a sweep trial waiting for a slot (core.sweeps.slots); plain runs are never pending.
RunStatusName = Literal[
    "pending", "queued", "running", "cancelling", "succeeded", "failed", "cancelled"
]


# A spec travels as a plain dict (the service validates it, so errors name ``spec.<field>``), but
# the OpenAPI document publishes the full TrainingSpec: every field, enum and default
# (api.app adds the schema to the components).
SpecJson = Annotated[
    dict[str, Any], WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/TrainingSpec"}]})
]

_INT64 = 2**63
# Epoch numbers are 32-bit integer columns; a query past this is refused (422) before it reaches
# PostgreSQL, which would otherwise fail the statement (NumericValueOutOfRange).
MAX_EPOCH = 2**31 - 1
# The longest a long poll may hold a request (API.md: S <= 60).
MAX_WAIT_SECONDS = 60


def _storable(value: Any) -> None:
    """Reject JSON values the service cannot store or hash: integers beyond 64 bits and strings
    with lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but not valid UTF-8) or NUL
    characters (PostgreSQL text and jsonb cannot hold ``\\u0000``). The path to a bad value is
    built only for the error, each key in it cut (core.errors.field_path)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, parts = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        if isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise ValueError(f"integer out of range at {_where(parts)}")
        elif isinstance(item, str):
            _check_text(item, parts)
        elif isinstance(item, list):
            stack.extend((v, (*parts, i)) for i, v in enumerate(item))
        elif isinstance(item, dict):
            for k, v in item.items():
                _check_text(k, parts)
                stack.append((v, (*parts, k)))


def _where(parts: tuple[Any, ...]) -> str:
    return field_path(parts) or "top level"


def _check_text(text: str, parts: tuple[Any, ...]) -> None:
    problem = _text_problem(text)
    if problem:
        raise ValueError(f"{problem} at {_where(parts)}")


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid unicode (lone surrogate)"
    return "NUL character" if "\x00" in text else None


def storable_text(text: str, where: str) -> str:
    _check_text(text, (where,))
    return text


class RunIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(*ex.RUN_IN),
    )

    dataset_id: uuid.UUID
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    # Validated by the service against the TrainingSpec vocabulary (errors name spec.<field>).
    spec: SpecJson = Field(
        default_factory=dict,
        description="TrainingSpec: every field optional; unknown fields are rejected",
    )
    init_from_model_id: uuid.UUID | None = Field(
        default=None,
        description="Warm start: begin from this model's weights and preprocessing. A spec "
        "field left out is the model's (each top-level field whole). The model must be yours "
        "and fit the dataset and spec (same features, classes, task, loss, preprocessing and "
        "hidden layers), else 422 naming what differs. `spec.epochs` are this run's; the "
        "history's epochs count on from the model's.",
    )

    @field_validator("spec")
    @classmethod
    def _spec_is_storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        _storable(value)
        return value

    @field_validator("name")
    @classmethod
    def _name_is_storable(cls, value: str | None) -> str | None:
        return None if value is None else storable_text(value, "name")


class ValidateOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.VALIDATE))

    spec: SpecJson
    n_parameters: int
    flops_per_epoch: int
    estimated_seconds: float | None
    warnings: list[str]


class Progress(BaseModel):
    epoch: int
    epochs: int | None
    fraction: float
    eta_seconds: float | None


class RunError(BaseModel):
    code: str
    message: str


class BestEpoch(BaseModel):
    """The epoch with the lowest validation loss (training loss without a validation split)."""

    epoch: int
    loss: float
    metrics: dict[str, float | None]


class RunOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.RUN))

    id: uuid.UUID
    name: str | None
    dataset_id: uuid.UUID | None
    status: RunStatusName
    spec: SpecJson
    progress: Progress
    latest: dict[str, float | None]
    best: BestEpoch | None
    attempts: int
    error: RunError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_id: uuid.UUID | None
    parent_model_id: uuid.UUID | None = Field(
        description="The model this run was warm-started from (init_from_model_id), else null. "
        "Its progress counts on from that model's epochs: `progress.epoch` starts at them, "
        "`progress.epochs` is them plus `spec.epochs`, `fraction` is this run's share done."
    )
    sweep_id: uuid.UUID | None = Field(
        default=None, description="The sweep this run is a trial of, else null"
    )

    @classmethod
    def from_row(cls, run: Any) -> RunOut:
        return cls(
            id=run.id,
            name=run.name,
            dataset_id=run.dataset_id,
            status=run.status.value,
            spec=run.spec,
            progress=Progress(
                epoch=run.epoch,
                epochs=run.epochs,
                fraction=run.fraction,
                eta_seconds=run.eta_seconds,
            ),
            latest=dict(run.latest_metrics or {}),
            best=(
                BestEpoch(epoch=run.best_epoch, loss=run.best_loss, metrics=run.best_metrics or {})
                if run.best_epoch is not None and run.best_loss is not None
                else None
            ),
            attempts=run.attempts,
            error=(
                RunError(code=run.error_code, message=run.error_message or "")
                if run.error_code
                else None
            ),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            model_id=run.model_id,
            parent_model_id=run.init_model_id,
            sweep_id=run.sweep_id,
        )


class RunStatusEvent(BaseModel):
    """The data of an SSE ``status`` event."""

    status: RunStatusName
    error: RunError | None
    model_id: uuid.UUID | None


class RunPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.RUN_PAGE))

    items: list[RunOut]
    next_cursor: str | None


class EpochOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.EPOCH))

    epoch: int
    train_loss: float
    val_loss: float | None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    learning_rate: float
    seconds: float
    metrics: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> EpochOut:
        return cls(
            epoch=row.epoch,
            train_loss=row.train_loss,
            val_loss=row.val_loss,
            train_accuracy=row.train_accuracy,
            val_accuracy=row.val_accuracy,
            learning_rate=row.learning_rate,
            seconds=row.seconds,
            metrics=row.metrics,
        )


class HistoryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.HISTORY))

    run_id: uuid.UUID
    epochs: list[EpochOut]


class CancelOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.CANCEL))

    status: Literal["cancelling", "cancelled"]


# ---------------------------------------------------------------------------------------------
# Models


class ModelInput(BaseModel):
    feature_names: list[str]
    feature_types: list[FeatureType]
    n_features: int
    # Image models: {"image_size", "color_mode"}; predict also takes the pictures themselves.
    image: dict[str, int | str] | None = None


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=examples(ex.MODEL))

    id: uuid.UUID
    run_id: uuid.UUID
    task: Task
    input: ModelInput
    classes: list[int | str | float] | None
    metrics: dict[str, Any]
    weights_sha256: str
    size_bytes: int
    created_at: datetime


Value = float | int | str | bool | None


class ModelPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.MODEL_PAGE))

    items: list[ModelOut]
    next_cursor: str | None


class DataframeSplit(BaseModel):
    columns: list[str] | None = None
    data: list[list[Value]]


class PredictIn(BaseModel):
    """Exactly one of the fields. Documented here; parsed by hand (orjson -> numpy) for speed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(*ex.PREDICT_IN),
    )

    inputs: list[list[Value]] | None = Field(None, description="Rows in feature order")
    records: list[dict[str, Value]] | None = Field(None, description="Rows keyed by feature name")
    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, Value]] | None = None
    instances: list[list[Value] | dict[str, Value]] | None = None


class PredictOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.PREDICT_OUT))

    model_id: uuid.UUID
    predictions: list[int | float | str]
    probabilities: list[list[float]] | None
    classes: list[int | float | str] | None
