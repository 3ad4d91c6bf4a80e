"""More formats over HTTP, on both backends: Parquet and .csv.gz give the same dataset as the
CSV (the stored values, not only the metadata); typed Parquet numbers keep their gaps; gzip and
Parquet bombs and footer limits are refused before reading; each bad image archive gets its own
answer naming the member; the seed example, a zip of digit pictures in class folders, trains to
>= 0.95 held-out accuracy and predicts uploaded PNGs."""

from __future__ import annotations

import gzip
import io
import uuid
import zipfile

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.config import Settings
from core.datasets import ParsedDataset, decode_npz
from store.session import Database
from store.tables import Dataset
from tests.api.conftest import bearer
from tests.api.image_archives import digits_as_pngs, png
from tests.api.runs_fixtures import api, sent, submit, work
from tests.api.test_missing_values_api import penguins_csv
from tests.core.test_images import png_header_only

__all__ = ["api", "sent"]  # fixtures

SAME = ("n_rows", "feature_names", "feature_types", "label", "task", "classes", "missing")


def _upload(api: TestClient, key: str, name: str, content: bytes, **fields: str):
    return api.post(
        "/v1/datasets", headers=bearer(key), files={"file": (name, content)}, data=fields
    )


def _app(settings: Settings, db: Database, **limits: int) -> TestClient:
    from api.app import create_app

    return TestClient(create_app(settings.model_copy(update=limits), database=db))


def _stored(db: Database, dataset_id: str) -> ParsedDataset:
    """The dataset's arrays as stored (what training reads)."""
    with db.read_session() as session:
        blob = session.scalars(
            select(Dataset.blob).where(Dataset.id == uuid.UUID(dataset_id))
        ).one()
    return decode_npz(blob)


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def test_parquet_and_gzipped_csv_give_the_csvs_dataset(
    api: TestClient, tenant_key: str, db: Database
) -> None:
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
    # The stored values too, not only the metadata: the same numbers, gaps, codes and labels.
    want = _stored(db, from_csv["id"])
    for other in (from_parquet.json(), from_gzip.json()):
        got = _stored(db, other["id"])
        np.testing.assert_array_equal(got.X_numeric, want.X_numeric)  # NaN where missing
        np.testing.assert_array_equal(got.X_categorical, want.X_categorical)
        assert got.categories == want.categories and got.y.tolist() == want.y.tolist()
    assert np.isnan(want.X_numeric).any() and (want.X_categorical == -1).any()


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


def test_typed_parquet_numbers_keep_their_gaps_beside_text_columns(
    api: TestClient, tenant_key: str, db: Database
) -> None:
    nan = float("nan")
    numbers = {
        "a": [1.5, None, nan, 4.0, 5.0, 6.0],  # null and NaN: both missing
        "n": pl.Series([1, 2, None, 4, 5, 6], dtype=pl.Int32),
    }
    label = {"y": [0, 1, 0, 1, 0, 1]}
    # All numeric: the typed fast path, straight to floats.
    fast = _upload(api, tenant_key, "f.parquet", _parquet(pl.DataFrame({**numbers, **label})))
    assert fast.status_code == 201, fast.text
    body = fast.json()
    assert body["format"] == "parquet" and body["feature_types"] == ["numeric", "numeric"]
    assert body["missing"] == {"a": 2, "n": 1} and body["classes"] == [0, 1]
    want = np.array([[1.5, 1], [nan, 2], [nan, nan], [4, 4], [5, 5], [6, 6]])
    np.testing.assert_array_equal(_stored(db, body["id"]).X_numeric, want)
    # Text columns beside them: only those are typed as a CSV's; the numbers keep their place.
    text = {"s": ["x", None, "y", "NA", "x", "y"], "t": ["1", "2", " 3", None, "5", "6"]}
    frame = pl.DataFrame({"a": numbers["a"], "s": text["s"], "n": numbers["n"], "t": text["t"]})
    mixed = _upload(
        api, tenant_key, "m.parquet", _parquet(frame.with_columns(pl.Series("y", label["y"])))
    )
    assert mixed.status_code == 201, mixed.text
    body = mixed.json()
    assert body["feature_names"] == ["a", "s", "n", "t"]
    assert body["feature_types"] == ["numeric", "categorical", "numeric", "numeric"]
    assert body["missing"] == {"a": 2, "s": 2, "n": 1, "t": 1}
    stored = _stored(db, body["id"])
    np.testing.assert_array_equal(stored.X_numeric, np.column_stack([want, [1, 2, 3, nan, 5, 6]]))
    assert stored.categories == [["x", "y"]]
    assert stored.X_categorical.ravel().tolist() == [0, -1, 1, -1, 0, 1]


@pytest.mark.parametrize("with_text", [False, True], ids=["all-numeric", "mixed"])
def test_parquet_infinity_is_refused_by_row_and_column(
    api: TestClient, tenant_key: str, with_text: bool
) -> None:
    frame = pl.DataFrame({"a": [1.0, 2.0, float("-inf"), 4.0], "y": [0, 1, 0, 1]})
    if with_text:
        frame = frame.with_columns(s=pl.lit("k"))
    refused = _upload(api, tenant_key, "i.parquet", _parquet(frame))
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "non_finite_value"
    assert error["details"]["column"] == "a" and error["details"]["row"] == 2


def test_parquet_footer_limits_refuse_before_reading(
    api: TestClient, tenant_key: str, settings: Settings, db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    frame = pl.DataFrame({"a": range(6), "b": range(6), "y": [0, 1] * 3})
    content = _parquet(frame)
    monkeypatch.setattr(pl, "read_parquet", lambda *_, **__: pytest.fail("the data was read"))
    rows = _upload(_app(settings, db, max_dataset_rows=5), tenant_key, "r.parquet", content)
    assert rows.status_code == 413 and rows.json()["error"]["code"] == "too_many_rows"
    wide = _upload(_app(settings, db, max_features=1), tenant_key, "w.parquet", content)
    assert wide.status_code == 422 and wide.json()["error"]["code"] == "too_many_features"


def test_a_parquet_bomb_is_refused_from_its_footer(
    api: TestClient, tenant_key: str, settings: Settings, db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Constant columns run-length encode to almost nothing: 200,000 x 50 in a few KB would
    # decode to 80 MB of float64 (1M x 1000 would be 8 GB from a few MB).
    rows, columns, limit = 200_000, 50, 50_000_000
    zeros = pl.DataFrame({f"c{j}": pl.zeros(rows, dtype=pl.Int8, eager=True) for j in range(49)})
    bomb = _parquet(zeros.with_columns(y=pl.lit(0, dtype=pl.Int8)))
    assert len(bomb) < 100_000
    monkeypatch.setattr(pl, "read_parquet", lambda *_, **__: pytest.fail("the bomb was read"))
    refused = _upload(
        _app(settings, db, max_decompressed_bytes=limit), tenant_key, "b.parquet", bomb
    )
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["code"] == "dataset_too_large"
    assert error["details"]["limit_bytes"] == limit
    assert error["details"]["decoded_bytes"] == rows * columns * 8
    assert str(limit) in error["message"] and "max_decompressed_bytes" in error["message"]


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


def _zip(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


_DARK, _LIGHT = png(np.zeros((8, 8))), png(np.full((8, 8), 16.0))
_PETS = (("cat/1.png", _DARK), ("dog/1.png", _LIGHT))


@pytest.mark.parametrize(
    ("name", "content", "limits", "status", "code", "member", "said"),
    [
        ("pets.zip", b"pixel,label\n1,cat\n2,dog\n", {}, 415, "not_a_zip", None, "not a zip"),
        ("pets.npz", b"pixel,label\n1,cat\n2,dog\n", {}, 422, "invalid_npz", None, "NPZ"),
        ("pets.zip", _zip(("1.png", _DARK), ("2.png", _LIGHT)), {}, 422, "no_class_folders",
         None, "'1.png'"),
        ("pets.zip", _zip(*_PETS, ("dog/notes.txt", b"hi")), {}, 422, "not_an_image",
         "dog/notes.txt", "'dog/notes.txt' is not a PNG or JPEG"),
        ("pets.zip", _zip(*_PETS, ("cat/bomb.png", png_header_only(30000, 30000))), {}, 413,
         "image_too_large", "cat/bomb.png", "declares 30000x30000 pixels"),
        ("pets.zip", _zip(*_PETS, ("../evil.png", _DARK)), {}, 422, "unsafe_member_name",
         "../evil.png", "'../evil.png'"),
        ("pets.zip", _zip(*_PETS, ("cat/2.png", _DARK), ("dog/2.png", _LIGHT)),
         {"max_image_files": 3}, 413, "too_many_files", None, "4 images"),
    ],
    ids=["not-a-zip", "npz-not-a-zip", "flat", "not-an-image", "image-bomb", "traversal",
         "too-many-files"],
)  # fmt: skip
def test_each_bad_archive_gets_its_answer(
    api: TestClient, tenant_key: str, settings: Settings, db: Database,
    name: str, content: bytes, limits: dict[str, int], status: int, code: str,
    member: str | None, said: str,
) -> None:  # fmt: skip
    client = _app(settings, db, **limits) if limits else api
    refused = _upload(client, tenant_key, name, content)
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["code"] == code and said in error["message"]
    assert error["details"].get("member") == member


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
