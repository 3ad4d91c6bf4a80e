"""API keys: hashed at rest, constant-time compared, one answer for every failure."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import select

from core import auth
from core.errors import Unauthorized
from store.session import Database
from store.tables import ApiKey, Tenant


def test_key_roundtrip_and_hash_at_rest(db: Database) -> None:
    with db.session() as session:
        key = auth.create_api_key(session, "acme", key_name="ci")
        second = auth.create_api_key(session, "acme")
    with db.read_session() as session:
        principal = auth.authenticate(session, key)
        assert principal == auth.authenticate(session, key)
        assert auth.authenticate(session, second).tenant_id == principal.tenant_id
        stored = session.scalars(select(ApiKey.key_hash)).all()
        assert len(session.scalars(select(Tenant)).all()) == 1
    assert key.startswith("dsk_") and key not in stored
    assert auth.hash_key(key) in stored


def test_every_failure_is_the_same_401(db: Database) -> None:
    with db.session() as session:
        key = auth.create_api_key(session, "acme")
        revoked = auth.create_api_key(session, "acme")
        disabled = auth.create_api_key(session, "gone")
    with db.session() as session:
        assert auth.revoke_key_ref(session, revoked) is not None
        auth.disable_tenant(session, "gone")
    prefix, _, secret = key.rpartition("_")
    candidates = [
        None,
        "",
        "garbage",
        "dsk_nothex_x",
        f"{prefix}_{'A' * len(secret)}",  # right prefix, wrong secret
        revoked,
        disabled,
    ]
    messages = set()
    with db.read_session() as session:
        for candidate in candidates:
            with pytest.raises(Unauthorized) as caught:
                auth.authenticate(session, candidate)
            messages.add((caught.value.code, caught.value.message, str(caught.value.details)))
        auth.authenticate(session, key)  # the good key still works
    assert len(messages) == 1


def test_comparison_is_constant_time() -> None:
    assert "secrets.compare_digest" in inspect.getsource(auth.authenticate)
