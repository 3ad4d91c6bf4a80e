"""What the dashboard reads, on both backends: history thinned in the database (first, last,
evenly spaced rows between and the best epoch), and the runs browse (filters, a name filter that
treats % and _ as text, sort by best epoch with runs without a validation split after, page
numbers)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from core import runs
from core.auth import authenticate, create_api_key
from core.config import Settings
from core.datasets import create_dataset
from core.errors import InvalidInput
from core.runs.browse import browse_runs
from store import runs as run_store
from store.session import Database
from store.tables import Run, RunEpoch, RunStatus


@pytest.fixture
def tenant(db: Database) -> uuid.UUID:
    with db.session() as session:
        key = create_api_key(session, "browse")
    with db.read_session() as session:
        return authenticate(session, key).tenant_id


def _run(db: Database, tenant: uuid.UUID, *, name: str, best: float | None = None,
         status: RunStatus = RunStatus.succeeded, epochs: int = 0, best_epoch: int = 1,
         dataset_id: uuid.UUID | None = None, validation: bool = True) -> uuid.UUID:  # fmt: skip
    with db.session() as session:
        best_metrics: dict[str, float] | None = None
        if best is not None:
            best_metrics = {"train_loss": best, **({"val_loss": best} if validation else {})}
        run = run_store.insert_run(
            session,
            Run(tenant_id=tenant, name=name, status=status, spec={}, best_loss=best,
                best_epoch=None if best is None else best_epoch, best_metrics=best_metrics,
                dataset_id=dataset_id),
        )  # fmt: skip
        session.add_all(
            RunEpoch(tenant_id=tenant, run_id=run.id, epoch=e, train_loss=1.0 / e,
                     learning_rate=0.01, seconds=0.1)
            for e in range(1, epochs + 1)
        )  # fmt: skip
        session.commit()
        return run.id


@pytest.mark.parametrize(
    ("epochs", "since", "max_points", "expected"),
    [
        (1000, 0, 100, [*range(1, 1000, 11), 1000]),  # every 11th row: 91 rows, then the last
        (1000, 0, 1000, list(range(1, 1001))),
        (1000, 0, 1, [1000]),
        (1000, 900, 10, list(range(901, 1001, 11))),  # 1000 falls on the step
        (7, 0, 2, [1, 7]),
        (7, 0, None, list(range(1, 8))),
    ],
)
def test_history_is_thinned_evenly_keeping_first_and_last(
    db: Database,
    tenant: uuid.UUID,
    epochs: int,
    since: int,
    max_points: int | None,
    expected: list[int],
) -> None:
    run_id = _run(db, tenant, name="long", epochs=epochs)
    with db.read_session() as session:
        rows = runs.get_history(
            session, tenant_id=tenant, run_id=run_id, since_epoch=since, max_points=max_points
        )
    got = [r.epoch for r in rows]
    assert got == expected
    assert max_points is None or len(got) <= max_points


def test_browse_filters_sorts_and_pages(db: Database, tenant: uuid.UUID) -> None:
    ids = {
        "a_100%": _run(db, tenant, name="a_100%", best=0.5),
        "ab100x": _run(db, tenant, name="ab100x", best=0.2),
        "queued one": _run(db, tenant, name="queued one", status=RunStatus.queued),
        "other": _run(db, tenant, name="other", best=0.9, status=RunStatus.failed),
    }
    with db.read_session() as session:

        def names(**kwargs: object) -> list[str]:
            page = browse_runs(session, tenant_id=tenant, **kwargs)  # type: ignore[arg-type]
            return [r.name or "" for r in page.items]

        # % and _ are the user's text, not wildcards: "a_1" does not match "ab1".
        assert names(name_contains="a_1") == ["a_100%"]
        assert names(name_contains="100%") == ["a_100%"]
        assert names(name_contains="A_100") == ["a_100%"]  # case-insensitive
        assert names(sort="best") == ["ab100x", "a_100%", "other", "queued one"]  # no epoch: last
        assert names(sort="best", status="succeeded") == ["ab100x", "a_100%"]
        assert set(names()) == set(ids)
        first = browse_runs(session, tenant_id=tenant, per_page=3, sort="best")
        second = browse_runs(session, tenant_id=tenant, per_page=3, page=2, sort="best")
        assert (first.total, first.pages) == (4, 2)
        assert [r.name for r in second.items] == ["queued one"]
        with pytest.raises(InvalidInput) as bad:
            browse_runs(session, tenant_id=tenant, sort="name")
        assert bad.value.details["field"] == "sort"
        with pytest.raises(InvalidInput):
            browse_runs(session, tenant_id=tenant, status="bogus")
        other_tenant = uuid.uuid4()
        assert browse_runs(session, tenant_id=other_tenant).items == []


@pytest.mark.parametrize(
    ("epochs", "best_epoch", "max_points", "expected"),
    [
        # Off the grid (every 11th row): kept besides, still within max_points.
        (1000, 537, 100, sorted([*range(1, 1000, 11), 537, 1000])),
        (1000, 540, 100, [*range(1, 1000, 11), 1000]),  # on the grid already
        # One row too many: the best takes the place of the grid row before it.
        (10, 5, 4, [1, 5, 7, 10]),
        (10, 2, 4, [1, 2, 7, 10]),  # ... or after it, never the first
        (10, 10, 4, [1, 4, 7, 10]),  # the last is kept anyway
    ],
)
def test_thinned_history_keeps_the_best_epoch(
    db: Database,
    tenant: uuid.UUID,
    epochs: int,
    best_epoch: int,
    max_points: int,
    expected: list[int],
) -> None:
    run_id = _run(db, tenant, name="best", best=0.1, best_epoch=best_epoch, epochs=epochs)
    with db.read_session() as session:
        rows = runs.get_history(session, tenant_id=tenant, run_id=run_id, max_points=max_points)
    got = [r.epoch for r in rows]
    assert got == expected and best_epoch in got and len(got) <= max_points


def test_best_sort_puts_runs_without_a_validation_split_after(
    db: Database, tenant: uuid.UUID
) -> None:
    """A training loss is not comparable with a validation loss: the lower train-only run
    still comes after every run that has a validation loss."""
    _run(db, tenant, name="train-only", best=0.01, validation=False)
    _run(db, tenant, name="val-poor", best=0.8)
    _run(db, tenant, name="val-good", best=0.3)
    _run(db, tenant, name="no-epoch-yet", status=RunStatus.queued)
    with db.read_session() as session:
        page = browse_runs(session, tenant_id=tenant, sort="best")
    assert [r.name for r in page.items] == ["val-good", "val-poor", "train-only", "no-epoch-yet"]


def test_browse_filters_by_dataset(
    db: Database, tenant: uuid.UUID, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    with db.session() as session:
        one, two = (
            create_dataset(
                session, tenant_id=tenant, upload_path=path, filename="d.csv", name=name,
                label=None, settings=settings,
            ).id
            for name in ("one", "two")
        )  # fmt: skip
    on_one = {_run(db, tenant, name=f"on-one-{i}", dataset_id=one) for i in range(3)}
    on_two = _run(db, tenant, name="on-two", dataset_id=two)
    _run(db, tenant, name="on-none")
    with db.read_session() as session:
        first = browse_runs(session, tenant_id=tenant, dataset_id=one)
        second = browse_runs(session, tenant_id=tenant, dataset_id=two, status="succeeded")
        paged = browse_runs(session, tenant_id=tenant, dataset_id=one, per_page=2, page=2)
        elsewhere = browse_runs(session, tenant_id=uuid.uuid4(), dataset_id=one)
    assert {r.id for r in first.items} == on_one and first.total == 3
    assert [r.id for r in second.items] == [on_two]
    assert (paged.total, paged.pages, len(paged.items)) == (3, 2, 1)
    assert elsewhere.items == [] and elsewhere.total == 0
