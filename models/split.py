"""Rules about labels and rows that the service applies before training and the trainer applies
during it, defined once: which task a label suggests, and how rows split for validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import DataError
from models.spec import MAX_CLASSES
from models.types import Array
from models.vocabulary import Task

# Whole-number labels are classes when each value is on this many rows on average (a few
# values, each often seen: ratings, codes, digits), up to the class limit...
MIN_ROWS_PER_CLASS = 10
# ... or when they are consecutive codes (0..k-1 or 1..k) that repeat (this many rows each on
# average).
MIN_ROWS_PER_CODE = 2
# Classes inferred from more distinct whole numbers than this are a close call (an age, a
# count, a year): the upload answer says so.
FEW_CLASSES = 20


@dataclass(frozen=True)
class TaskCall:
    """The task labels suggest, and for whole numbers why (``note``, when the call is close)."""

    task: Task
    n_unique: int
    note: str | None = None


def infer_task(y: Array) -> tuple[Task, int]:
    """Classification for text/bool labels and for whole numbers that look like classes
    (``call_task``); else regression. Also the number of distinct values."""
    call = call_task(y)
    return call.task, call.n_unique


def task_note(y: Array) -> str | None:
    """Why whole-number labels were taken as classes or as values, when the call is a close
    one and the user may want the other (spec ``task`` overrides it); else None."""
    return call_task(y).note


def call_task(y: Array) -> TaskCall:
    if y.ndim == 2 and y.shape[1] > 1:
        return TaskCall(Task.regression, 0)
    flat = y.reshape(-1)
    if flat.dtype.kind not in "biufc":
        return TaskCall(Task.classification, len(np.unique(flat.astype(str))))
    values = np.unique(flat)
    n_unique = len(values)
    # Floats past 2**53 are not exact integers: such labels are values, not classes. Checked on
    # the distinct values: the same answer, without temporaries the size of the labels.
    integral = flat.dtype.kind in "biu" or (
        bool(np.all(np.mod(values, 1) == 0)) and bool(np.all(np.abs(values) < 2**53))
    )
    if not integral:
        return TaskCall(Task.regression, n_unique)
    if n_unique <= 2:
        return TaskCall(Task.classification, n_unique)
    per_value = len(flat) / n_unique
    codes = bool(values[0] in (0, 1) and values[-1] - values[0] == n_unique - 1)
    seen = f"{n_unique} distinct values, {per_value:.1f} rows each on average"
    if n_unique <= MAX_CLASSES and per_value >= MIN_ROWS_PER_CLASS:
        if n_unique <= FEW_CLASSES:
            return TaskCall(Task.classification, n_unique)
        why = f"the label holds whole numbers with {seen}, so each value is taken as a class"
        return TaskCall(Task.classification, n_unique, _as(why, Task.regression, "a quantity"))
    if n_unique <= MAX_CLASSES and codes and per_value >= MIN_ROWS_PER_CODE:
        why = (
            f"the label holds whole numbers {int(values[0])}..{int(values[-1])} with {seen}, "
            "so they are taken as class codes"
        )
        return TaskCall(Task.classification, n_unique, _as(why, Task.regression, "a quantity"))
    if n_unique > MAX_CLASSES or per_value < MIN_ROWS_PER_CODE:
        return TaskCall(Task.regression, n_unique)  # mostly distinct: values, not a close call
    why = (
        f"the label holds whole numbers with {seen}, too few for classes ({MIN_ROWS_PER_CLASS} "
        "a value, or consecutive codes from 0 or 1), so it is treated as a quantity to predict "
        "(regression)"
    )
    return TaskCall(Task.regression, n_unique, _as(why, Task.classification, "classes"))


def _as(why: str, other: Task, meaning: str) -> str:
    return f'{why}; to learn them as {meaning} instead, submit the run with spec "task": "{other}"'


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
