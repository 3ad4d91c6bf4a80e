"""Request dependencies: settings, database sessions, the calling tenant."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from api.principal import SCOPE_KEY, authorize
from api.read_cache import Finished
from core import auth, web_sessions
from core.broker import Enqueuer
from core.config import Settings
from store.session import Database

T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer dsk_...`")


# Getters of app state are `async def`: a plain `def` dependency costs a thread-pool hop.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def write_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """For routes that change state; the core function commits. SQLite: BEGIN IMMEDIATE."""
    with db.session() as session:
        yield session


def read_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.read_session() as session:
        yield session


async def current_principal(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> auth.Principal:
    """The caller's tenant. Every /v1 route depends on this (it also documents the bearer
    scheme). The edge middleware has normally authenticated the request and counted it against
    the tenant's rate before the body was read; the principal it found is taken from the
    request state. Without the middleware (an app assembled by hand) the same function runs
    here."""
    principal: auth.Principal | None = request.scope.get("state", {}).get(SCOPE_KEY)
    if principal is None:
        principal = await authorize(
            request.app.state,
            request.headers.get("authorization"),
            session_token=request.cookies.get(web_sessions.COOKIE_NAME),
            method=request.method,
            csrf_token=request.headers.get(web_sessions.CSRF_HEADER),
        )
    return principal


class Reader:
    """Runs a function of a read connection (``Database.read``: on PostgreSQL on the event loop,
    otherwise in one worker thread), so the route stays ``async`` and a read costs one hop at
    most (a sync route with a ReadSession dependency costs four: session in, endpoint, response
    serialization, session out). A connection, not a session: the reads return rows, not ORM
    entities."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, work: Callable[[Connection], T]) -> T:
        return await self.db.read(work)


async def get_reader(request: Request) -> Reader:
    return Reader(request.app.state.db)


def json_response(body: BaseModel, *, finished: bool = False) -> Response:
    """What FastAPI sends for a route returning ``body`` (pydantic's JSON), without it: for
    the reads the edge answers (api.fast_routes). ``finished``: the object will not change, so
    the edge may keep the answer (api.read_cache)."""
    kind = Finished if finished else Response
    return kind(body.model_dump_json(), media_type="application/json")


@functools.lru_cache(maxsize=4096)
def path_uuid(text: str) -> uuid.UUID:
    """An id from a path the edge matched (its pattern has checked the form): parsed once per
    id, as a hot path repeats a few (uuid.UUID's parsing is pure Python)."""
    return uuid.UUID(text)


def is_multipart(request: Request) -> bool:
    """Whether the body is multipart/form-data, from the raw headers (no Headers object)."""
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return bool(value.startswith(b"multipart/form-data"))
    return False


async def read_body(request: Request) -> bytes:
    """The whole body, straight from ``receive`` (Starlette's ``Request.body`` goes through an
    async generator: a few microseconds of the predict path)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


ReaderDep = Annotated[Reader, Depends(get_reader)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the session closes (and its connection goes back to the pool) before the
# response starts, so an error in closing it (the database went away) is still a 503, never
# an exception after a response the server then answers by dropping the connection.
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
PrincipalDep = Annotated[auth.Principal, Depends(current_principal)]


async def get_enqueue(request: Request) -> Enqueuer:
    """Sends a run id to the workers by task name (the web process imports no worker code)."""
    enqueue: Enqueuer = request.app.state.enqueue
    return enqueue


EnqueueDep = Annotated[Enqueuer, Depends(get_enqueue)]
