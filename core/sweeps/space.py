"""The search space of a sweep and its expansion into trials (pure: no database).

Keys are dotted TrainingSpec fields (``optimizer.learning_rate``; ``layers`` replaces the whole
list). Grid: every value is a list; the trials are the cartesian product, keys in the order
given, the last key varying fastest. Random: lists (a uniform choice), ``uniform``,
``log_uniform`` and ``int_uniform`` (both ends included) ranges; ``n_trials`` draws from one
generator seeded by the sweep's seed, so the same seed gives the same trials.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.errors import InvalidInput, quote

MAX_TRIALS = 1_000
MAX_DIMENSIONS = 20
MAX_CHOICES = 1_000
RANGES = ("uniform", "log_uniform", "int_uniform")

Method = Literal["grid", "random"]


@dataclass(frozen=True)
class Dimension:
    key: str  # dotted spec field
    choices: list[Any] | None = None  # a list
    kind: str | None = None  # one of RANGES
    low: float = 0.0
    high: float = 0.0


def _invalid(message: str, key: str | None, **details: Any) -> InvalidInput:
    field = "search.space" if key is None else f"search.space.{key}"
    return InvalidInput(message, {"field": field, **details}, code="invalid_search")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dimension(key: str, value: Any, method: Method) -> Dimension:
    if not key or any(not part for part in key.split(".")):
        raise _invalid(f"{quote(key)} is not a dotted spec field", key)
    if isinstance(value, list):
        if not 1 <= len(value) <= MAX_CHOICES:
            raise _invalid(f"{key}: give 1 to {MAX_CHOICES} values", key, count=len(value))
        return Dimension(key, choices=list(value))
    if method == "grid":
        raise _invalid(f"{key}: a grid takes a list of values", key)
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in RANGES):
        raise _invalid(f"{key}: a list of values, or one of {', '.join(RANGES)}: [low, high]", key)
    kind, bounds = next(iter(value.items()))
    numbers = isinstance(bounds, list) and len(bounds) == 2
    numbers = numbers and all(
        isinstance(b, int | float) and not isinstance(b, bool) for b in bounds
    )
    if not numbers or not all(math.isfinite(b) for b in bounds) or bounds[0] > bounds[1]:
        raise _invalid(f"{key}: {kind} takes [low, high] with low <= high", key)
    low, high = float(bounds[0]), float(bounds[1])
    if kind == "log_uniform" and low <= 0:
        raise _invalid(f"{key}: log_uniform needs low > 0", key)
    if kind == "int_uniform" and not all(float(b).is_integer() for b in bounds):
        raise _invalid(f"{key}: int_uniform takes whole numbers", key)
    return Dimension(key, kind=kind, low=low, high=high)


def parse_space(space: dict[str, Any], method: Method) -> list[Dimension]:
    if not 1 <= len(space) <= MAX_DIMENSIONS:
        raise _invalid(f"the space needs 1 to {MAX_DIMENSIONS} keys", None, count=len(space))
    dims = [_dimension(key, value, method) for key, value in space.items()]
    keys = [d.key for d in dims]
    for a, b in itertools.permutations(keys, 2):
        if b.startswith(f"{a}."):  # one key inside another: which would win is unclear
            raise _invalid(f"{b} lies inside {a}; give one of them", b)
    return dims


def grid_size(dims: list[Dimension]) -> int:
    return math.prod(len(d.choices or ()) for d in dims)


def expand(
    dims: list[Dimension], method: Method, *, n_trials: int | None, seed: int
) -> list[dict[str, Any]]:
    """The trials' parameters (dotted key -> value), in a stable order; capped at MAX_TRIALS."""
    if method == "grid":
        size = grid_size(dims)
        if size > MAX_TRIALS:
            raise InvalidInput(
                f"the grid has {size} trials, more than the limit of {MAX_TRIALS}",
                {"field": "search.space", "trials": size, "limit": MAX_TRIALS},
                code="too_many_trials",
            )
        keys = [d.key for d in dims]
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(d.choices or () for d in dims))
        ]
    if n_trials is None or not 1 <= n_trials <= MAX_TRIALS:
        raise InvalidInput(
            f"random search needs n_trials between 1 and {MAX_TRIALS}",
            {"field": "search.n_trials", "limit": MAX_TRIALS},
            code="too_many_trials" if n_trials is not None else "invalid_search",
        )
    rng = np.random.default_rng(seed)
    return [{d.key: _draw(d, rng) for d in dims} for _ in range(n_trials)]


def _draw(d: Dimension, rng: np.random.Generator) -> Any:
    if d.choices is not None:
        return copy.deepcopy(d.choices[int(rng.integers(len(d.choices)))])
    if d.kind == "uniform":
        return float(rng.uniform(d.low, d.high))
    if d.kind == "log_uniform":
        return float(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
    return int(rng.integers(int(d.low), int(d.high) + 1))


def apply(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base spec with each dotted field set. A path through a value that is not an object
    is refused (422 naming the key)."""
    spec = copy.deepcopy(base)
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = spec
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _invalid(f"{key}: spec.{part} is not an object", key)
            node = child
        node[leaf] = copy.deepcopy(value)
    return spec
