"""PostgreSQL reads on the API's event loop: no worker-thread hop and no SQLAlchemy execution
per read, for the reads the API answers most (a run, a history, the lists).

A read is a plain function of a connection (``work(conn)``, the same one the thread path runs,
so each query and its paging are written once). Here it runs in a greenlet on the event loop
(SQLAlchemy's own bridge, as its asyncio extension does) with a connection stand-in whose
``execute`` sends the statement through an asynchronous psycopg connection from a
psycopg_pool pool. Each statement is compiled once by SQLAlchemy for PostgreSQL; its bound
values and its result columns go through the same SQLAlchemy type processors the engine uses
(UTC timestamps, enums), so a row reads as the engine's would.

Measured per list of runs, 16 at once, CPU of the API process: 650 us through a worker thread
and the engine, 410 us through SQLAlchemy's asyncio engine, 180 us here (the round trip is the
same). Only ``execute`` with the result methods the store's reads use is offered; anything else
is an AttributeError, found by the API tests, which run on PostgreSQL.

psycopg errors leave as SQLAlchemy's (``DBAPIError.instance``): the API maps a database that is
down to 503 in one place, whichever path the read took.
"""

from __future__ import annotations

import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
import psycopg
from cachetools import LRUCache
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine, Select
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.util.concurrency import await_only, greenlet_spawn

from store.session import NoConnectionSoon

T = TypeVar("T")
Processor = Callable[[Any], Any] | None
# A longer answer's rows are made in a worker thread, so that one long history does not hold
# up the event loop's other requests for its whole length.
ROWS_ON_THE_LOOP = 2_000
# How the pool's connections show in pg_stat_activity.
APPLICATION_NAME = "descent-api-reads"


@dataclass(frozen=True)
class _Plan:
    """A statement compiled once: its SQL, its parameters' defaults and bind processors, and
    (from its first answer) its row type and result columns' processors, by position."""

    sql: str
    defaults: Mapping[str, Any]
    binds: Mapping[str, Processor]
    columns: Sequence[Any]  # the select's columns: their SQLAlchemy types
    rows: dict[tuple[Any, ...], tuple[type, Sequence[Processor]]] = field(default_factory=dict)

    def parameters(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        values = {**self.defaults, **(given or {})}
        for name, process in self.binds.items():
            if process is not None and name in values:
                values[name] = process(values[name])
        return values


class _Result:
    """The part of SQLAlchemy's Result the store's reads use."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise MultipleResultsFound("multiple rows where one or none was required")
        return self.first()

    def one(self) -> Any:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("no row where one was required")
        return row

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]


class _Connection:
    """What ``work(conn)`` sees: ``execute`` of a compiled-once select, awaited in place."""

    def __init__(self, reads: AsyncReads, conn: psycopg.AsyncConnection[Any]) -> None:
        self._reads = reads
        self._conn = conn

    def execute(self, statement: Select[Any], parameters: Mapping[str, Any] | None = None) -> Any:
        plan = self._reads.plan(statement)
        values = plan.parameters(parameters)
        try:
            description, rows = await_only(self._fetch(plan.sql, values))
        except psycopg.Error as exc:
            raise _sqlalchemy_error(plan.sql, values, exc) from exc
        row_type, processors = self._reads.row_shape(plan, description)

        def made() -> _Result:
            return _Result([
                row_type(*(v if p is None else p(v) for v, p in zip(row, processors, strict=True)))
                for row in rows
            ])  # fmt: skip

        if len(rows) > ROWS_ON_THE_LOOP:  # a long history: made off the loop, as before
            return await_only(anyio.to_thread.run_sync(made))
        return made()

    async def _fetch(self, sql: str, values: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]]]:
        async with self._conn.cursor() as cursor:
            await cursor.execute(sql, values)
            return cursor.description or [], await cursor.fetchall()


def _sqlalchemy_error(sql: str, values: Any, exc: Exception) -> Exception:
    return DBAPIError.instance(sql, values, exc, psycopg.Error)


class AsyncReads:
    """A pool of asynchronous PostgreSQL connections for reads (autocommit: a read is its one
    statement's round trip), opened in the API's lifespan and closed with it.

    ``size`` connections at most, kept open: under load the count stays flat. A connection
    idle for ``ping_after`` seconds is pinged before use (a PostgreSQL restart meanwhile closed
    it); one in steady use is not, so a busy API pays no extra round trip."""

    def __init__(
        self,
        engine: Engine,
        *,
        size: int,
        wait: float,
        ping_after: float,
        json_loads: Callable[[str | bytes], Any],
    ) -> None:
        self._dialect = engine.dialect
        # By statement object: the store builds each select once (a new one per call would
        # compile per call, and is bounded here).
        self._plans: LRUCache[Select[Any], _Plan] = LRUCache(256)
        self._ping_after = ping_after
        self._json_loads = json_loads
        self._idle_since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=size,
            timeout=wait,
            open=False,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
            configure=self._configure,
            check=self._check,
            reset=self._checked_in,
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, work: Callable[[Any], T]) -> T:
        """``work(conn)``, with ``conn.execute`` on one pooled connection; NoConnectionSoon if
        none is free within the pool's short wait."""
        try:
            async with self.pool.connection() as conn:
                return await greenlet_spawn(work, _Connection(self, conn))
        except PoolTimeout as exc:
            raise NoConnectionSoon(str(exc)) from exc
        except psycopg.Error as exc:  # the connection could not be made or checked
            raise _sqlalchemy_error("", None, exc) from exc

    def plan(self, statement: Select[Any]) -> _Plan:
        plan = self._plans.get(statement)
        if plan is None:
            plan = self._plans[statement] = self._compile(statement)
        return plan

    def row_shape(self, plan: _Plan, description: Any) -> tuple[type, Sequence[Processor]]:
        """The row type (named by the answer's columns, as the engine's rows are) and the
        columns' processors, which for some types depend on the type the server sent."""
        shape = tuple((column.name, column.type_code) for column in description)
        found = plan.rows.get(shape)
        if found is None:
            dialect = self._dialect
            if len(shape) != len(plan.columns):
                raise NotImplementedError(f"{len(shape)} columns from {plan.sql[:200]}")
            processors = [
                column.type.dialect_impl(dialect).result_processor(dialect, type_code)
                for column, (_, type_code) in zip(plan.columns, shape, strict=True)
            ]
            row_type = namedtuple("Row", [name for name, _ in shape])  # type: ignore[misc]
            found = plan.rows[shape] = (row_type, processors)
        return found

    def _compile(self, statement: Select[Any]) -> _Plan:
        dialect = self._dialect
        compiled = statement.compile(dialect=dialect)
        sql = str(compiled)
        if "POSTCOMPILE" in sql:  # an expanding IN: SQLAlchemy renders it per execution
            raise NotImplementedError(f"not compiled once: {sql[:200]}")
        named = [(name, bind) for bind, name in compiled.bind_names.items()]
        binds = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in named
        }
        # Values written into the statement (not bound by the caller).
        defaults = {name: bind.effective_value for name, bind in named if not bind.required}
        return _Plan(sql, defaults, binds, list(statement.selected_columns))

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        set_json_loads(self._json_loads, conn)  # the engine's JSON reader (json_deserializer)

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        since = self._idle_since.get(conn)
        if since is None or time.monotonic() - since > self._ping_after:
            await conn.execute("SELECT 1")

    async def _checked_in(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._idle_since[conn] = time.monotonic()
