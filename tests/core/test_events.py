"""core.runs.events on both backends: a follower sees every epoch once and in order while a
worker trains, replays from a resume point, ends on the final status, holds no database
connection while it waits, and the long poll answers on news or at its deadline."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row

from core import runs
from core.config import Settings
from core.runs import events, lease, training
from models import EpochEnd
from store.session import Database
from tests.api.runs_fixtures import SPEC, Sent, tenant_with_blobs

EPOCHS = 6


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"events_poll_seconds": 0.02, "cancel_poll_seconds": 0.0})


@pytest.fixture
def submitted(db: Database, fast: Settings, tmp_path: Path) -> tuple[uuid.UUID, uuid.UUID]:
    tenant, dataset_id = tenant_with_blobs(db, fast, tmp_path, "events")
    with db.session() as session:
        run = runs.submit_run(
            session, tenant_id=tenant, dataset_id=dataset_id, spec={**SPEC, "epochs": EPOCHS},
            name=None, settings=fast, enqueue=Sent(),
        )  # fmt: skip
    return tenant, run.id


def _slow_epochs(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    original = lease.Attempt.on_epoch

    def on_epoch(self: Any, e: EpochEnd) -> None:
        original(self, e)
        time.sleep(seconds)

    monkeypatch.setattr(lease.Attempt, "on_epoch", on_epoch)


async def _collect(follow: events.Follow) -> list[Row[Any] | events.StatusNews]:
    return [item async for item in follow.items()]


def _epochs(items: list[Row[Any] | events.StatusNews]) -> list[int]:
    return [i.epoch for i in items if not isinstance(i, events.StatusNews)]


def test_follower_sees_each_epoch_once_while_a_worker_trains(
    db: Database, fast: Settings, submitted: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    tenant, run_id = submitted
    _slow_epochs(monkeypatch, 0.05)
    watch = events.RunWatch(db, fast)
    follow = events.Follow(watch=watch, db=db, tenant_id=tenant, run_id=run_id, after_epoch=0)

    async def main() -> list[Row[Any] | events.StatusNews]:
        task = asyncio.create_task(_collect(follow))
        await asyncio.sleep(0.1)  # the follower is waiting on a queued run
        assert watch.watching == 1
        # Waiting holds no connection. The watch's one shared poll (every 20 ms here) may hold
        # one for its query at the moment of a sample; the waiter never does.
        samples = []
        for _ in range(20):
            samples.append(db.engine.pool.checkedout())  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        assert max(samples) <= 1 and 0 in samples, samples
        worker = threading.Thread(target=training.run_training, args=(db, run_id),
                                  kwargs={"settings": fast})  # fmt: skip
        worker.start()
        items = await asyncio.wait_for(task, 60)
        worker.join()
        await watch.stop()
        return items

    items = asyncio.run(main())
    epochs = _epochs(items)
    statuses = [i.status for i in items if isinstance(i, events.StatusNews)]
    assert epochs == list(range(1, EPOCHS + 1))
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    assert len(statuses) == len(set(statuses))  # each status change once
    final = items[-1]
    assert isinstance(final, events.StatusNews) and final.model_id is not None
    assert watch.watching == 0


def test_replay_after_a_resume_point_then_close(
    db: Database, fast: Settings, submitted: tuple[uuid.UUID, uuid.UUID]
) -> None:
    tenant, run_id = submitted
    assert training.run_training(db, run_id, settings=fast) == "succeeded"
    watch = events.RunWatch(db, fast)
    follow = events.Follow(watch=watch, db=db, tenant_id=tenant, run_id=run_id, after_epoch=4)
    items = asyncio.run(_collect(follow))
    assert _epochs(items) == [5, 6]
    assert [i.status for i in items if isinstance(i, events.StatusNews)] == ["succeeded"]


def test_long_poll_answers_on_news_or_at_the_deadline(
    db: Database, fast: Settings, submitted: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    tenant, run_id = submitted
    _slow_epochs(monkeypatch, 0.3)
    watch = events.RunWatch(db, fast)

    def follow(after: int) -> events.Follow:
        return events.Follow(watch=watch, db=db, tenant_id=tenant, run_id=run_id, after_epoch=after)

    async def main() -> None:
        started = time.monotonic()
        idle = await events.wait_for_news(follow(0), wait_seconds=0.3)
        assert idle.status.value == "queued" and time.monotonic() - started >= 0.3
        worker = threading.Thread(target=training.run_training, args=(db, run_id),
                                  kwargs={"settings": fast})  # fmt: skip
        worker.start()
        started = time.monotonic()
        news = await events.wait_for_news(follow(0), wait_seconds=30)
        assert news.epoch >= 1 and time.monotonic() - started < 10
        later = await events.wait_for_news(follow(news.epoch), wait_seconds=30)
        assert later.epoch > news.epoch
        worker.join()
        done = await events.wait_for_news(follow(EPOCHS), wait_seconds=30)
        assert done.status.value == "succeeded"
        await watch.stop()

    asyncio.run(main())


def test_followers_woken_by_the_same_news_share_one_read(
    db: Database, fast: Settings, submitted: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """50 watchers of one run cost one query per piece of news, not 50 (bench/stream_load.py:
    without sharing, 500 streams took predict to 0.08 of its rate)."""
    tenant, run_id = submitted
    _slow_epochs(monkeypatch, 0.05)
    reads: list[int] = []
    real = events.read_progress

    def counting(*args: Any, **kwargs: Any) -> events.Progress:
        reads.append(kwargs["after_epoch"])
        return real(*args, **kwargs)

    monkeypatch.setattr(events, "read_progress", counting)
    watch = events.RunWatch(db, fast)
    followers = [
        events.Follow(watch=watch, db=db, tenant_id=tenant, run_id=run_id, after_epoch=0)
        for _ in range(50)
    ]

    async def main() -> list[list[Row[Any] | events.StatusNews]]:
        tasks = [asyncio.create_task(_collect(f)) for f in followers]
        await asyncio.sleep(0.1)
        worker = threading.Thread(target=training.run_training, args=(db, run_id),
                                  kwargs={"settings": fast})  # fmt: skip
        worker.start()
        seen = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        worker.join()
        await watch.stop()
        return seen

    seen = asyncio.run(main())
    for items in seen:
        assert _epochs(items) == list(range(1, EPOCHS + 1))
        assert [i.status for i in items if isinstance(i, events.StatusNews)][-1] == "succeeded"
    # One read to start and about one per wake-up (an epoch, a status change), shared by all.
    assert len(reads) <= 4 * (EPOCHS + 3), len(reads)
    assert len(reads) < 50
