"""The model registry: names, numbered versions, aliases (moved to roll out, moved back to roll
back), and predict by alias or by version. Thin: each route calls one core.registry function."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from re import Match
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from api import examples as ex
from api.deps import PrincipalDep, ReadSession, WriteSession
from api.examples import examples
from api.routes.models import PREDICT_BODY, predict_response
from api.schemas import ErrorResponse, PredictOut
from core import registry
from core.auth import Principal
from store.session import Database

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/registry",
    tags=["registry"],
    responses={
        400: {"model": ErrorResponse, "description": "Malformed JSON"},
        422: {"model": ErrorResponse, "description": "A name, alias or field is not valid"},
        429: {"model": ErrorResponse, "description": "Rate limited (see Retry-After)"},
    },
)

NameParam = Annotated[str, Path(min_length=1, max_length=100)]
AliasParam = Annotated[str, Path(min_length=1, max_length=100)]
VersionParam = Annotated[int, Path(ge=1, le=2**31 - 1)]
_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "No such name, version or alias (or not yours)"},
}


def _json_example(example: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"example": example}}}


class RegisterIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.REGISTER_IN))

    name: str = Field(min_length=1, max_length=100, examples=["digits"])


class VersionIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.VERSION_IN))

    model_id: uuid.UUID


class AliasIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.ALIAS_IN))

    version: int = Field(ge=1, le=2**31 - 1)


class VersionOut(BaseModel):
    version: int
    model_id: uuid.UUID
    created_at: datetime


class RegisteredOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.REGISTERED))

    name: str
    created_at: datetime
    versions: list[VersionOut]
    aliases: dict[str, int]

    @classmethod
    def of(cls, found: registry.Registered) -> RegisteredOut:
        return cls(
            name=found.row.name,
            created_at=found.row.created_at,
            versions=[
                VersionOut(version=v.version, model_id=v.model_id, created_at=v.created_at)
                for v in found.versions
            ],
            aliases={a.alias: a.version for a in found.aliases},
        )


class NewVersionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.NEW_VERSION))

    name: str
    version: int
    model_id: uuid.UUID


class MoveOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.MOVES[1]))

    alias: str
    from_version: int | None
    to_version: int | None  # null: the alias was removed
    api_key_id: uuid.UUID | None  # who (a key's id, as `descent keys list` shows it)
    moved_at: datetime


class RegistryList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.REGISTRY_LIST))

    items: list[dict[str, Any]]


@router.post("", status_code=201, responses={**_errors, 409: {"model": ErrorResponse}})
def register(body: RegisterIn, principal: PrincipalDep, session: WriteSession) -> RegisteredOut:
    return RegisteredOut.of(registry.create(session, tenant_id=principal.tenant_id, name=body.name))


@router.get("", responses=_errors)
def list_names(principal: PrincipalDep, session: ReadSession) -> RegistryList:
    rows = registry.list_registered(session, tenant_id=principal.tenant_id)
    return RegistryList(items=[{"name": r.name, "created_at": r.created_at} for r in rows])


@router.get("/{name}", responses=_errors)
def describe(name: NameParam, principal: PrincipalDep, session: ReadSession) -> RegisteredOut:
    return RegisteredOut.of(registry.describe(session, tenant_id=principal.tenant_id, name=name))


@router.post("/{name}/versions", status_code=201, responses=_errors)
def add_version(
    name: NameParam, body: VersionIn, principal: PrincipalDep, session: WriteSession
) -> NewVersionOut:
    row = registry.add_version(
        session, tenant_id=principal.tenant_id, name=name, model_id=body.model_id
    )
    return NewVersionOut(name=name, version=row.version, model_id=row.model_id)


def _forget(request: Request, principal: Principal, name: str, alias: str) -> None:
    # The process that moved an alias predicts with the new version at once; the others
    # within the cache's time to live.
    cache: registry.ResolveCache = request.app.state.resolve_cache
    cache.forget((principal.tenant_id, name, alias, None))


@router.put("/{name}/aliases/{alias}", responses={**_errors, 200: _json_example(ex.ALIAS_SET)})
def set_alias(
    name: NameParam,
    alias: AliasParam,
    body: AliasIn,
    principal: PrincipalDep,
    session: WriteSession,
    request: Request,
) -> dict[str, Any]:
    row = registry.set_alias(
        session, tenant_id=principal.tenant_id, api_key_id=principal.api_key_id, name=name,
        alias=alias, version=body.version,
    )  # fmt: skip
    _forget(request, principal, name, alias)
    return {"name": name, "alias": row.alias, "version": row.version}


@router.delete("/{name}/aliases/{alias}", status_code=204, responses=_errors)
def delete_alias(
    name: NameParam,
    alias: AliasParam,
    principal: PrincipalDep,
    session: WriteSession,
    request: Request,
) -> Response:
    registry.delete_alias(
        session, tenant_id=principal.tenant_id, api_key_id=principal.api_key_id, name=name,
        alias=alias,
    )  # fmt: skip
    _forget(request, principal, name, alias)
    return Response(status_code=204)


@router.get("/{name}/aliases/{alias}/history", responses={**_errors, 200: _json_example(ex.MOVES)})
def alias_history(
    name: NameParam, alias: AliasParam, principal: PrincipalDep, session: ReadSession
) -> list[MoveOut]:
    moves = registry.alias_history(session, tenant_id=principal.tenant_id, name=name, alias=alias)
    return [
        MoveOut(
            alias=m.alias,
            from_version=m.from_version,
            to_version=m.to_version,
            api_key_id=m.api_key_id,
            moved_at=m.moved_at,
        )
        for m in moves
    ]


_PREDICT = {
    "response_model": PredictOut,
    "openapi_extra": PREDICT_BODY,
    "responses": {
        **_errors,
        409: {"model": ErrorResponse, "description": "The model is not ready"},
        413: {"model": ErrorResponse, "description": "Too many rows, or a body over the cap"},
        200: _json_example(ex.REGISTRY_PREDICT_OUT),
    },
    "description": "The same bodies and answers as model predict, plus `name` and `version`.",
}


async def _predict(
    request: Request, principal: Principal, name: str, alias: str | None, version: int | None
) -> Response:
    state = request.app.state
    cache: registry.ResolveCache = state.resolve_cache
    db: Database = state.db
    key = (principal.tenant_id, name, alias, version)

    def resolve(conn: Connection) -> registry.Resolved:
        return registry.resolve(
            conn, tenant_id=principal.tenant_id, name=name, alias=alias, version=version
        )

    found, due = cache.get(key)
    if found is None:
        found = await db.read(resolve)
        cache.put(key, found)
    elif due and cache.claim_refresh(key):
        _refresh_in_background(cache, key, lambda: db.read(resolve))
    extra = {"name": name, "version": found.version}
    return await predict_response(request, principal.tenant_id, found.model_id, extra)


# Held until done: the event loop keeps only weak references to tasks.
_refreshes: set[asyncio.Task[None]] = set()


def _refresh_in_background(
    cache: registry.ResolveCache,
    key: registry.ResolveKey,
    resolve: Callable[[], Awaitable[registry.Resolved]],
) -> None:
    async def refresh() -> None:
        try:
            cache.put(key, await resolve())
        except Exception as exc:  # gone, or the database is down: the next call asks itself
            log.info("registry: refreshing %s failed: %s", key[1:], exc)
            cache.forget(key)

    task = asyncio.create_task(refresh())
    _refreshes.add(task)
    task.add_done_callback(_refreshes.discard)


async def predict_by_alias_at_edge(
    request: Request, principal: Principal, params: Match[str]
) -> Response:
    """``POST /v1/registry/{name}/aliases/{alias}/predict`` routed by the edge (api.fast_routes)."""
    return await _predict(request, principal, params[1], params[2], None)


async def predict_by_version_at_edge(
    request: Request, principal: Principal, params: Match[str]
) -> Response:
    return await _predict(request, principal, params[1], None, int(params[2]))


@router.post("/{name}/aliases/{alias}/predict", **_PREDICT)  # type: ignore[arg-type]
async def predict_by_alias(
    name: NameParam, alias: AliasParam, request: Request, principal: PrincipalDep
) -> Response:
    return await _predict(request, principal, name, alias, None)


@router.post("/{name}/versions/{version}/predict", **_PREDICT)  # type: ignore[arg-type]
async def predict_by_version(
    name: NameParam, version: VersionParam, request: Request, principal: PrincipalDep
) -> Response:
    return await _predict(request, principal, name, None, version)
