"""The model registry: per tenant, a name holds numbered versions (1, 2, 3 ...), each pointing
at a trained model, and aliases ("production" -> 3) that callers predict with. Moving an alias
back is a rollback; every move is kept (who, when, from, to)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import predictions
from core.errors import Conflict, InvalidInput, NotFound
from store import registry as registry_store
from store.base import Reads, utcnow
from store.tables import AliasMove, ModelAlias, ModelVersion, RegisteredModel

# Names and aliases go in URLs: letters, digits, ".", "_", "-"; an alias is not a bare number
# (that would read as a version).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Registered:
    row: RegisteredModel
    versions: list[ModelVersion]
    aliases: list[ModelAlias]


def _check_name(value: str, field: str) -> None:
    if not _NAME.fullmatch(value) or (field == "alias" and value.isdigit()):
        raise InvalidInput(
            f"{field} {value[:120]!r} must be 1-100 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit" + (", and not only digits" if field == "alias" else ""),
            {"field": field},
            code="invalid_name",
        )


def _registered(session: Session, tenant_id: uuid.UUID, name: str) -> RegisteredModel:
    row = registry_store.get_registered(session, tenant_id=tenant_id, name=name)
    if row is None:
        raise NotFound(f"no registered model {name[:120]!r}", code="registered_model_not_found")
    return row


def _no_alias(name: str, alias: str) -> NotFound:
    return NotFound(f"{name!r} has no alias {alias[:120]!r}", code="alias_not_found")


def create(session: Session, *, tenant_id: uuid.UUID, name: str) -> Registered:
    _check_name(name, "name")
    row = RegisteredModel(tenant_id=tenant_id, name=name)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"{name!r} is already registered", code="name_taken") from None
    return Registered(row, [], [])


def describe(session: Session, *, tenant_id: uuid.UUID, name: str) -> Registered:
    row = _registered(session, tenant_id, name)
    return Registered(
        row,
        registry_store.versions(session, registered_id=row.id),
        registry_store.aliases(session, registered_id=row.id),
    )


def list_registered(session: Session, *, tenant_id: uuid.UUID) -> list[RegisteredModel]:
    return registry_store.list_registered(session, tenant_id=tenant_id, limit=1000)


def add_version(
    session: Session, *, tenant_id: uuid.UUID, name: str, model_id: uuid.UUID
) -> ModelVersion:
    """The next version number; two racing adds get two numbers (the unique key decides)."""
    registered = _registered(session, tenant_id, name)
    predictions.get_model(session, tenant_id=tenant_id, model_id=model_id)  # 404 if not ours
    for _attempt in range(5):
        number = registry_store.last_version(session, registered_id=registered.id) + 1
        row = ModelVersion(
            tenant_id=tenant_id, registered_model_id=registered.id, version=number,
            model_id=model_id,
        )  # fmt: skip
        session.add(row)
        try:
            session.commit()
            return row
        except IntegrityError:
            session.rollback()
    raise Conflict("too many versions added at once; try again", code="version_race")


def _version(session: Session, registered: RegisteredModel, number: int) -> ModelVersion:
    row = registry_store.version(session, registered_id=registered.id, number=number)
    if row is None:
        raise NotFound(
            f"{registered.name!r} has no version {number}", {"version": number},
            code="version_not_found",
        )  # fmt: skip
    return row


def set_alias(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    api_key_id: uuid.UUID,
    name: str,
    alias: str,
    version: int,
) -> ModelAlias:
    _check_name(alias, "alias")
    registered = _registered(session, tenant_id, name)
    _version(session, registered, version)
    row = registry_store.alias(session, registered_id=registered.id, name=alias)
    before = row.version if row else None
    if row is None:
        row = ModelAlias(
            tenant_id=tenant_id, registered_model_id=registered.id, alias=alias, version=version
        )
        session.add(row)
    else:
        row.version, row.updated_at = version, utcnow()
    session.add(_move(registered, alias, before, version, api_key_id))
    try:
        session.commit()
    except IntegrityError:  # set at the same moment by another request
        session.rollback()
        raise Conflict(f"alias {alias!r} changed meanwhile; try again", code="alias_race") from None
    return row


def delete_alias(
    session: Session, *, tenant_id: uuid.UUID, api_key_id: uuid.UUID, name: str, alias: str
) -> None:
    registered = _registered(session, tenant_id, name)
    row = registry_store.alias(session, registered_id=registered.id, name=alias)
    if row is None:
        raise _no_alias(name, alias)
    session.add(_move(registered, alias, row.version, None, api_key_id))
    session.delete(row)
    session.commit()


def alias_history(
    session: Session, *, tenant_id: uuid.UUID, name: str, alias: str
) -> list[AliasMove]:
    registered = _registered(session, tenant_id, name)
    moves = registry_store.alias_moves(session, registered_id=registered.id, name=alias)
    if not moves:
        raise _no_alias(name, alias)
    return moves


def resolve(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    name: str,
    alias: str | None = None,
    version: int | None = None,
) -> Resolved:
    """The version an alias (or a version number) names now: what a predict call uses. One
    round trip on a read connection (the predict path calls it from the event loop); a 404
    names what is missing: the name, the alias or the version."""
    row = registry_store.target(reads, tenant_id=tenant_id, name=name, alias=alias, version=version)
    if row is None:
        raise NotFound(f"no registered model {name[:120]!r}", code="registered_model_not_found")
    if alias is not None and row.alias_version is None:
        raise _no_alias(name, alias)
    if row.version is None:
        number = row.alias_version if alias is not None else version
        raise NotFound(
            f"{name!r} has no version {number}", {"version": number}, code="version_not_found"
        )
    return Resolved(model_id=row.model_id, version=row.version)


# How stale a process's view of an alias may be. API.md promises that a move reaches every API
# process within a second: an answer older than FRESH is refreshed in the background (the
# request uses it meanwhile), and one older than MAX_AGE is not used at all.
RESOLVE_FRESH_SECONDS = 0.25
RESOLVE_MAX_AGE_SECONDS = 0.75


@dataclass(frozen=True)
class Resolved:
    model_id: uuid.UUID
    version: int


ResolveKey = tuple[uuid.UUID, str, str | None, int | None]


class ResolveCache:
    """What each alias and version named a moment ago, per API process: a predict by alias
    reads the database about once per ``fresh`` seconds per alias rather than once per call,
    never waits for that read while it holds a recent answer, and a moved alias is used
    everywhere within ``max_age`` (no message between processes to lose). Only answers are
    kept; a name that does not resolve is asked again (the rate limit bounds it)."""

    def __init__(
        self,
        fresh: float = RESOLVE_FRESH_SECONDS,
        max_age: float = RESOLVE_MAX_AGE_SECONDS,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh = fresh
        self.max_age = max_age
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[ResolveKey, tuple[Resolved, float]] = {}  # value, when read
        self._refreshing: set[ResolveKey] = set()
        self._lock = threading.Lock()

    def get(self, key: ResolveKey) -> tuple[Resolved | None, bool]:
        """The answer if still usable, and whether it is due a refresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None, True
        age = self._clock() - entry[1]
        if age > self.max_age:
            return None, True
        return entry[0], age > self.fresh

    def claim_refresh(self, key: ResolveKey) -> bool:
        """True for the one caller that should refresh ``key`` now."""
        with self._lock:
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
            return True

    def put(self, key: ResolveKey, value: Resolved) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # bounded memory; a miss costs one read
            self._entries[key] = (value, self._clock())
            self._refreshing.discard(key)

    def forget(self, key: ResolveKey) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._refreshing.discard(key)


def _move(
    registered: RegisteredModel, alias: str, before: int | None, after: int | None,
    api_key_id: uuid.UUID,
) -> AliasMove:  # fmt: skip
    return AliasMove(
        tenant_id=registered.tenant_id, registered_model_id=registered.id, alias=alias,
        from_version=before, to_version=after, api_key_id=api_key_id,
    )  # fmt: skip
