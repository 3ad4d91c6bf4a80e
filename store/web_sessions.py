"""Dashboard sign-ins. Repository functions: SQL only, never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.tables import ApiKey, Tenant, WebSession


def insert_web_session(session: Session, row: WebSession) -> WebSession:
    session.add(row)
    session.flush()
    return row


def live_web_session(session: Session, *, token_hash: str, now: datetime) -> WebSession | None:
    """The sign-in with this token while it, its key and its tenant are all still valid."""
    return session.scalars(
        select(WebSession)
        .join(ApiKey, ApiKey.id == WebSession.api_key_id)
        .join(Tenant, Tenant.id == WebSession.tenant_id)
        .where(
            WebSession.token_hash == token_hash,
            WebSession.expires_at > now,
            ApiKey.revoked_at.is_(None),
            Tenant.disabled_at.is_(None),
        )
    ).one_or_none()


def delete_web_session(session: Session, *, token_hash: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == token_hash))


def delete_expired_web_sessions(session: Session, *, now: datetime) -> int:
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
