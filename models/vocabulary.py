"""Names shared by the engine, the service and the tables: defined here once."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    classification = "classification"
    regression = "regression"


class FeatureType(StrEnum):
    numeric = "numeric"
    categorical = "categorical"
