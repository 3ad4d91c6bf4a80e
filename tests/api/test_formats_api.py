"""More formats over HTTP, on both backends: Parquet and .csv.gz give the same dataset as the
CSV; a gzip bomb is refused; the seed example, a zip of digit pictures in class folders,
trains to >= 0.95 held-out accuracy and predicts uploaded PNGs."""

from __future__ import annotations

import gzip
import io
import uuid
import zipfile

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from store.session import Database
from tests.api.conftest import bearer
from tests.api.image_archives import digits_as_pngs, png
from tests.api.runs_fixtures import api, sent, submit, work
from tests.api.test_missing_values_api import penguins_csv

__all__ = ["api", "sent"]  # fixtures

SAME = ("n_rows", "feature_names", "feature_types", "label", "task", "classes", "missing")


def _upload(api: TestClient, key: str, name: str, content: bytes, **fields: str):
    return api.post(
        "/v1/datasets", headers=bearer(key), files={"file": (name, content)}, data=fields
    )


def test_parquet_and_gzipped_csv_give_the_csvs_dataset(api: TestClient, tenant_key: str) -> None:
    content, table = penguins_csv(120)
    from_csv = _upload(api, tenant_key, "p.csv", content).json()
    buffer = io.BytesIO()
    # Parquet carries types: numbers as numbers, gaps as nulls (not the text "NA").
    typed = table.with_columns(
        pl.col("bill_mm", "mass_g").replace(["NA", ""], None).cast(pl.Float64),
        pl.col("island").replace(["NA", ""], None),
    )
    typed.write_parquet(buffer)
    from_parquet = _upload(api, tenant_key, "p.parquet", buffer.getvalue())
    assert from_parquet.status_code == 201, from_parquet.text
    from_gzip = _upload(api, tenant_key, "p.csv.gz", gzip.compress(content))
    assert from_gzip.status_code == 201, from_gzip.text
    for other in (from_parquet.json(), from_gzip.json()):
        assert {k: other[k] for k in SAME} == {k: from_csv[k] for k in SAME}
    assert from_parquet.json()["format"] == "parquet" and from_gzip.json()["format"] == "csv"


def test_bad_compressed_and_parquet_uploads_are_named(
    api: TestClient, tenant_key: str, settings: Settings, db: Database
) -> None:
    from api.app import create_app

    small = TestClient(
        create_app(settings.model_copy(update={"max_decompressed_bytes": 1_000_000}), database=db)
    )
    bomb = gzip.compress(b"a,b\n" + b"1,2\n" * 1_000_000)  # 4 MB of text in ~10 KB
    refused = _upload(small, tenant_key, "bomb.csv.gz", bomb)
    assert (
        refused.status_code == 413 and refused.json()["error"]["code"] == "decompressed_too_large"
    )
    truncated = _upload(api, tenant_key, "t.csv.gz", gzip.compress(b"a,b\n1,2\n" * 100)[:-20])
    assert truncated.status_code == 422 and truncated.json()["error"]["code"] == "invalid_gzip"
    broken = _upload(api, tenant_key, "b.parquet", b"PAR1" + b"\x00" * 100)
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_parquet"
    nested = io.BytesIO()
    pl.DataFrame({"a": [[1, 2], [3]], "y": [0, 1]}).write_parquet(nested)
    listy = _upload(api, tenant_key, "n.parquet", nested.getvalue())
    assert listy.status_code == 422 and listy.json()["error"]["details"]["column"] == "a"


