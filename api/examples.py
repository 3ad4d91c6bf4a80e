"""Examples for the OpenAPI document: one plausible body per request and response model (the
models in api.schemas, api.sweep_schemas and api.routes.registry carry them; api.app lifts
each model's first example onto the operations that use it). Data only: tests/api check that
every example validates against its model."""

from __future__ import annotations

from typing import Any

DATASET_ID = "8c3f2a1e-5b7d-4e8a-9c1f-2d3e4f5a6b7c"
RUN_ID = "5d1e7c3b-2a9f-4c8e-b6d4-1f0a3e2c7b9d"
MODEL_ID = "3f6b0c2d-9a4e-4b1f-8c7d-5e2a1b0c9d8e"
SWEEP_ID = "a7c2e9f1-4b3d-4e6a-8f1c-9d2b5e7a0c3f"
KEY_ID = "e1d2c3b4-a596-4788-9a0b-1c2d3e4f5a6b"
CREATED = "2026-01-15T09:30:00Z"
STARTED = "2026-01-15T09:30:02Z"
FINISHED = "2026-01-15T09:31:10Z"

SPEC: dict[str, Any] = {
    "layers": [{"units": 64, "activation": "relu"}],
    "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
    "epochs": 20,
    "batch_size": 32,
    "validation_split": 0.2,
    "seed": 0,
}

HEALTH: dict[str, Any] = {"status": "ok"}
READY: dict[str, Any] = {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
VERSION: dict[str, Any] = {
    "version": "0.1.0",
    "git_sha": "4e1c2b7",
    "numpy": "2.2.1",
    "python": "3.12.8",
}

DATASET: dict[str, Any] = {
    "id": DATASET_ID,
    "name": "iris.csv",
    "format": "csv",
    "n_rows": 150,
    "n_features": 4,
    "feature_names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "feature_types": ["numeric", "numeric", "numeric", "numeric"],
    "label": "species",
    "task": "classification",
    "task_note": None,
    "classes": ["setosa", "versicolor", "virginica"],
    "missing": {},
    "image_shape": None,
    "sha256": "9f2d0c5e8a1b4c7d3e6f9a2b5c8d1e4f7a0b3c6d9e2f5a8b1c4d7e0f3a6b9c2d",
    "size_bytes": 4551,
    "created_at": CREATED,
}
DATASET_PAGE: dict[str, Any] = {"items": [DATASET], "next_cursor": None}
PROFILE: dict[str, Any] = {
    "n_rows": 150,
    "columns": [
        {"name": "sepal_length", "type": "numeric", "missing": 0, "min": 4.3, "max": 7.9,
         "mean": 5.843, "std": 0.828, "n_unique": 35},
        {"name": "colour", "type": "categorical", "missing": 2, "n_unique": 3,
         "top": [["red", 70], ["blue", 50], ["green", 28]]},
    ],
    "label": {"name": "species", "task": "classification",
              "distribution": [["setosa", 50], ["versicolor", 50], ["virginica", 50]]},
}  # fmt: skip
UPLOAD_FORM: dict[str, Any] = {"name": "iris", "label": "species"}

RUN_IN: list[dict[str, Any]] = [
    {"dataset_id": DATASET_ID, "name": "iris-mlp", "spec": SPEC},
    {
        "dataset_id": DATASET_ID,
        "name": "iris-mlp-10-more",
        "spec": {**SPEC, "epochs": 10},
        "init_from_model_id": MODEL_ID,
    },
]
LATEST: dict[str, Any] = {
    "train_loss": 0.0712,
    "val_loss": 0.0934,
    "train_accuracy": 0.975,
    "val_accuracy": 0.9667,
    "learning_rate": 0.01,
}
RUN: dict[str, Any] = {
    "id": RUN_ID,
    "name": "iris-mlp",
    "dataset_id": DATASET_ID,
    "status": "running",
    "spec": SPEC,
    "progress": {"epoch": 12, "epochs": 20, "fraction": 0.6, "eta_seconds": 4.1},
    "latest": LATEST,
    "best": {"epoch": 11, "loss": 0.0921, "metrics": {"val_accuracy": 0.9667}},
    "attempts": 1,
    "error": None,
    "created_at": CREATED,
    "started_at": STARTED,
    "finished_at": None,
    "model_id": None,
    "parent_model_id": None,
    "sweep_id": None,
}
RUN_PAGE: dict[str, Any] = {"items": [RUN], "next_cursor": None}
VALIDATE: dict[str, Any] = {
    "spec": SPEC,
    "n_parameters": 515,
    "flops_per_epoch": 369_600,
    "estimated_seconds": 0.8,
    "warnings": [],
}
EPOCH: dict[str, Any] = {
    "epoch": 1,
    "train_loss": 1.0421,
    "val_loss": 0.9875,
    "train_accuracy": 0.6083,
    "val_accuracy": 0.6333,
    "learning_rate": 0.01,
    "seconds": 0.012,
    "metrics": None,
}
HISTORY: dict[str, Any] = {
    "run_id": RUN_ID,
    "epochs": [EPOCH, {**EPOCH, "epoch": 2, "train_loss": 0.7312, "val_loss": 0.7024}],
}
CANCEL: dict[str, Any] = {"status": "cancelling"}
EVENTS = (
    "event: status\ndata: "
    '{"status":"running","error":null,"model_id":null}\n\n'
    f"event: epoch\nid: 1\ndata: "
    '{"epoch":1,"train_loss":1.0421,"val_loss":0.9875,"train_accuracy":0.6083,'
    '"val_accuracy":0.6333,"learning_rate":0.01,"seconds":0.012,"metrics":null}\n\n'
    ": ping\n\n"
    "event: status\ndata: "
    f'{{"status":"succeeded","error":null,"model_id":"{MODEL_ID}"}}\n\n'
)

MODEL: dict[str, Any] = {
    "id": MODEL_ID,
    "run_id": RUN_ID,
    "task": "classification",
    "input": {
        "feature_names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "feature_types": ["numeric", "numeric", "numeric", "numeric"],
        "n_features": 4,
        "image": None,
    },
    "classes": ["setosa", "versicolor", "virginica"],
    "metrics": {"val_loss": 0.0921, "val_accuracy": 0.9667},
    "weights_sha256": "1b4e7a0d3c6f9b2e5a8d1c4f7b0e3a6d9c2f5b8e1a4d7c0f3b6e9a2d5c8f1b4e",
    "size_bytes": 6214,
    "created_at": FINISHED,
}
MODEL_PAGE: dict[str, Any] = {"items": [MODEL], "next_cursor": None}
PREDICT_IN: list[dict[str, Any]] = [
    {"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
    {"records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                  "petal_width": 0.2}]},
    {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
                                     "petal_width"], "data": [[5.1, 3.5, 1.4, 0.2]]}},
]  # fmt: skip
PREDICT_OUT: dict[str, Any] = {
    "model_id": MODEL_ID,
    "predictions": ["setosa", "virginica"],
    "probabilities": [[0.97, 0.02, 0.01], [0.01, 0.08, 0.91]],
    "classes": ["setosa", "versicolor", "virginica"],
}
REGISTRY_PREDICT_OUT: dict[str, Any] = {**PREDICT_OUT, "name": "iris", "version": 2}

REGISTER_IN: dict[str, Any] = {"name": "iris"}
VERSION_IN: dict[str, Any] = {"model_id": MODEL_ID}
ALIAS_IN: dict[str, Any] = {"version": 2}
REGISTERED: dict[str, Any] = {
    "name": "iris",
    "created_at": CREATED,
    "versions": [
        {"version": 1, "model_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "created_at": CREATED},
        {"version": 2, "model_id": MODEL_ID, "created_at": FINISHED},
    ],
    "aliases": {"production": 2},
}
REGISTRY_LIST: dict[str, Any] = {"items": [{"name": "iris", "created_at": CREATED}]}
NEW_VERSION: dict[str, Any] = {"name": "iris", "version": 2, "model_id": MODEL_ID}
ALIAS_SET: dict[str, Any] = {"name": "iris", "alias": "production", "version": 2}
MOVES: list[dict[str, Any]] = [
    {"alias": "production", "from_version": None, "to_version": 1, "api_key_id": KEY_ID,
     "moved_at": CREATED},
    {"alias": "production", "from_version": 1, "to_version": 2, "api_key_id": KEY_ID,
     "moved_at": FINISHED},
]  # fmt: skip

SWEEP_IN: dict[str, Any] = {
    "dataset_id": DATASET_ID,
    "name": "iris-lr-width",
    "spec": {"epochs": 20, "optimizer": {"name": "adam"}},
    "search": {
        "method": "grid",
        "space": {
            "optimizer.learning_rate": [0.01, 0.003, 0.001],
            "layers": [[{"units": 64}], [{"units": 128}, {"units": 64}]],
        },
    },
    "metric": "val_accuracy",
    "mode": "max",
    "max_parallel": 4,
    "early_termination": {"type": "asha", "grace_epochs": 2, "reduction_factor": 3},
}
SWEEP_SUMMARY: dict[str, Any] = {
    "id": SWEEP_ID,
    "name": "iris-lr-width",
    "dataset_id": DATASET_ID,
    "status": "running",
    "metric": "val_accuracy",
    "mode": "max",
    "max_parallel": 4,
    "seed": None,
    "created_at": CREATED,
    "finished_at": None,
}
SWEEP: dict[str, Any] = {
    **SWEEP_SUMMARY,
    "search": SWEEP_IN["search"],
    "early_termination": SWEEP_IN["early_termination"],
    "trials": [
        {"run_id": RUN_ID, "trial": 0, "params": {"optimizer.learning_rate": 0.01,
         "layers": [{"units": 64}]}, "status": "succeeded", "best_value": 0.9667,
         "epochs_done": 20, "stopped_early": False},
    ],
    "best": {"run_id": RUN_ID, "model_id": MODEL_ID, "value": 0.9667,
             "params": {"optimizer.learning_rate": 0.01, "layers": [{"units": 64}]}},
}  # fmt: skip
SWEEP_PAGE: dict[str, Any] = {"items": [SWEEP_SUMMARY], "next_cursor": None}


def examples(*values: Any) -> dict[str, Any]:
    """``model_config`` json_schema_extra: the model's examples (JSON Schema ``examples``)."""
    return {"examples": list(values)}
