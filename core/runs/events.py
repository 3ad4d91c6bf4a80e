"""Progress news for waiting clients (Server-Sent Events and long polls).

The database is the truth; a wake-up only tells an API process to look again. Whoever commits a
change to a run (a worker's epoch, a status change) calls a ``Publisher``; with a Redis broker
that publishes the run id on one pub/sub channel, which every API process subscribes to once.
Each API process also polls, in one query for all the runs its clients watch, so news arrives
without Redis (the embedded default on SQLite) and after a lost message. A waiting client holds
an ``asyncio.Event`` only: no database connection, no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy import Row

from core.config import Settings
from core.runs import service
from store import progress as progress_store
from store import runs as run_store
from store.session import Database
from store.tables import FINISHED_RUN_STATUSES, RunStatus

log = logging.getLogger(__name__)

CHANNEL = "descent:runs"
_QUIET_AFTER_FAILURE_SECONDS = 5.0
Publisher = Callable[[uuid.UUID], None]


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def no_publisher(_run_id: uuid.UUID) -> None:
    """Without Redis the listeners' polling finds the change."""


def make_publisher(settings: Settings) -> Publisher:
    """Publishes a run id after a commit. Best effort by design: a lost wake-up costs a client
    one poll interval, never data, so a Redis error is logged and swallowed. One per broker
    URL and process (a worker trains many runs on one connection)."""
    if not _is_redis(settings.broker_url):
        return no_publisher
    return _redis_publisher(settings.broker_url)


@functools.lru_cache(maxsize=4)
def _redis_publisher(url: str) -> Publisher:
    from core.limits import redis_client

    client = redis_client(url)
    quiet_until = 0.0

    def publish(run_id: uuid.UUID) -> None:
        nonlocal quiet_until
        # After a failure, stay quiet a while: each try against a Redis that is down costs
        # up to the client's timeout, and training must not wait on news.
        if time.monotonic() < quiet_until:
            return
        try:
            client.publish(CHANNEL, str(run_id))
        except Exception as exc:  # redis.RedisError and socket errors alike
            quiet_until = time.monotonic() + _QUIET_AFTER_FAILURE_SECONDS
            log.debug("could not publish news of run %s: %s", run_id, exc)

    return publish


@dataclass(frozen=True)
class Progress:
    """What a watcher has not seen yet: the run as it is now and its epochs after a point."""

    run: Row[Any]
    epochs: list[Row[Any]]

    @property
    def final(self) -> bool:
        return self.run.status in FINISHED_RUN_STATUSES


def read_progress(
    db: Database, *, tenant_id: uuid.UUID, run_id: uuid.UUID, after_epoch: int
) -> Progress:
    """One short read transaction (call it in a worker thread)."""
    with db.read_connection() as conn:
        run = service.run_view(conn, tenant_id=tenant_id, run_id=run_id)
        epochs = run_store.list_epochs(
            conn, tenant_id=tenant_id, run_id=run_id, since_epoch=after_epoch
        )
    return Progress(run=run, epochs=epochs)


@dataclass(frozen=True)
class StatusNews:
    status: str
    error: dict[str, str] | None
    model_id: uuid.UUID | None

    @classmethod
    def of(cls, run: Row[Any]) -> StatusNews:
        error = (
            {"code": run.error_code, "message": run.error_message or ""} if run.error_code else None
        )
        return cls(status=run.status.value, error=error, model_id=run.model_id)


