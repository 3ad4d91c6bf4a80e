"""Dashboard sign-in: an API key typed once into the sign-in form becomes a session.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; the database holds its
sha256, so neither the key nor a usable token is ever stored. Every state-changing call made
with the cookie must also send the session's CSRF token (X-CSRF-Token, or a form field), which
the pages carry and another site cannot read.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from core import auth
from core.config import Settings
from core.errors import Forbidden, Unauthorized
from store import web_sessions as web_store
from store.base import utcnow
from store.tables import WebSession

COOKIE_NAME = "descent_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class SignedIn:
    principal: auth.Principal
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie; shown nowhere else
    max_age_seconds: int


def sign_in(session: Session, key: str, settings: Settings) -> NewSession:
    """A new session for a valid key (Unauthorized otherwise, the same as the API's 401)."""
    principal = auth.authenticate(session, key)
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(hours=settings.web_session_hours)
    web_store.insert_web_session(
        session,
        WebSession(
            tenant_id=principal.tenant_id,
            api_key_id=principal.api_key_id,
            token_hash=auth.hash_key(token),
            csrf_token=secrets.token_urlsafe(32),
            expires_at=utcnow() + lifetime,
        ),
    )
    session.commit()
    return NewSession(token=token, max_age_seconds=int(lifetime.total_seconds()))


def signed_in(session: Session, token: str | None) -> SignedIn:
    """Who holds this session cookie; Unauthorized for a missing, unknown or expired one, or
    one whose key was revoked since."""
    row = (
        web_store.live_web_session(session, token_hash=auth.hash_key(token), now=utcnow())
        if token
        else None
    )
    if row is None:
        raise Unauthorized("not signed in, or the session has ended", code="unauthorized")
    return SignedIn(auth.Principal(row.tenant_id, row.api_key_id), row.csrf_token)


def check_csrf(method: str, expected: str, sent: str | None) -> None:
    if method in SAFE_METHODS:
        return
    if not sent or not secrets.compare_digest(expected, sent):
        raise Forbidden(
            "missing or wrong CSRF token: send the page's token in X-CSRF-Token",
            {"header": "X-CSRF-Token"},
            code="csrf_failed",
        )


def sign_out(session: Session, token: str | None) -> None:
    if token:
        web_store.delete_web_session(session, token_hash=auth.hash_key(token))
        session.commit()
