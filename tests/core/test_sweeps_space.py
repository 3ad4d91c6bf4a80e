"""core.sweeps.space: grid order and size, random reproducibility, the caps, dotted fields."""

from __future__ import annotations

import math

import pytest

from core.errors import InvalidInput
from core.sweeps.space import MAX_TRIALS, apply, expand, parse_space


def test_grid_is_the_cartesian_product_keys_in_order_last_fastest() -> None:
    space = {"optimizer.learning_rate": [0.1, 0.01], "layers": [[{"units": 4}], [{"units": 8}]],
             "batch_size": [16, 32, 64]}  # fmt: skip
    trials = expand(parse_space(space, "grid"), "grid", n_trials=None, seed=0)
    assert len(trials) == 12
    assert trials[0] == {"optimizer.learning_rate": 0.1, "layers": [{"units": 4}], "batch_size": 16}
    assert trials[1]["batch_size"] == 32 and trials[3]["layers"] == [{"units": 8}]
    assert trials[6]["optimizer.learning_rate"] == 0.01
    assert len({str(sorted(t.items())) for t in trials}) == 12


def test_random_is_reproducible_from_its_seed_and_stays_in_range() -> None:
    space = {
        "optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "optimizer.momentum": {"uniform": [0.5, 0.9]},
        "batch_size": {"int_uniform": [8, 10]},
        "optimizer.name": ["sgd", "adam"],
    }
    dims = parse_space(space, "random")
    first = expand(dims, "random", n_trials=30, seed=7)
    assert first == expand(dims, "random", n_trials=30, seed=7)
    assert first != expand(dims, "random", n_trials=30, seed=8)
    for t in first:
        assert 1e-4 <= t["optimizer.learning_rate"] <= 1e-1
        assert 0.5 <= t["optimizer.momentum"] <= 0.9
        assert t["batch_size"] in (8, 9, 10) and isinstance(t["batch_size"], int)
    assert {t["batch_size"] for t in first} == {8, 9, 10}
    assert {t["optimizer.name"] for t in first} == {"sgd", "adam"}
    # log-uniform: about as many draws below the geometric middle as above it
    below = sum(t["optimizer.learning_rate"] < math.sqrt(1e-5) for t in first)
    assert 5 <= below <= 25


@pytest.mark.parametrize(
    ("space", "method", "n_trials", "code", "field"),
    [
        ({"epochs": list(range(1, 11)), "batch_size": list(range(1, 102))}, "grid", None,
         "too_many_trials", "search.space"),
        ({"epochs": [1]}, "random", MAX_TRIALS + 1, "too_many_trials", "search.n_trials"),
        ({"epochs": [1]}, "random", None, "invalid_search", "search.n_trials"),
        ({"epochs": {"uniform": [1, 2]}}, "grid", None, "invalid_search", "search.space.epochs"),
        ({"x": {"log_uniform": [0, 1]}}, "random", 2, "invalid_search", "search.space.x"),
        ({"x": {"uniform": [2, 1]}}, "random", 2, "invalid_search", "search.space.x"),
        ({"x": {"int_uniform": [1, 2.5]}}, "random", 2, "invalid_search", "search.space.x"),
        ({"x": []}, "grid", None, "invalid_search", "search.space.x"),
        ({}, "grid", None, "invalid_search", "search.space"),
        ({"optimizer": [{}], "optimizer.name": ["sgd"]}, "grid", None, "invalid_search",
         "search.space.optimizer.name"),
        ({"a..b": [1]}, "grid", None, "invalid_search", "search.space.a..b"),
    ],
)  # fmt: skip
def test_bad_spaces_are_422_naming_the_field(
    space: dict[str, object], method: str, n_trials: int | None, code: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        expand(parse_space(space, method), method, n_trials=n_trials, seed=0)  # type: ignore[arg-type]
    assert caught.value.code == code and caught.value.details["field"] == field


def test_apply_sets_dotted_fields_without_touching_the_base() -> None:
    base = {"optimizer": {"name": "adam"}, "epochs": 3}
    spec = apply(base, {"optimizer.learning_rate": 0.1, "schedule.name": "cosine", "epochs": 5})
    assert spec == {"optimizer": {"name": "adam", "learning_rate": 0.1},
                    "schedule": {"name": "cosine"}, "epochs": 5}  # fmt: skip
    assert base == {"optimizer": {"name": "adam"}, "epochs": 3}
    with pytest.raises(InvalidInput) as caught:
        apply(base, {"epochs.value": 1})
    assert caught.value.details["field"] == "search.space.epochs.value"