@dataclass
class Follow:
    """One client following one run: every epoch after ``after_epoch`` once and in order, a
    status item whenever the status differs from the last one sent (and "running" before the
    first epoch of a run last seen queued), until a final status."""

    watch: RunWatch
    db: Database
    tenant_id: uuid.UUID
    run_id: uuid.UUID
    after_epoch: int

    async def _read(self, seen: int) -> Progress:
        """What is new since ``after_epoch``, as of news generation ``seen`` or later."""
        return await self.watch.read(
            tenant_id=self.tenant_id, run_id=self.run_id, after_epoch=self.after_epoch, seen=seen
        )

    async def check_exists(self) -> None:
        await current_run(self.db, tenant_id=self.tenant_id, run_id=self.run_id)

    async def items(self) -> AsyncIterator[Row[Any] | StatusNews]:
        """Epoch rows (run_epochs) and status news, in the order they happened."""
        sent_status: str | None = None
        async with self.watch.subscribe(self.run_id) as news:
            while True:
                news.clear()
                progress = await self._read(self.watch.generation(self.run_id))
                if progress.epochs and sent_status == RunStatus.queued:
                    # The run went on between two looks. Epochs mean it ran: a client that saw
                    # "queued" sees "running" before the first epoch, as it happened.
                    sent_status = RunStatus.running.value
                    yield StatusNews(status=sent_status, error=None, model_id=None)
                for row in progress.epochs:
                    yield row
                    self.after_epoch = row.epoch
                status = StatusNews.of(progress.run)
                if status.status != sent_status:
                    sent_status = status.status
                    yield status
                if progress.final:
                    return
                await news.wait()


async def wait_for_news(follow: Follow, *, wait_seconds: float) -> Row[Any]:
    """The run as soon as it has an epoch after ``follow.after_epoch`` or is final, or as it is
    after ``wait_seconds`` (a long poll)."""
    async with follow.watch.subscribe(follow.run_id) as news:
        with anyio.move_on_after(wait_seconds):
            while True:
                news.clear()
                progress = await follow._read(follow.watch.generation(follow.run_id))
                # The run row's epoch, not the epochs read after it: the answer must show the
                # epoch it was woken for (both are written in one transaction).
                if progress.run.epoch > follow.after_epoch or progress.final:
                    return progress.run
                await news.wait()
    return (await follow._read(follow.watch.generation(follow.run_id))).run


