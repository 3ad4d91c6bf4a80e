"""The OpenAPI document is usable by tools: every operation shows a request example (when it
takes a body) and a success-response example, the examples fit their models, and the
TrainingSpec publishes its defaults, those of models.spec, factory-made ones included."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

import api.routes.registry as registry_routes
import api.schemas
import api.sweep_schemas
from api import examples as ex
from api.app import create_app
from core.config import Settings
from models.spec import TrainingSpec

# Bodies no example can stand for: a file's bytes.
BINARY = {"type": "string", "format": "binary"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    settings = Settings(database_url=f"sqlite:///{tmp / 'd.db'}", data_dir=tmp / "data")
    # Building the app connects to nothing; the document is built from the routes.
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def _has_example(media: dict[str, Any]) -> bool:
    return "example" in media or bool(media.get("examples"))


def test_every_operation_has_request_and_success_examples(document: dict[str, Any]) -> None:
    missing: list[str] = []
    operations = _operations(document)
    assert len(operations) >= 33
    for name, operation in operations:
        body = operation.get("requestBody")
        if body is not None:
            content = body["content"]
            # Every JSON body; a form (datasets, image predict) at least where it is the only one.
            if not any(_has_example(media) for media in content.values()):
                missing.append(f"{name}: request")
            missing += [
                f"{name}: request {kind}"
                for kind, media in content.items()
                if kind == "application/json" and not _has_example(media)
            ]
        successes = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
        assert successes, name
        for code, response in successes.items():
            content = response.get("content", {})
            if code == "204":
                assert not content, name  # no body, nothing to show
                continue
            assert content, f"{name}: {code} has no content"
            for kind, media in content.items():
                if media.get("schema") == BINARY:
                    continue
                if not _has_example(media):
                    missing.append(f"{name}: {code} {kind}")
    assert missing == []


def test_media_examples_are_the_models_examples(document: dict[str, Any]) -> None:
    run_in = document["paths"]["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]
    assert [e["value"] for e in run_in["examples"].values()] == ex.RUN_IN
    run_out = document["paths"]["/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"]
    assert run_out["application/json"]["example"] == ex.RUN
    upload = document["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["example"] == ex.UPLOAD_FORM
    events = document["paths"]["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]
    assert "event: epoch\nid: 1\n" in events["content"]["text/event-stream"]["example"]


def _models(module: ModuleType) -> list[type[BaseModel]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseModel)
        and value.__module__ == module.__name__
    ]


def test_every_example_fits_its_model() -> None:
    checked = 0
    for module in (api.schemas, api.sweep_schemas, registry_routes):
        for model in _models(module):
            extra = model.model_config.get("json_schema_extra")
            found = extra.get("examples") if isinstance(extra, dict) else None
            for example in found if isinstance(found, list) else []:
                model.model_validate(example)
                checked += 1
    assert checked >= 25
    # The examples the routes give by hand (no model of their own).
    TypeAdapter(list[registry_routes.MoveOut]).validate_python(ex.MOVES)
    registry_routes.AliasIn.model_validate({"version": ex.ALIAS_SET["version"]})
    api.schemas.PredictOut.model_validate(
        {k: v for k, v in ex.REGISTRY_PREDICT_OUT.items() if k not in ("name", "version")}
    )
    # Every spec shown is one the service takes.
    for spec in (ex.SPEC, *(body["spec"] for body in ex.RUN_IN), ex.SWEEP_IN["spec"]):
        TrainingSpec.model_validate(spec)


def test_training_spec_publishes_its_factory_defaults(document: dict[str, Any]) -> None:
    published = document["components"]["schemas"]["TrainingSpec"]["properties"]
    real = TrainingSpec().model_dump(mode="json")
    for field in ("layers", "optimizer", "schedule", "preprocessing"):
        assert published[field]["default"] == real[field], field
    # And the plain defaults, as pydantic publishes them.
    for field in ("epochs", "batch_size", "validation_split", "seed", "dtype", "shuffle"):
        assert published[field]["default"] == real[field], field
    # Still a schema of the model: the reference to the nested spec is kept beside the default.
    assert published["optimizer"]["$ref"] == "#/components/schemas/OptimizerSpec"
