"""/v1/datasets over HTTP on both backends: the contract, every bad upload, the streaming size
cap, authentication and tenant isolation."""

from __future__ import annotations

import hashlib
import itertools
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from store import runs as run_store
from store.session import Database
from store.tables import Run, RunStatus
from tests.api.conftest import bearer, drive_upload, multipart_body, upload_dir
from tests.core.dataset_cases import BAD_UPLOADS, BadUpload
from tests.core.npz_payloads import npz_bytes

MiB = 1024 * 1024
CSV = b"sepal,petal,species\n" + b"5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,virginica\n" * 3


def post(
    client: TestClient, key: str, content: bytes, filename: str = "d.csv", **fields: str
) -> tuple[int, dict]:
    response = client.post(
        "/v1/datasets", headers=bearer(key), files={"file": (filename, content)}, data=fields
    )
    return response.status_code, response.json() if response.content else {}


def test_upload_csv_contract(client: TestClient, tenant_key: str, settings: Settings) -> None:
    status, body = post(client, tenant_key, CSV, name="flowers", label="species")
    assert status == 201, body
    assert set(body) >= {
        "id",
        "name",
        "format",
        "n_rows",
        "n_features",
        "feature_names",
        "feature_types",
        "label",
        "task",
        "classes",
        "sha256",
        "size_bytes",
        "created_at",
    }
    assert uuid.UUID(body["id"])
    assert body["name"] == "flowers" and body["format"] == "csv"
    assert (body["n_rows"], body["n_features"]) == (9, 2)
    assert body["feature_types"] == ["numeric", "numeric"]
    assert body["task"] == "classification"
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["sha256"] == hashlib.sha256(CSV).hexdigest() and body["size_bytes"] == len(CSV)
    assert body["created_at"].endswith("Z")
    assert client.get(f"/v1/datasets/{body['id']}", headers=bearer(tenant_key)).json() == body
    assert upload_dir(settings) == []


def test_upload_npz_and_json(client: TestClient, tenant_key: str) -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    status, body = post(client, tenant_key, npz_bytes(X=X, y=X @ [1.0, 2.0, 3.0]), "d.npz")
    assert status == 201 and body["format"] == "npz" and body["task"] == "regression"
    assert body["feature_names"] == ["x0", "x1", "x2"] and body["classes"] is None
    status, body = post(
        client,
        tenant_key,
        b'{"X": [[1], [2], [3], [4], [5], [6]], "y": [0, 1, 0, 1, 0, 1]}',
        "d.json",
    )
    assert status == 201 and body["format"] == "json" and body["classes"] == [0, 1]


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=lambda c: c.id)
def test_bad_upload_over_http(
    client: TestClient, tenant_key: str, settings: Settings, case: BadUpload
) -> None:
    fields = {"label": case.label} if case.label else {}
    status, body = post(client, tenant_key, case.content, case.filename, **fields)
    assert status == case.status, body
    error = body["error"]
    assert error["code"] == case.code
    assert case.details.items() <= error["details"].items()
    for fragment in case.message_has:
        assert fragment in error["message"]
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).json()["items"] == []
    assert upload_dir(settings) == []


def test_size_cap_with_content_length(
    client: TestClient, tenant_key: str, settings: Settings
) -> None:
    status, body = post(client, tenant_key, b"a,y\n" + b"1,0\n" * (settings.max_upload_bytes // 4))
    assert status == 413 and body["error"]["code"] == "upload_too_large"
    assert upload_dir(settings) == []
    assert post(client, tenant_key, CSV)[0] == 201  # the next request is unaffected


def _endless_csv() -> itertools.chain[bytes]:
    return itertools.chain([b"a,y\n"], itertools.repeat(b"1,0\n" * 16384))  # 64 KiB chunks


@pytest.mark.parametrize("declared", [None, 1000], ids=["chunked", "lying-length"])
def test_size_cap_while_streaming(
    client: TestClient, tenant_key: str, settings: Settings, declared: int | None
) -> None:
    """A body that never ends (no Content-Length, or one that lies) is cut at the cap."""
    status, body, _headers, consumed = drive_upload(
        client.app, multipart_body(_endless_csv()), key=tenant_key, content_length=declared
    )
    assert status == 413 and body["error"]["code"] == "upload_too_large"
    assert consumed <= settings.max_upload_bytes + 1 * MiB
    assert upload_dir(settings) == []


def test_oversized_content_length_refused_before_reading(
    client: TestClient, tenant_key: str, settings: Settings
) -> None:
    status, _, _, consumed = drive_upload(
        client.app,
        multipart_body(_endless_csv()),
        key=tenant_key,
        content_length=10 * settings.max_upload_bytes,
    )
    assert status == 413 and consumed == 0


def test_unauthenticated_upload_reads_no_body(client: TestClient, settings: Settings) -> None:
    status, _body, headers, consumed = drive_upload(
        client.app, multipart_body(_endless_csv()), key=None
    )
    assert status == 401 and consumed == 0
    assert headers["www-authenticate"] == "Bearer"


def test_streamed_upload_succeeds(client: TestClient, tenant_key: str, settings: Settings) -> None:
    chunks = [CSV[i : i + 7] for i in range(0, len(CSV), 7)]
    status, body, _, _consumed = drive_upload(
        client.app, multipart_body(chunks, fields={"name": "streamed"}), key=tenant_key
    )
    assert status == 201 and body["name"] == "streamed" and body["n_rows"] == 9
    assert upload_dir(settings) == []


def test_form_problems(client: TestClient, tenant_key: str) -> None:
    response = client.post("/v1/datasets", headers=bearer(tenant_key), content=CSV, params={"x": 1})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    response = client.post(
        "/v1/datasets",
        headers=bearer(tenant_key),
        data={"name": "x"},
        files={"other": ("d.csv", CSV)},
    )
    assert response.status_code == 422 and response.json()["error"]["details"]["field"] == "other"


def test_missing_file_field_and_malformed_body(client: TestClient, tenant_key: str) -> None:
    only_name = (
        b'--descent-test-boundary\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
        b"x\r\n--descent-test-boundary--\r\n"
    )
    status, body, _, _ = drive_upload(client.app, [only_name], key=tenant_key)
    assert status == 422
    assert body["error"]["code"] == "missing_field"
    assert body["error"]["details"] == {"field": "file"}
    status, body, _, _ = drive_upload(client.app, [b"garbage\r\n\r\n"], key=tenant_key)
    assert status == 400 and body["error"]["code"] == "malformed_body"


def test_auth_failures_are_identical(client: TestClient, tenant_key: str) -> None:
    answers = set()
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic eDp5"},
        bearer(tenant_key[:-2] + "zz"),
    ):
        response = client.get("/v1/datasets", headers=headers)
        assert response.status_code == 401
        answers.add(response.content)
    assert len(answers) == 1


def test_list_pagination(client: TestClient, tenant_key: str) -> None:
    ids = [post(client, tenant_key, CSV, name=f"d{i}")[1]["id"] for i in range(3)]
    first = client.get("/v1/datasets?limit=2", headers=bearer(tenant_key)).json()
    assert [d["id"] for d in first["items"]] == ids[::-1][:2]
    second = client.get(
        "/v1/datasets",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=bearer(tenant_key),
    ).json()
    assert [d["id"] for d in second["items"]] == [ids[0]] and second["next_cursor"] is None
    # A bad limit is invalid input (422); a cursor we did not issue is malformed (400).
    for query, status, field in (
        ("limit=0", 422, "limit"),
        ("limit=501", 422, "limit"),
        ("cursor=%25%25", 400, "cursor"),
    ):
        response = client.get(f"/v1/datasets?{query}", headers=bearer(tenant_key))
        assert response.status_code == status
        assert response.json()["error"]["details"]["field"] == field


def test_tenant_isolation(client: TestClient, tenant_key: str, other_key: str) -> None:
    mine = post(client, tenant_key, CSV)[1]["id"]
    theirs = post(client, other_key, CSV)[1]["id"]
    for method in ("GET", "DELETE"):
        foreign = client.request(method, f"/v1/datasets/{mine}", headers=bearer(other_key))
        missing = client.request(method, f"/v1/datasets/{uuid.uuid4()}", headers=bearer(other_key))
        assert foreign.status_code == missing.status_code == 404
        assert foreign.content == missing.content
        assert foreign.headers.items() == missing.headers.items()
    listed = client.get("/v1/datasets", headers=bearer(other_key)).json()["items"]
    assert [d["id"] for d in listed] == [theirs]
    assert client.get(f"/v1/datasets/{mine}", headers=bearer(tenant_key)).status_code == 200


def test_delete(client: TestClient, tenant_key: str, db: Database) -> None:
    dataset = post(client, tenant_key, CSV)[1]
    with db.session() as session:
        run = run_store.insert_run(
            session,
            Run(
                tenant_id=uuid.UUID(_tenant_of(client, tenant_key, dataset["id"], db)),
                dataset_id=uuid.UUID(dataset["id"]),
                spec={},
                status=RunStatus.running,
            ),
        )
        session.commit()
    response = client.delete(f"/v1/datasets/{dataset['id']}", headers=bearer(tenant_key))
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "dataset_in_use",
        "message": "the dataset is used by 1 queued or running run(s)",
        "details": {"runs": [str(run.id)]},
    }
    with db.session() as session:
        session.get(Run, run.id).status = RunStatus.failed  # type: ignore[union-attr]
        session.commit()
    response = client.delete(f"/v1/datasets/{dataset['id']}", headers=bearer(tenant_key))
    assert response.status_code == 204 and response.content == b""
    assert (
        client.get(f"/v1/datasets/{dataset['id']}", headers=bearer(tenant_key)).status_code == 404
    )


def _tenant_of(client: TestClient, key: str, dataset_id: str, db: Database) -> str:
    from core.auth import authenticate

    with db.read_session() as session:
        return str(authenticate(session, key).tenant_id)
