"""Response (and request) models: the JSON contract of API.md, validated at the edge."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from store.tables import DatasetFormat, Task


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    format: DatasetFormat
    n_rows: int
    n_features: int
    feature_names: list[str]
    feature_types: list[Literal["numeric", "categorical"]]
    label: str
    task: Task
    classes: list[int | str] | None
    sha256: str
    size_bytes: int
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ok"]
    checks: dict[str, str]


class VersionOut(BaseModel):
    version: str
    git_sha: str | None
    numpy: str
    python: str
