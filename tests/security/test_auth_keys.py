"""S6: missing, malformed, wrong, revoked and disabled keys all get one 401; the CLI manages
keys without ever printing a secret; S8: server-owned fields cannot be assigned."""

from __future__ import annotations

import secrets
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from core import auth
from core.config import Settings, get_settings
from core.errors import Unauthorized
from descent import cli, server_commands
from store.session import Database
from store.tables import ApiKey, Run
from tests.api.conftest import bearer
from tests.security.conftest import Tenant

ROUTES = [
    ("GET", "/v1/datasets"),
    ("GET", "/v1/runs"),
    ("GET", f"/v1/runs/{uuid.uuid4()}"),
    ("POST", "/v1/runs"),
    ("POST", f"/v1/models/{uuid.uuid4()}/predict"),
    ("DELETE", f"/v1/datasets/{uuid.uuid4()}"),
]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[CliRunner]:
    monkeypatch.setenv("DESCENT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DESCENT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli.main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_keys_create_list_revoke(cli_env: CliRunner, api: TestClient, db: Database) -> None:
    first = _run(cli_env, "keys", "create", "--tenant", "acme", "--name", "ci")
    key = first.strip().removeprefix("API key: ")
    second = _run(cli_env, "keys", "create", "--tenant", "acme").strip().removeprefix("API key: ")
    assert api.get("/v1/datasets", headers=bearer(key)).status_code == 200

    listing = _run(cli_env, "keys", "list", "--tenant", "acme")
    lines = listing.strip().splitlines()
    assert len(lines) == 2 and "ci" in lines[0] and "active" in lines[0]
    for secret in (key, second):
        _, prefix, tail = secret.split("_", 2)  # the secret itself may contain "_"
        assert tail not in listing and f"dsk_{prefix}_…" in listing
    with db.read_session() as session:
        hashes = [k.key_hash for k in session.query(ApiKey).all()]
    assert not any(h in listing for h in hashes)
    assert "no keys" in _run(cli_env, "keys", "list", "--tenant", "nobody")

    # Revoke by prefix (as listed), then by id; both answer 401 like an unknown key.
    key_id = lines[1].split()[0]
    out = _run(cli_env, "keys", "revoke", key.split("_")[1])
    assert "revoked" in out and key.split("_", 2)[2] not in out
    _run(cli_env, "keys", "revoke", key_id)
    _run(cli_env, "keys", "revoke", key_id)  # twice is fine
    assert "revoked" in _run(cli_env, "keys", "list", "--tenant", "acme").splitlines()[1]
    unknown = api.get("/v1/datasets", headers=bearer("dsk_000000000000_nope"))
    for revoked in (key, second):
        response = api.get("/v1/datasets", headers=bearer(revoked))
        assert response.status_code == 401 and response.content == unknown.content

    missing = cli_env.invoke(cli.main, ["keys", "revoke", "0123456789ab"])
    assert missing.exit_code != 0 and "no API key matches" in missing.output


def test_every_401_is_the_same(api: TestClient, db: Database, tenant_a: Tenant) -> None:
    with db.session() as session:
        revoked = auth.create_api_key(session, tenant_a.name)
        disabled = auth.create_api_key(session, "short-lived")
    with db.session() as session:
        assert auth.revoke_key_ref(session, revoked.split("_")[1]) is not None
        auth.disable_tenant(session, "short-lived")
    _, prefix, secret = tenant_a.key.split("_", 2)
    prefix = f"dsk_{prefix}"
    header_sets = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic eDp5"},
        {"Authorization": f"bearer {prefix}_{'A' * len(secret)}"},
        bearer(f"{prefix}_{'A' * len(secret)}"),
        bearer(revoked),
        bearer(disabled),
        bearer("dsk_" + "0" * 12 + "_" + "x" * 10_000),
    ]
    for method, path in ROUTES:
        answers = set()
        for headers in header_sets:
            response = api.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            answers.add((response.content, response.headers.get("www-authenticate")))
        assert answers == {(answers.copy().pop()[0], "Bearer")}, (method, path, answers)
    assert api.get("/v1/datasets", headers=tenant_a.headers).status_code == 200


def test_key_check_uses_compare_digest(
    db: Database, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = secrets.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", spy)  # core.auth looks it up per call
    with db.read_session() as session:
        auth.authenticate(session, tenant_a.key)
        with pytest.raises(Unauthorized):
            auth.authenticate(session, "dsk_000000000000_unknown")  # no row: still compared
    assert len(calls) == 2
    assert calls[0][0] == auth.hash_key(tenant_a.key)


def test_serve_key_is_stable_and_replaced_once_revoked(settings: Settings, db: Database) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = server_commands._first_key(settings)
    assert server_commands._first_key(settings) == key
    assert (Path(settings.data_dir) / server_commands.KEY_FILE).stat().st_mode & 0o077 == 0
    with db.session() as session:
        auth.revoke_key_ref(session, key)
    fresh = server_commands._first_key(settings)
    assert fresh != key and server_commands._first_key(settings) == fresh
    with db.read_session() as session:
        auth.authenticate(session, fresh)


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "succeeded"},
        {"tenant_id": "00000000-0000-0000-0000-000000000001"},
        {"attempts": 99},
        {"attempt": 99},
        {"model_id": "00000000-0000-0000-0000-000000000002"},
        {"weights": [1.0, 2.0]},
        {"created_at": "2000-01-01T00:00:00Z"},
        {"id": "00000000-0000-0000-0000-000000000003"},
    ],
)
def test_mass_assignment_is_refused(
    api: TestClient, db: Database, tenant_b: Tenant, sent: list[str], extra: dict
) -> None:
    with db.read_session() as session:
        before = session.query(Run).count()
    sent.clear()
    body = {"dataset_id": tenant_b.dataset_id, "spec": {"epochs": 1}, **extra}
    response = api.post("/v1/runs", headers=tenant_b.headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == next(iter(extra))
    # Inside the spec too.
    body = {"dataset_id": tenant_b.dataset_id, "spec": {"epochs": 1, **extra}}
    response = api.post("/v1/runs", headers=tenant_b.headers, json=body)
    assert response.status_code == 422, response.text
    with db.read_session() as session:
        assert session.query(Run).count() == before
    assert sent == []


def test_accepted_run_has_server_values(api: TestClient, db: Database, tenant_b: Tenant) -> None:
    body = {"dataset_id": tenant_b.dataset_id, "spec": {"epochs": 1}}
    run_id = api.post("/v1/runs", headers=tenant_b.headers, json=body).json()["id"]
    with db.read_session() as session:
        row = session.get(Run, uuid.UUID(run_id))
        assert row is not None
        assert row.tenant_id == tenant_b.tenant_id and row.status == "queued"
        assert row.attempts == 0 and row.model_id is None and row.error_code is None
