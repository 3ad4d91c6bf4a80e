"""Rules about labels and rows that the service applies before training and the trainer applies
during it, defined once: which task a label suggests, and how rows split for validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.errors import DataError
from models.types import Array
from models.vocabulary import Task

# Integer labels with at most this many distinct values (and at most half the rows) are classes.
MAX_INFERRED_CLASSES = 100


def infer_task(y: Array) -> tuple[Task, int]:
    """Classification for text/bool labels and few integer values; else regression."""
    if y.ndim == 2 and y.shape[1] > 1:
        return Task.regression, 0
    flat = y.reshape(-1)
    if flat.dtype.kind in "biufc":
        n_unique = len(np.unique(flat))
        # Floats past 2**53 are not exact integers: such labels are values, not classes.
        integral = flat.dtype.kind in "biu" or (
            bool(np.all(np.mod(flat, 1) == 0)) and bool(np.all(np.abs(flat) < 2**53))
        )
        few = n_unique <= MAX_INFERRED_CLASSES and n_unique <= max(2, len(flat) // 2)
        return (Task.classification if integral and few else Task.regression), n_unique
    return Task.classification, len(np.unique(flat.astype(str)))


def task_note(y: Array) -> str | None:
    """Why integer labels were taken as values, when classes were possible: the call is a
    close one, and the user may want the other (spec ``task`` overrides it)."""
    task, n_unique = infer_task(y)
    if task is Task.classification or (y.ndim == 2 and y.shape[1] > 1):
        return None
    flat = y.reshape(-1)
    if flat.dtype.kind not in "biu" and not bool(np.all(np.mod(flat, 1) == 0)):
        return None
    why = (
        f"more than {MAX_INFERRED_CLASSES}"
        if n_unique > MAX_INFERRED_CLASSES
        else f"more than half of the {len(flat)} rows"
    )
    return (
        f"the label holds whole numbers with {n_unique} distinct values ({why}), so it is "
        "treated as a quantity to predict (regression); to learn them as classes instead, "
        'submit the run with spec "task": "classification"'
    )


def validation_rows(group_size: int, fraction: float) -> int:
    """Rows of one stratum (a class, or the whole set) that go to validation."""
    if fraction == 0.0:
        return 0
    return min(max(1, round(group_size * fraction)), group_size - 1)


def training_rows(n_rows: int, class_counts: Sequence[int] | None, fraction: float) -> int:
    """Exactly how many rows `split_indices` leaves for training."""
    groups = class_counts if class_counts else [n_rows]
    return n_rows - sum(validation_rows(g, fraction) for g in groups)


def single_sample_message(cls: Any) -> str:
    return (
        f"class {cls!r} has a single sample; a stratified validation split needs at least 2 "
        "per class (or set validation_split to 0)"
    )


def split_indices(
    n: int,
    labels: Array | None,
    fraction: float,
    rng: np.random.Generator,
    classes: Sequence[Any] | None = None,
) -> tuple[Array, Array]:
    """Validation split, stratified by class when `labels` (class indices into `classes`) is
    given; both index sets sorted."""
    if fraction == 0.0:
        return np.arange(n), np.arange(0)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    val: list[Array] = []
    for group in groups:
        if labels is not None and len(group) < 2:
            index = int(labels[group[0]])
            raise DataError(single_sample_message(classes[index] if classes else index))
        val.append(rng.permutation(group)[: validation_rows(len(group), fraction)])
    val_idx = np.sort(np.concatenate(val))
    train_mask = np.ones(n, dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx
