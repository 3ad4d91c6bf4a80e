"""Real tables over HTTP, on both backends: a penguins-like CSV with NA in numeric and
categorical columns uploads (the dataset row counts the gaps), trains with the training split's
medians and indicators (read back from the downloaded weights), and predicts records with null;
preprocessing.impute "none" refuses such a dataset at submit, naming the field."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import polars as pl
from fastapi.testclient import TestClient

from core.config import Settings
from models.model import load_model
from models.split import split_indices
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import api, sent, submit, work

__all__ = ["api", "sent"]  # fixtures


def penguins_csv(n: int = 240, seed: int = 0) -> tuple[bytes, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], n)
    base = {"Adelie": 38.0, "Gentoo": 47.0, "Chinstrap": 49.0}
    bill = np.array([base[s] for s in species]) + rng.normal(0, 1.0, n)
    mass = np.array([{"Adelie": 3700, "Gentoo": 5000, "Chinstrap": 3700}[s] for s in species])
    mass = mass + rng.normal(0, 150, n)
    island = np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], n))
    frame = pl.DataFrame({"bill_mm": bill.round(1), "mass_g": mass.round(0), "island": island})
    gaps = rng.random((n, 3)) < [0.1, 0.05, 0.08]
    text = frame.with_columns(pl.all().cast(pl.String)).to_numpy().astype(object)
    text[gaps] = "NA"
    text[3, 0] = ""  # an empty cell too
    table = pl.DataFrame(text, schema=frame.columns, orient="row").with_columns(
        pl.Series("species", species)
    )
    buffer = io.BytesIO()
    table.write_csv(buffer)
    return buffer.getvalue(), table


def test_penguins_with_gaps_upload_train_and_predict(
    api: TestClient,
    tenant_key: str,
    db: Database,
    settings: Settings,
) -> None:
    content, table = penguins_csv()
    up = api.post("/v1/datasets", headers=bearer(tenant_key), files={"file": ("p.csv", content)})
    assert up.status_code == 201, up.text
    dataset = up.json()
    gaps = {c: int((table[c].is_in(["NA", ""])).sum()) for c in ("bill_mm", "mass_g", "island")}
    assert dataset["missing"] == gaps and all(gaps.values())
    assert dataset["feature_types"] == ["numeric", "numeric", "categorical"]

    spec = {"layers": [{"units": 16}], "epochs": 40, "validation_split": 0.0, "seed": 3,
            "optimizer": {"name": "adam", "learning_rate": 0.01}}  # fmt: skip
    run = submit(api, tenant_key, dataset["id"], spec).json()
    assert work(db, settings, run["id"]) == "succeeded"
    model_id = api.get(f"/v1/runs/{run['id']}", headers=bearer(tenant_key)).json()["model_id"]
    weights = api.get(f"/v1/models/{model_id}/weights", headers=bearer(tenant_key)).content
    model = load_model(weights)
    pre = model.preprocessor
    # validation_split 0: the training split is every row; its medians are polars' own.
    numbers = table.select(pl.col("bill_mm", "mass_g").replace(["NA", ""], None).cast(pl.Float64))
    np.testing.assert_allclose(pre.fill, numbers.median().row(0))
    assert pre.indicators == [0, 1] and pre.missing_slot == [True]
    with np.load(io.BytesIO(weights)) as arrays:  # documented: the weights carry the fill
        np.testing.assert_allclose(arrays["preprocessing.fill"], pre.fill)

    records = [
        {"bill_mm": None, "mass_g": 5000.0, "island": "Biscoe"},
        {"bill_mm": 38.5, "mass_g": None, "island": None},
    ]
    answer = api.post(
        f"/v1/models/{model_id}/predict", headers=bearer(tenant_key), json={"records": records}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    np.testing.assert_allclose(np.asarray(body["probabilities"]).sum(axis=1), 1.0, atol=1e-6)
    rows = np.array([[None, 5000.0, "Biscoe"], [38.5, None, None]], dtype=object)
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), atol=1e-6)
    assert body["predictions"] == ["Gentoo", "Adelie"]
    # NaN written bare (Python's json.dumps, pandas' to_json) is missing too, like null.
    bare = (
        b'{"records": [{"bill_mm": NaN, "mass_g": 5000.0, "island": "Biscoe"},'
        b' {"bill_mm": 38.5, "mass_g": NaN, "island": null}]}'
    )
    headers = {**bearer(tenant_key), "content-type": "application/json"}
    again = api.post(f"/v1/models/{model_id}/predict", headers=headers, content=bare)
    assert again.status_code == 200, again.text
    assert again.json() == body


def test_a_validation_split_fits_the_fill_and_indicators_on_the_training_rows_only(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    _, table = penguins_csv(200, seed=4)
    seed, fraction = 5, 0.25
    # The training rows as the trainer picks them: the seed's split stream, stratified by the
    # sorted classes.
    _, split_seq, _ = np.random.SeedSequence(seed).spawn(3)
    codes = np.unique(table["species"].to_numpy(), return_inverse=True)[1]
    train_idx, val_idx = split_indices(
        len(codes), codes, fraction, np.random.default_rng(split_seq)
    )
    in_val = np.zeros(len(codes), dtype=bool)
    in_val[val_idx] = True
    # mass_g has gaps in validation rows only (no indicator); validation rows are heavy, so
    # the all-rows median of mass_g is not the training rows' one.
    mass = table["mass_g"].replace(["NA", ""], None).cast(pl.Float64).fill_null(4000.0)
    mass = pl.Series(np.where(in_val, mass.to_numpy() + 2000.0, mass.to_numpy()))
    gaps = in_val & (np.arange(len(codes)) % 3 == 0)
    table = table.with_columns(
        mass_g=pl.when(pl.Series(gaps)).then(pl.lit("NA")).otherwise(mass.cast(pl.String))
    )
    buffer = io.BytesIO()
    table.write_csv(buffer)
    up = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("p.csv", buffer.getvalue())}
    )
    assert up.status_code == 201, up.text
    spec = {"layers": [{"units": 8}], "epochs": 2, "validation_split": fraction, "seed": seed}
    run = submit(api, tenant_key, up.json()["id"], spec).json()
    assert work(db, settings, run["id"]) == "succeeded"
    model_id = api.get(f"/v1/runs/{run['id']}", headers=bearer(tenant_key)).json()["model_id"]
    pre = load_model(
        api.get(f"/v1/models/{model_id}/weights", headers=bearer(tenant_key)).content
    ).preprocessor
    numbers = table.select(pl.col("bill_mm", "mass_g").replace(["NA", ""], None).cast(pl.Float64))
    np.testing.assert_allclose(pre.fill, numbers[train_idx].median().row(0))
    assert abs(pre.fill[1] - numbers["mass_g"].median()) > 100  # not the all-rows median
    assert numbers["bill_mm"][train_idx].null_count() > 0
    assert pre.indicators == [0]  # bill_mm only: mass_g's gaps are all in validation rows


def test_impute_none_refuses_a_dataset_with_gaps_at_submit(
    api: TestClient,
    tenant_key: str,
) -> None:
    content, _ = penguins_csv(60)
    dataset = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("p.csv", content)}
    ).json()
    refused = submit(api, tenant_key, dataset["id"], {"preprocessing": {"impute": "none"}})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["details"]["field"] == "spec.preprocessing.impute"
    assert "bill_mm" in error["message"] or "bill_mm" in error["details"]["missing"]


def test_close_task_calls_say_why_and_can_be_overridden(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    rng = np.random.default_rng(1)

    def upload(label: np.ndarray, name: str) -> dict[str, Any]:
        x = label[:, None] / 7 + rng.normal(0, 0.1, (len(label), 2))
        csv = "a,b,code\n" + "".join(
            f"{r[0]:.3f},{r[1]:.3f},{c}\n" for r, c in zip(x, label, strict=True)
        )
        up = api.post("/v1/datasets", headers=bearer(tenant_key), files={"file": (name, csv)})
        assert up.status_code == 201, up.text
        return dict(up.json())

    # 150 consecutive codes, 6 rows each: classes, and the answer says why.
    codes = upload(rng.permutation(np.repeat(np.arange(150), 6)), "codes.csv")
    assert codes["task"] == "classification" and codes["classes"] == list(range(150))
    note = codes["task_note"]
    assert "150 distinct" in note and "class codes" in note and '"task": "regression"' in note
    as_values = submit(api, tenant_key, codes["id"], {"task": "regression", "epochs": 1})
    assert as_values.status_code == 202, as_values.text

    # 101 spaced whole numbers, 3 rows each: a quantity, said why; spec task overrides it.
    label = rng.permutation(np.repeat(np.arange(101) * 7, 3))
    spaced = upload(label, "spaced.csv")
    assert spaced["task"] == "regression"
    assert (
        "101 distinct" in spaced["task_note"] and '"task": "classification"' in spaced["task_note"]
    )
    spec = {"task": "classification", "epochs": 2, "layers": [{"units": 8}]}
    run = submit(api, tenant_key, spaced["id"], spec)
    assert run.status_code == 202, run.text
    assert work(db, settings, run.json()["id"]) == "succeeded"
    model_id = api.get(f"/v1/runs/{run.json()['id']}", headers=bearer(tenant_key)).json()[
        "model_id"
    ]
    model = api.get(f"/v1/models/{model_id}", headers=bearer(tenant_key)).json()
    assert model["task"] == "classification" and model["classes"] == sorted(set(label.tolist()))

    # A bare NaN (what Python's json and pandas write) is a missing value; Infinity is not.
    url = f"/v1/models/{model_id}/predict"
    json_type = {**bearer(tenant_key), "content-type": "application/json"}
    nan = api.post(url, headers=json_type, content=b'{"inputs": [[NaN, 1], [0.5, 1]]}')
    assert nan.status_code == 200, nan.text
    null = api.post(url, headers=bearer(tenant_key), json={"inputs": [[None, 1], [0.5, 1]]})
    assert nan.json() == null.json()
    inf = api.post(url, headers=json_type, content=b'{"inputs": [[0.5, 1], [1, -Infinity]]}')
    assert inf.status_code == 422, inf.text
    error = inf.json()["error"]
    assert error["details"]["row"] == 1 and error["details"]["column"] == "b"
    assert "non-finite" in error["message"] and "'b'" in error["message"]
    broken = api.post(url, headers=json_type, content=b'{"inputs": [[NaN, 1]]')
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"

    fractions = "a,y\n" + "".join(f"{i},{i / 7:.4f}\n" for i in range(40))
    other = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("f.csv", fractions)}
    ).json()
    assert other["task_note"] is None
    refused = submit(api, tenant_key, other["id"], {"task": "classification"})
    assert refused.status_code == 422 and refused.json()["error"]["details"]["field"] == "spec.task"


def test_whole_numbers_asked_to_be_classes_need_two_rows_each_at_submit(
    api: TestClient, tenant_key: str
) -> None:
    """Checked at submit from the profile's counts, not found later by the worker."""
    labels = [*range(120), 0, 1, 2]  # 120 values, most on a single row
    csv = "a,code\n" + "".join(f"{i},{c}\n" for i, c in enumerate(labels))
    dataset = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("c.csv", csv)}
    ).json()
    refused = submit(api, tenant_key, dataset["id"], {"task": "classification"})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "single_sample_class" and error["details"]["class"] == 3
    fine = submit(api, tenant_key, dataset["id"], {"task": "classification", "validation_split": 0})
    assert fine.status_code == 202, fine.text
