"""API keys.

A key is ``dsk_<prefix>_<secret>``: the prefix (public, random) finds the row, and the sha256 of
the whole key is compared in constant time with the stored hash. Only the hash is stored; the
plaintext is shown once, when the key is created.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.errors import Unauthorized
from store import tenants as tenant_store
from store.base import utcnow
from store.tables import ApiKey

KEY_PREFIX = "dsk"
_PREFIX_BYTES = 6
_SECRET_BYTES = 32
# Compared against when no row matches, so a miss costs the same as a hit.
_DUMMY_HASH = hashlib.sha256(b"descent-no-such-key").hexdigest()


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    api_key_id: uuid.UUID


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _split(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = key.split("_", 2)  # the secret may itself contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 2 * _PREFIX_BYTES:
        return None
    return parts[1]


def _unauthorized() -> Unauthorized:
    # One message for missing, malformed, unknown and revoked keys: nothing to probe.
    return Unauthorized("missing or invalid API key", code="unauthorized")


def create_api_key(session: Session, tenant_name: str, *, key_name: str | None = None) -> str:
    """Create a key for ``tenant_name`` (creating the tenant if needed); returns the plaintext."""
    tenant = tenant_store.get_tenant_by_name(session, tenant_name)
    if tenant is None:
        tenant = tenant_store.insert_tenant(session, tenant_name)
    prefix = secrets.token_hex(_PREFIX_BYTES)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    tenant_store.insert_api_key(
        session, tenant_id=tenant.id, prefix=prefix, key_hash=hash_key(key), name=key_name
    )
    session.commit()
    return key


def authenticate(session: Session, key: str | None) -> Principal:
    """The tenant a key belongs to; Unauthorized for anything else."""
    if not key:
        raise _unauthorized()
    prefix = _split(key)
    found = tenant_store.get_api_key_with_tenant(session, prefix) if prefix else None
    stored = found[0].key_hash if found else _DUMMY_HASH
    matches = secrets.compare_digest(hash_key(key), stored)
    if found is None or not matches:
        raise _unauthorized()
    api_key, tenant = found
    if api_key.revoked_at is not None or tenant.disabled_at is not None:
        raise _unauthorized()
    return Principal(tenant_id=tenant.id, api_key_id=api_key.id)


class PrincipalCache:
    """Recently authenticated keys (by their sha256), so a hot path such as predict does not
    query the database on every request. Entries expire after ``ttl`` seconds."""

    def __init__(
        self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, key: str | None) -> tuple[str, Principal | None]:
        """The key's hash and its cached principal, if still fresh."""
        digest = hash_key(key) if key else ""
        entry = self._entries.get(digest) if self.ttl > 0 and digest else None
        if entry is None or entry[1] < self.clock():
            return digest, None
        return digest, entry[0]

    def put(self, digest: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # bounded memory; a miss only costs one database read
        self._entries[digest] = (principal, self.clock() + self.ttl)


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret, never its hash."""

    id: uuid.UUID
    tenant: str
    display: str  # ``dsk_<prefix>_…``: enough to recognise a key, useless to call with
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def _info(key: ApiKey, tenant_name: str) -> KeyInfo:
    return KeyInfo(
        id=key.id,
        tenant=tenant_name,
        display=f"{KEY_PREFIX}_{key.prefix}_…",
        name=key.name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def list_api_keys(session: Session, tenant_name: str) -> list[KeyInfo]:
    """The keys of a tenant, oldest first; unknown tenant: an empty list."""
    tenant = tenant_store.get_tenant_by_name(session, tenant_name)
    if tenant is None:
        return []
    return [_info(k, tenant.name) for k in tenant_store.list_api_keys(session, tenant_id=tenant.id)]


def _find_key(session: Session, ref: str) -> ApiKey | None:
    """A key by id (UUID), by prefix (``0123abcd4567``), by its display form
    (``dsk_0123abcd4567_…``) or by the whole key."""
    ref = ref.strip()
    try:
        return tenant_store.get_api_key_by_id(session, uuid.UUID(ref))
    except ValueError:
        pass
    prefix = ref
    if ref.startswith(f"{KEY_PREFIX}_"):
        prefix = ref.split("_", 2)[1]
    if len(prefix) != 2 * _PREFIX_BYTES or any(c not in "0123456789abcdef" for c in prefix):
        return None
    return tenant_store.get_api_key_by_prefix(session, prefix)


def revoke_key_ref(session: Session, ref: str) -> KeyInfo | None:
    """Revoke the key ``ref`` names (see ``_find_key``); None if there is no such key.
    Revoking twice keeps the first revocation time. The key answers 401 from then on."""
    key = _find_key(session, ref)
    if key is None:
        session.rollback()
        return None
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    tenant = tenant_store.get_tenant(session, key.tenant_id)
    info = _info(key, tenant.name if tenant else "?")
    session.commit()
    return info


def disable_tenant(session: Session, tenant_name: str) -> None:
    tenant = tenant_store.get_tenant_by_name(session, tenant_name)
    if tenant is not None and tenant.disabled_at is None:
        tenant.disabled_at = utcnow()
    session.commit()
