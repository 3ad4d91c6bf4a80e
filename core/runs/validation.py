"""Spec validation against a dataset: parse, resolve every default, count parameters and
FLOPs, estimate the time. Reads only the dataset row, never its blob; a warm start also loads
its model, whose fit is checked by the engine's own rules (models.warm_start)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from core import predictions
from core.config import Settings
from core.errors import MAX_LISTED_ERRORS, InvalidInput, NotFound, field_path
from models import Model as LoadedModel
from models import (
    SpecError,
    TrainingSpec,
    count_parameters,
    flops_per_epoch,
    parse_spec,
    resolve_spec,
    warm_start,
)
from models.split import single_sample_message, training_rows
from models.vocabulary import FeatureType, Task
from store import datasets as dataset_store
from store.tables import Dataset


@dataclass(frozen=True)
class SpecCheck:
    spec: TrainingSpec  # resolved
    n_inputs: int
    n_outputs: int
    n_parameters: int
    flops_per_epoch: int
    estimated_seconds: float
    warnings: list[str] = field(default_factory=list)


def _validation_error(exc: ValidationError) -> InvalidInput:
    found = exc.errors()
    errors = [
        {"field": field_path(e.get("loc", ())), "message": e.get("msg", "")}
        for e in found[:MAX_LISTED_ERRORS]
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid"}
    path = f"spec.{first['field']}" if first["field"] else "spec"
    return InvalidInput(
        f"invalid field {path!r}: {first['message']}",
        {"field": path, "errors": errors, "error_count": len(found)},
        code="invalid_spec",
    )


def _spec_error(exc: SpecError) -> InvalidInput:
    return InvalidInput(
        exc.message, {**exc.details, "field": f"spec.{exc.field}"}, code="invalid_spec"
    )


def _classes_of_whole_numbers(dataset: Dataset) -> tuple[list[int], list[int]]:
    """A regression dataset asked to be classes: its labels must be whole numbers (each one a
    class); which, and their rows, from the profile computed at upload."""
    label = (dataset.profile or {}).get("label", {})
    if not label.get("integral"):
        raise InvalidInput(
            "task 'classification' needs labels that are classes: text, or whole numbers; "
            "this dataset's labels have fractions",
            {"field": "spec.task"},
            code="invalid_spec",
        )
    counted = label.get("value_counts")
    if counted is None:  # more distinct values than any classifier takes
        return list(range(int(label["n_unique"]))), []
    return [int(v) for v, _ in counted], [int(n) for _, n in counted]


def check_spec(
    dataset: Dataset,
    raw_spec: dict[str, Any] | None,
    settings: Settings,
    *,
    parent: LoadedModel | None = None,
) -> SpecCheck:
    """Parse + resolve a spec against a dataset (and the model a warm start begins from);
    InvalidInput (422) names the field.

    A warm start's spec defaults to its model's: each top-level field left out is the model's
    (whole), so ``{"epochs": 10}`` trains the same network on, with the same optimizer."""
    if parent is not None:
        raw_spec = {**parent.spec.model_dump(mode="json"), **(raw_spec or {})}
    try:
        parsed = parse_spec(raw_spec or {})
    except ValidationError as exc:
        raise _validation_error(exc) from None
    classes = dataset.classes or []
    n_classes = len(classes)
    numeric_labels = dataset.task == Task.regression or all(
        isinstance(c, int | float) and not isinstance(c, bool) for c in classes
    )
    counts = dataset.class_counts
    if parsed.task == Task.classification and dataset.task == Task.regression:
        classes, counts = _classes_of_whole_numbers(dataset)
        n_classes = len(classes)
    try:
        resolved = resolve_spec(
            parsed,
            task=dataset.task,
            n_classes=n_classes,
            numeric_labels=numeric_labels,
            classes=classes or None,
        )
    except SpecError as exc:
        raise _spec_error(exc) from None
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if resolved.preprocessing.impute == "none" and dataset.missing:
        column, count = next(iter(dataset.missing.items()))
        raise InvalidInput(
            f"preprocessing.impute is 'none' but the dataset has missing values "
            f"({count} in column {column!r}, {len(dataset.missing)} column(s) in all); "
            "use 'median' or 'mean', or upload the data without gaps",
            {"field": "spec.preprocessing.impute", "missing": dataset.missing},
            code="invalid_spec",
        )
    warnings: list[str] = []
    # A warm start's network is its model's: that model's preprocessing sets the input width.
    n_inputs = dataset.n_inputs
    if parent is not None:
        warnings += _check_parent(parent, dataset, resolved, classes)
        n_inputs = parent.preprocessor.n_inputs
    if resolved.task == "classification":
        n_outputs = 1 if resolved.loss == "binary_crossentropy" else n_classes
    else:
        n_outputs = 1
    n_parameters = count_parameters(resolved, n_inputs, n_outputs)
    if n_parameters > settings.max_parameters:
        raise InvalidInput(
            f"the network has {n_parameters} parameters, more than the limit of "
            f"{settings.max_parameters}; use fewer or smaller layers",
            {
                "field": "spec.layers",
                "n_parameters": n_parameters,
                "limit": settings.max_parameters,
            },
            code="too_many_parameters",
        )
    stratified = resolved.task == Task.classification
    counts = counts if stratified else None
    if counts and resolved.validation_split > 0:
        _require_two_per_class(classes, counts)
    n_train = training_rows(dataset.n_rows, counts, resolved.validation_split)
    flops = flops_per_epoch(resolved, n_inputs, n_outputs, n_train)
    estimated = flops * resolved.epochs / settings.estimate_flops_per_second
    if resolved.batch_size > n_train:
        warnings.append(
            f"batch_size {resolved.batch_size} is larger than the {n_train} training rows; "
            "each epoch is one full batch"
        )
    if resolved.validation_split == 0.0:
        warnings.append("validation_split is 0: no validation metrics will be reported")
    elif dataset.n_rows - n_train < 10:
        warnings.append(f"the validation split holds only {dataset.n_rows - n_train} rows")
    if resolved.max_runtime_seconds is not None and estimated > resolved.max_runtime_seconds:
        warnings.append(
            f"estimated {estimated:.0f} s exceeds max_runtime_seconds; training may stop early"
        )
    return SpecCheck(
        spec=resolved,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        n_parameters=n_parameters,
        flops_per_epoch=flops,
        estimated_seconds=round(estimated, 3),
        warnings=warnings,
    )


def _require_two_per_class(classes: list[Any], counts: list[int]) -> None:
    for cls, count in zip(classes, counts, strict=True):
        if count < 2:
            raise InvalidInput(
                single_sample_message(cls),
                {"field": "spec.validation_split", "class": cls, "count": count},
                code="single_sample_class",
            )


INIT_FIELD = "init_from_model_id"


def parent_model(session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> LoadedModel:
    """The model a warm start begins from, loaded. Another tenant's model is answered like a
    missing one, and like a missing dataset_id: 422 naming the field."""
    try:
        row = predictions.get_weights(session, tenant_id=tenant_id, model_id=model_id)
    except NotFound:
        raise InvalidInput(
            "model not found",
            {"field": INIT_FIELD, "value": str(model_id)},
            code="model_not_found",
        ) from None
    return predictions.load_stored(row.blob, model_id)


def _check_parent(
    parent: LoadedModel, dataset: Dataset, spec: TrainingSpec, classes: list[Any]
) -> list[str]:
    """The engine's warm-start checks, run before anything is queued; returns warnings."""
    try:
        types = [FeatureType(t) for t in dataset.feature_types]
        warm_start.check_features(parent, list(dataset.feature_names), types)
        warm_start.check_spec(parent, spec)
        warm_start.check_classes(parent, spec.task or dataset.task, classes or None)
    except SpecError as exc:
        # The engine calls the model "init_model"; over HTTP it is init_from_model_id.
        field = INIT_FIELD if exc.field == "init_model" else f"spec.{exc.field}"
        reason = exc.message.removeprefix(f"{exc.field}: ")
        raise InvalidInput(
            f"cannot warm-start from this model: {reason}",
            {"field": field, "reason": reason},
            code="incompatible_init_model",
        ) from None
    old = parent.spec
    if (spec.seed, spec.validation_split) != (old.seed, old.validation_split):
        return [
            f"the model was trained with seed {old.seed} and validation_split "
            f"{old.validation_split}: on its own dataset, other values put some of its "
            "validation rows in this run's training split"
        ]
    return []


def dataset_for_run(session: Session, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    row = dataset_store.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    if row is None:
        raise InvalidInput(
            "dataset not found",
            {"field": "dataset_id", "value": str(dataset_id)},
            code="dataset_not_found",
        )
    return row


def validate_run(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    dataset_id: uuid.UUID,
    spec: dict[str, Any] | None,
    settings: Settings,
    init_model_id: uuid.UUID | None = None,
) -> SpecCheck:
    dataset = dataset_for_run(session, tenant_id, dataset_id)
    parent = None if init_model_id is None else parent_model(session, tenant_id, init_model_id)
    return check_spec(dataset, spec, settings, parent=parent)
