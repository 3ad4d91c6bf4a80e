"""Dashboard sign-ins on both backends: only the token's hash is stored; a session ends at
sign-out, at expiry (and housekeeping removes it) and when its key is revoked; CSRF tokens are
checked on state-changing methods only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import web_sessions
from core.auth import create_api_key, hash_key, revoke_key_ref
from core.config import Settings
from core.errors import Forbidden, Unauthorized
from core.housekeeping import purge_expired_web_sessions
from store.base import utcnow
from store.session import Database
from store.tables import WebSession


def _sign_in(db: Database, settings: Settings) -> tuple[str, str]:
    with db.session() as session:
        key = create_api_key(session, "web")
        return key, web_sessions.sign_in(session, key, settings).token


def test_a_session_stands_for_its_key_until_sign_out(db: Database, settings: Settings) -> None:
    key, token = _sign_in(db, settings)
    with db.read_session() as session:
        signed = web_sessions.signed_in(session, token)
        stored = session.scalars(select(WebSession)).one()
    assert stored.token_hash == hash_key(token) and token not in (stored.token_hash, key)
    assert len(signed.csrf_token) >= 32
    with db.session() as session:
        web_sessions.sign_out(session, token)
    with db.read_session() as session, pytest.raises(Unauthorized):
        web_sessions.signed_in(session, token)


def test_expiry_and_revocation_end_a_session(db: Database, settings: Settings) -> None:
    key, token = _sign_in(db, settings)
    _, expiring = _sign_in(db, settings)
    with db.session() as session:
        revoke_key_ref(session, key)
        session.execute(
            update(WebSession)
            .where(WebSession.token_hash == hash_key(expiring))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    for ended in (token, expiring):
        with db.read_session() as session, pytest.raises(Unauthorized):
            web_sessions.signed_in(session, ended)
    assert purge_expired_web_sessions(db) == 1
    with db.read_session() as session:
        assert len(session.scalars(select(WebSession)).all()) == 1  # the revoked key's row


def test_wrong_key_and_csrf(db: Database, settings: Settings) -> None:
    with db.session() as session, pytest.raises(Unauthorized):
        web_sessions.sign_in(session, "dsk_000000000000_nope", settings)
    web_sessions.check_csrf("GET", "expected", None)  # reads need none
    web_sessions.check_csrf("POST", "expected", "expected")
    for sent in (None, "", "other"):
        with pytest.raises(Forbidden):
            web_sessions.check_csrf("DELETE", "expected", sent)