async def current_run(db: Database, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Row[Any]:
    """The run as it is now (one read)."""
    return await db.read(lambda conn: service.run_view(conn, tenant_id=tenant_id, run_id=run_id))


async def long_poll(
    watch: RunWatch,
    db: Database,
    *,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    wait_seconds: float,
    after_epoch: int | None,
) -> Row[Any]:
    """``GET /v1/runs/{id}?wait_seconds=S&after_epoch=N``: the run once it has an epoch after N
    (default: the epoch it is at now, so the answer comes with the next one) or is final, or
    as it is after S seconds."""
    if after_epoch is None:
        now = await current_run(db, tenant_id=tenant_id, run_id=run_id)
        after_epoch = now.epoch
    follow = Follow(watch=watch, db=db, tenant_id=tenant_id, run_id=run_id, after_epoch=after_epoch)
    return await wait_for_news(follow, wait_seconds=wait_seconds)


@dataclass
class _SharedRead:
    generation: int
    after_epoch: int
    task: asyncio.Future[Progress]


class RunWatch:
    """One per API process: wakes the clients waiting on a run when it may have changed."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._redis_url = settings.broker_url if _is_redis(settings.broker_url) else None
        self._poll_seconds = settings.events_poll_seconds
        self._fallback_poll_seconds = settings.events_fallback_poll_seconds
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._marks: dict[uuid.UUID, progress_store.Mark] = {}
        # Wake-ups so far, per run; and the read in flight per (tenant, run), shared by every
        # follower woken by the same news (500 watchers of one run cost one query an epoch).
        self._generations: dict[uuid.UUID, int] = {}
        self._reads: dict[tuple[uuid.UUID, uuid.UUID], _SharedRead] = {}
        self._subscribed = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def watching(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    async def start(self) -> None:
        """Started by the first subscriber (so an app that never streams polls nothing), and
        again if its tasks ended with the event loop they ran on (an in-process test client
        runs each request on a loop of its own)."""
        loop = asyncio.get_running_loop()
        if self._tasks and all(t.get_loop() is loop and not t.done() for t in self._tasks):
            return
        self._tasks.clear()
        self._subscribed = False
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="run-watch-poll"))
        if self._redis_url is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="run-watch-redis"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @contextlib.asynccontextmanager
    async def subscribe(self, run_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the run may have changed. Subscribe before reading the run,
        and clear the event before each read, so no change falls between the two."""
        await self.start()
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(run_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[run_id]
                    self._marks.pop(run_id, None)
                    self._generations.pop(run_id, None)

    def wake(self, run_id: uuid.UUID) -> None:
        waiters = self._waiters.get(run_id)
        if not waiters:
            return  # news of a run nobody here watches (Redis carries every run's)
        self._generations[run_id] = self._generations.get(run_id, 0) + 1
        for event in waiters:
            event.set()

    def generation(self, run_id: uuid.UUID) -> int:
        """How many wake-ups the run has had; a follower notes it when it clears its event."""
        return self._generations.get(run_id, 0)

    async def read(
        self, *, tenant_id: uuid.UUID, run_id: uuid.UUID, after_epoch: int, seen: int
    ) -> Progress:
        """The run and its epochs after ``after_epoch``, from a read that started at wake-up
        ``seen`` or later (so it sees every commit that news announced). A read in flight that
        qualifies is joined instead of repeated."""
        key = (tenant_id, run_id)
        shared = self._reads.get(key)
        if shared is None or shared.generation < seen or shared.after_epoch > after_epoch:
            shared = _SharedRead(
                generation=self.generation(run_id),
                after_epoch=after_epoch,
                task=asyncio.ensure_future(
                    anyio.to_thread.run_sync(
                        lambda: read_progress(
                            self._db, tenant_id=tenant_id, run_id=run_id, after_epoch=after_epoch
                        )
                    )
                ),
            )
            self._reads[key] = shared
            shared.task.add_done_callback(lambda _task: self._forget(key, shared))
        progress = await asyncio.shield(shared.task)
        if shared.after_epoch == after_epoch:
            return progress
        return Progress(progress.run, [e for e in progress.epochs if e.epoch > after_epoch])

    def _forget(self, key: tuple[uuid.UUID, uuid.UUID], shared: _SharedRead) -> None:
        if self._reads.get(key) is shared:
            del self._reads[key]

    async def _poll_loop(self) -> None:
        while True:
            # With a live Redis subscription polling is only the safety net.
            await asyncio.sleep(
                self._fallback_poll_seconds if self._subscribed else self._poll_seconds
            )
            if not self._waiters:
                continue
            watched = list(self._waiters)
            try:
                marks = await anyio.to_thread.run_sync(self._read_marks, watched)
            except Exception as exc:  # a database outage must not end the loop
                log.warning("run watch: poll failed: %s", exc)
                continue
            for run_id, mark in marks.items():
                if self._marks.get(run_id) != mark:
                    self._marks[run_id] = mark
                    self.wake(run_id)

    def _read_marks(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, progress_store.Mark]:
        with self._db.read_session() as session:
            return progress_store.marks(session, run_ids)

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        assert self._redis_url is not None
        delay = 0.5
        while True:
            client: Any = aioredis.Redis.from_url(self._redis_url, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._subscribed, delay = True, 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake_named(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: polling carries the news meanwhile
                log.warning("run watch: redis subscription lost (%s); polling", exc)
            finally:
                self._subscribed = False
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _wake_named(self, data: Any) -> None:
        try:
            run_id = uuid.UUID(data.decode() if isinstance(data, bytes) else str(data))
        except ValueError:
            return
        self.wake(run_id)


__all__ = [
    "CHANNEL",
    "Follow",
    "Progress",
    "Publisher",
    "RunWatch",
    "StatusNews",
    "current_run",
    "long_poll",
    "make_publisher",
    "no_publisher",
    "read_progress",
    "wait_for_news",
]