def test_digit_pictures_in_class_folders_train_and_predict(
    api: TestClient, tenant_key: str, db: Database, settings: Settings
) -> None:
    archive, held_out = digits_as_pngs()
    up = _upload(api, tenant_key, "digits.zip", archive, image_size="8")
    assert up.status_code == 201, up.text
    dataset = up.json()
    assert dataset["format"] == "images" and dataset["classes"] == [str(d) for d in range(10)]
    assert dataset["n_features"] == 64 and dataset["image_shape"] == {
        "image_size": 8, "color_mode": "grayscale",
    }  # fmt: skip
    spec = {"layers": [{"units": 64}], "epochs": 40, "seed": 0,
            "optimizer": {"name": "adam", "learning_rate": 0.003}}  # fmt: skip
    run = submit(api, tenant_key, dataset["id"], spec).json()
    assert work(db, settings, run["id"]) == "succeeded"
    model_id = api.get(f"/v1/runs/{run['id']}", headers=bearer(tenant_key)).json()["model_id"]
    model = api.get(f"/v1/models/{model_id}", headers=bearer(tenant_key)).json()
    assert model["input"]["image"] == {"image_size": 8, "color_mode": "grayscale"}

    files = [("file", (name, data, "image/png")) for name, data, _ in held_out]
    answer = api.post(f"/v1/models/{model_id}/predict", headers=bearer(tenant_key), files=files)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    labels = [str(label) for _, _, label in held_out]
    accuracy = float(np.mean(np.asarray(body["predictions"]) == np.asarray(labels)))
    assert accuracy >= 0.95, accuracy
    np.testing.assert_allclose(np.asarray(body["probabilities"]).sum(axis=1), 1.0, atol=1e-6)
    one = api.post(
        f"/v1/models/{model_id}/predict", headers=bearer(tenant_key),
        files=[("file", held_out[0][:2])],
    )  # fmt: skip
    single = one.json()
    assert single["predictions"] == [labels[0]]  # the right digit (seeded: deterministic)
    # float32 network: one row (a matrix-vector product) and many (matrix-matrix) may round
    # differently in the last bits, depending on the CPU's BLAS kernel.
    np.testing.assert_allclose(
        single["probabilities"][0], body["probabilities"][0], rtol=1e-5, atol=1e-8
    )
    assert sum(single["probabilities"][0]) == pytest.approx(1.0)
    assert single["classes"] == [str(d) for d in range(10)]
    not_an_image = api.post(
        f"/v1/models/{model_id}/predict", headers=bearer(tenant_key),
        files=[("file", ("notes.txt", b"hello", "text/plain"))],
    )  # fmt: skip
    assert (
        not_an_image.status_code == 422 and "notes.txt" in not_an_image.json()["error"]["message"]
    )


def test_a_bad_archive_is_a_4xx_naming_the_problem(api: TestClient, tenant_key: str) -> None:
    one_class = io.BytesIO()
    with zipfile.ZipFile(one_class, "w") as zf:
        zf.writestr("cat/1.png", png(np.zeros((8, 8))))
        zf.writestr("cat/2.png", png(np.ones((8, 8))))
    refused = _upload(api, tenant_key, "cats.zip", one_class.getvalue())
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "single_class"
    bad_size = _upload(api, tenant_key, "cats.zip", one_class.getvalue(), image_size="big")
    assert (
        bad_size.status_code == 422 and bad_size.json()["error"]["details"]["field"] == "image_size"
    )


def test_the_profile_is_computed_at_upload_and_kept(
    api: TestClient, tenant_key: str, other_key: str, db: Database
) -> None:
    from sqlalchemy import update

    from store.tables import Dataset

    content, table = penguins_csv(120)
    dataset_id = _upload(api, tenant_key, "p.csv", content).json()["id"]
    got = api.get(f"/v1/datasets/{dataset_id}/profile", headers=bearer(tenant_key))
    assert got.status_code == 200, got.text
    profile = got.json()
    assert profile["dataset_id"] == dataset_id and profile["n_rows"] == 120
    bill = next(c for c in profile["columns"] if c["name"] == "bill_mm")
    numbers = table["bill_mm"].replace(["NA", ""], None).cast(pl.Float64)
    assert bill["missing"] == numbers.null_count()
    assert bill["mean"] == pytest.approx(numbers.mean()) and bill["std"] == pytest.approx(
        numbers.std()
    )
    assert profile["label"]["task"] == "classification"
    counts = dict(table["species"].value_counts().iter_rows())
    assert dict(map(tuple, profile["label"]["distribution"])) == counts
    # Stored at upload: a request reads it. A dataset from before profiles gets one once.
    with db.session() as session:
        session.execute(
            update(Dataset).where(Dataset.id == uuid.UUID(dataset_id)).values(profile=None)
        )
        session.commit()
    again = api.get(f"/v1/datasets/{dataset_id}/profile", headers=bearer(tenant_key)).json()
    assert again == profile
    with db.read_session() as session:
        from sqlalchemy import select
        from sqlalchemy.orm import undefer

        stored = session.scalars(
            select(Dataset)
            .where(Dataset.id == uuid.UUID(dataset_id))
            .options(undefer(Dataset.profile))
        ).one()
        assert stored.profile is not None
    assert (
        api.get(f"/v1/datasets/{dataset_id}/profile", headers=bearer(other_key)).status_code == 404
    )
