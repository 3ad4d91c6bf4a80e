"""Task inference (models.split.call_task, the one rule the core and the trainer apply):
whole-number labels are classes when their values repeat enough or are repeated consecutive
codes, else a quantity; a close call in either direction carries a note naming the spec
override; text, bools and fractions are never in doubt."""

from __future__ import annotations

import numpy as np
import pytest

from models.spec import MAX_CLASSES
from models.split import (
    FEW_CLASSES,
    MIN_ROWS_PER_CLASS,
    call_task,
    infer_task,
    task_note,
)
from models.vocabulary import Task

CLS, REG = Task.classification, Task.regression
rng = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("y", "task", "noted"),
    [
        # Clear classes: few values, many rows each (iris, digits, ratings); no note.
        (np.repeat([0, 1, 2], 50), CLS, False),
        (np.repeat(np.arange(10), 30), CLS, False),
        (np.repeat([3, 4, 5, 6, 7, 8], 40).astype(np.float64), CLS, False),  # wine quality
        (np.array([0, 1, 1]), CLS, False),  # two values: always classes
        (np.array([5, 9] * 2), CLS, False),
        # Clear quantities: fractions, or whole numbers that hardly repeat; no note.
        (np.arange(30) / 7, REG, False),
        (np.arange(30), REG, False),  # id-like: every value once
        (rng.integers(0, 100_000, 500), REG, False),  # prices in whole dollars
        (np.repeat(np.arange(MAX_CLASSES + 1) * 3, 12), REG, False),  # past the class limit
        (np.array([2.0**60, 2.0**60 + 2**10, 0.0] * 20), REG, False),  # past exact integers
        # Close calls: classes, said why.
        (np.repeat(np.arange(150), 6), CLS, True),  # codes 0..149, 6 rows each
        (np.repeat(np.arange(1, 41), 3), CLS, True),  # 1-based codes, 3 rows each
        (rng.integers(18, 91, 1000), CLS, True),  # ages 18..90: 73 values, ~14 rows each
        # Close calls: quantities, said why.
        (np.repeat(np.arange(101) * 7, 3), REG, True),  # 101 spaced values, 3 rows each
        (np.repeat([10, 20, 40, 80], 5), REG, True),  # few values, not codes, 5 rows each
    ],
)
def test_whole_number_calls(y: np.ndarray, task: Task, noted: bool) -> None:
    call = call_task(y)
    assert call.task is task
    assert infer_task(y) == (task, len(np.unique(y)))
    assert (call.note is not None) is noted, call.note
    assert task_note(y) == call.note


def test_the_thresholds_at_their_edges() -> None:
    k = FEW_CLASSES + 5  # spaced values (not codes): only the rows per value decide
    values = np.arange(k) * 5 + 100
    at = np.repeat(values, MIN_ROWS_PER_CLASS)
    below = np.concatenate([np.repeat(values[:-1], MIN_ROWS_PER_CLASS), values[-1:]])
    assert call_task(at).task is CLS and call_task(below).task is REG
    # Codes: 2 rows a value on average, not every value repeated.
    codes = np.array([0, 0, 1, 2, 2, 2])
    assert call_task(codes).task is CLS
    assert call_task(np.array([0, 1, 2, 3, 3])).task is REG  # 1.25 rows a value
    assert call_task(np.array([0, 2, 3, 3, 0, 2])).task is REG  # 1 is missing: not codes
    # Few values, many rows: classes without a note; past FEW_CLASSES the same gets one.
    few = np.repeat(np.arange(FEW_CLASSES) * 3 + 1, MIN_ROWS_PER_CLASS)
    many = np.repeat(np.arange(FEW_CLASSES + 1) * 3 + 1, MIN_ROWS_PER_CLASS)
    assert call_task(few).note is None and call_task(many).note is not None
    # The class limit itself: codes up to it are classes, past it values.
    assert call_task(np.repeat(np.arange(MAX_CLASSES), 2)).task is CLS
    assert call_task(np.repeat(np.arange(MAX_CLASSES + 1), 2)).task is REG


def test_notes_say_why_and_how_to_override() -> None:
    ages = call_task(np.repeat(np.arange(18, 91), 14))
    assert ages.task is CLS and ages.note is not None
    assert "73 distinct values" in ages.note and "14.0 rows each" in ages.note
    assert '"task": "regression"' in ages.note
    codes = call_task(np.repeat(np.arange(150), 6))
    assert codes.note is not None and "0..149" in codes.note and "class codes" in codes.note
    spaced = call_task(np.repeat(np.arange(101) * 7, 3))
    assert spaced.note is not None and "101 distinct values" in spaced.note
    assert "(regression)" in spaced.note and '"task": "classification"' in spaced.note


def test_text_bools_and_multi_output_are_not_in_doubt() -> None:
    assert call_task(np.array(["b", "a", "b"])) == call_task(np.array(["a", "b", "a"]))
    text = call_task(np.array([str(i) for i in range(500)]))
    assert text.task is CLS and text.n_unique == 500 and text.note is None
    assert call_task(np.array([True, False, True])).task is CLS
    multi = call_task(np.zeros((10, 2)))
    assert multi.task is REG and multi.note is None
    column = call_task(np.repeat([0, 1, 2], 10).reshape(-1, 1))  # one column: as 1-D
    assert column.task is CLS
