"""Migrations on both backends: upgrade -> check (no drift) -> downgrade base -> upgrade."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text

from core.config import Settings
from core.datasets import encode_npz, parse_upload
from core.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from store.session import make_engine_for_url
from tests.conftest import pg_database

EXPECTED_TABLES = {
    "tenants",
    "api_keys",
    "datasets",
    "runs",
    "run_epochs",
    "checkpoints",
    "models",
    "web_sessions",
    "registered_models",
    "model_versions",
    "model_aliases",
    "alias_moves",
    "sweeps",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with pg_database(migrated=False) as url:
        yield url


def _tables(url: str) -> set[str]:
    engine = make_engine_for_url(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _seed(url: str) -> uuid.UUID:
    """One row in the tables that batch mode rebuilds, inserted the way the app would."""
    tenant_id = uuid.uuid4()
    engine = make_engine_for_url(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO tenants (id, name, created_at) VALUES (:id, 'seed', :now)"),
                {
                    "id": _db_id(url, tenant_id),
                    "now": _NOW,
                },
            )
    finally:
        engine.dispose()
    return tenant_id


_NOW = "2026-01-01 00:00:00+00:00"
# A run as every revision since 0001 can hold it (later columns take their defaults).
_INSERT_RUN = text(
    "INSERT INTO runs (id, tenant_id, status, spec, epoch, fraction, attempts, "
    "cancel_requested, created_at) VALUES (:id, :tenant, :status, '{}', :epoch, :fraction, "
    ":attempts, :false, :now)"
)


def _db_id(url: str, value: uuid.UUID) -> object:
    """A UUID as the backend stores it (SQLite: 32 hex digits)."""
    return value.hex if url.startswith("sqlite") else value


def _insert_run(
    conn: Connection, url: str, run_id: uuid.UUID, tenant_id: uuid.UUID, *,
    status: str = "succeeded", epoch: int = 3,
) -> None:  # fmt: skip
    """A run with ``epoch`` epochs done (all of them when it succeeded)."""
    done = status == "succeeded"
    conn.execute(
        _INSERT_RUN,
        {"id": _db_id(url, run_id), "tenant": _db_id(url, tenant_id), "status": status,
         "epoch": epoch, "fraction": 1.0 if done else 0.0, "attempts": int(done),
         "false": False, "now": _NOW},
    )  # fmt: skip


def test_upgrade_check_downgrade_upgrade(fresh_url: str) -> None:
    config = alembic_config(fresh_url)
    upgrade_to_head(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    assert _tables(fresh_url) == EXPECTED_TABLES
    # The models match the migrations: autogenerate finds nothing to do.
    command.check(config)

    _seed(fresh_url)
    command.downgrade(config, "base")
    assert current_revision(fresh_url) is None
    assert _tables(fresh_url) == set()

    upgrade_to_head(fresh_url)
    assert _tables(fresh_url) == EXPECTED_TABLES
    command.check(config)
    # Upgrading an up-to-date database is a no-op, with rows present.
    _seed(fresh_url)
    upgrade_to_head(fresh_url)
    assert current_revision(fresh_url) == head_revision()


def test_single_head_and_frozen_revision_files() -> None:
    """One linear history, and revisions do not import application code (they must not change
    meaning when the models do)."""
    assert head_revision() == "0007"
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    for path in versions.glob("*.py"):
        source = path.read_text()
        assert "from store" not in source and "import store" not in source, path


def test_0002_fills_dataset_shape_from_the_stored_blob(fresh_url: str, tmp_path: Path) -> None:
    """Datasets uploaded before 0002 get their input width and class counts from their blob,
    the same figures a new upload stores; downgrading drops the columns with rows present."""
    csv = tmp_path / "d.csv"
    rows = ["a,colour,label"] + [
        f"{i},{'red' if i % 3 else 'blue'},{'cat' if i < 7 else 'dog'}" for i in range(10)
    ]
    csv.write_text("\n".join(rows) + "\n")
    parsed = parse_upload(
        csv, filename="d.csv", content_type=None, label=None, settings=Settings(data_dir=tmp_path)
    )
    assert parsed.n_inputs == 3 and parsed.class_counts() == [7, 3]  # 1 numeric + 2 colours

    config = alembic_config(fresh_url)
    command.upgrade(config, "0001")
    tenant_id = _seed(fresh_url)
    dataset_id = uuid.uuid4()
    engine = make_engine_for_url(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO datasets (id, tenant_id, name, format, n_rows, n_features, "
                    "feature_names, feature_types, label, task, classes, sha256, size_bytes, "
                    "blob, blob_sha256, created_at) VALUES (:id, :tenant, 'd', 'csv', 10, 2, "
                    ":names, :types, 'label', 'classification', :classes, :sha, 1, :blob, :sha, "
                    ":now)"
                ),
                {
                    "id": _db_id(fresh_url, dataset_id),
                    "tenant": _db_id(fresh_url, tenant_id),
                    "names": json.dumps(parsed.feature_names),
                    "types": json.dumps(list(parsed.feature_types)),
                    "classes": json.dumps(parsed.classes),
                    "sha": "0" * 64,
                    "blob": encode_npz(parsed),
                    "now": _NOW,
                },
            )
        upgrade_to_head(fresh_url)
        with engine.connect() as conn:
            n_inputs, counts = conn.execute(
                text("SELECT n_inputs, class_counts FROM datasets")
            ).one()
        assert n_inputs == 3
        assert (json.loads(counts) if isinstance(counts, str) else counts) == [7, 3]
        command.downgrade(config, "0001")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("datasets")}
            assert conn.execute(text("SELECT count(*) FROM datasets")).scalar_one() == 1
        assert "n_inputs" not in columns and "class_counts" not in columns
    finally:
        engine.dispose()


def test_0003_fills_each_runs_best_epoch_from_its_history(fresh_url: str) -> None:
    """The lowest validation loss (training loss where there is none) and that epoch's
    metrics; a run without epochs stays empty."""
    config = alembic_config(fresh_url)
    command.upgrade(config, "0002")
    tenant_id = _seed(fresh_url)
    with_val, without_val, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    epochs: dict[uuid.UUID, list[tuple[int, float, float | None, float | None]]] = {
        with_val: [(1, 0.9, 0.8, 0.5), (2, 0.5, 0.4, 0.7), (3, 0.3, 0.6, 0.8)],
        without_val: [(1, 0.9, None, None), (2, 0.2, None, None), (3, 0.4, None, None)],
    }
    engine = make_engine_for_url(fresh_url)
    try:
        with engine.begin() as conn:
            for run_id in (with_val, without_val, empty):
                _insert_run(conn, fresh_url, run_id, tenant_id)
            for run_id, rows in epochs.items():
                for epoch, train_loss, val_loss, val_accuracy in rows:
                    conn.execute(
                        text(
                            "INSERT INTO run_epochs (id, tenant_id, run_id, epoch, train_loss, "
                            "val_loss, val_accuracy, learning_rate, seconds, created_at) VALUES "
                            "(:id, :tenant, :run, :epoch, :train, :val, :acc, 0.01, 0.1, :now)"
                        ),
                        {
                            "id": _db_id(fresh_url, uuid.uuid4()),
                            "tenant": _db_id(fresh_url, tenant_id),
                            "run": _db_id(fresh_url, run_id),
                            "epoch": epoch,
                            "train": train_loss,
                            "val": val_loss,
                            "acc": val_accuracy,
                            "now": _NOW,
                        },
                    )
        upgrade_to_head(fresh_url)
        with engine.connect() as conn:
            found = {
                row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(row[0]): row[1:]
                for row in conn.execute(
                    text("SELECT id, best_epoch, best_loss, best_metrics FROM runs")
                )
            }
        metrics = {
            run_id: json.loads(m) if isinstance(m, str) else m
            for run_id, (_, _, m) in found.items()
        }
        assert found[with_val][:2] == (2, 0.4)
        assert metrics[with_val] == {"train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.7}
        assert found[without_val][:2] == (2, 0.2)
        assert metrics[without_val] == {"train_loss": 0.2}
        assert found[empty] == (None, None, None)
        command.downgrade(config, "0002")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("runs")}
        assert "best_epoch" not in columns and "web_sessions" not in _tables(fresh_url)
    finally:
        engine.dispose()


def test_0004_allows_the_new_formats_and_still_checks(fresh_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    upgrade_to_head(fresh_url)
    tenant_id = _seed(fresh_url)
    engine = make_engine_for_url(fresh_url)

    def insert(fmt: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO datasets (id, tenant_id, name, format, n_rows, n_features, "
                    "feature_names, feature_types, label, task, sha256, size_bytes, blob, "
                    "blob_sha256, created_at, n_inputs) VALUES (:id, :tenant, 'd', :fmt, 10, 1, "
                    "'[]', '[]', 'y', 'classification', :sha, 1, :blob, :sha, :now, 1)"
                ),
                {
                    "id": _db_id(fresh_url, uuid.uuid4()),
                    "tenant": _db_id(fresh_url, tenant_id),
                    "fmt": fmt, "sha": "0" * 64, "blob": b"x", "now": _NOW,
                },
            )  # fmt: skip

    try:
        insert("parquet")
        insert("images")
        with pytest.raises(IntegrityError):
            insert("bogus")
    finally:
        engine.dispose()


def test_0006_adds_a_runs_warm_start_model_and_removes_it(fresh_url: str) -> None:
    """Runs from before 0006 started from scratch (NULL); the column references models (a
    model that does not exist is refused); downgrading drops it with the rows kept."""
    from sqlalchemy.exc import IntegrityError

    config = alembic_config(fresh_url)
    command.upgrade(config, "0005")
    tenant_id = _seed(fresh_url)
    old_run, model_id, warm_run = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = make_engine_for_url(fresh_url)
    try:
        with engine.begin() as conn:
            _insert_run(conn, fresh_url, old_run, tenant_id)
            conn.execute(
                text(
                    "INSERT INTO models (id, tenant_id, run_id, task, input, metrics, blob, "
                    "weights_sha256, size_bytes, created_at) VALUES (:id, :tenant, :run, "
                    "'classification', '{}', '{}', :blob, :sha, 1, :now)"
                ),
                {
                    "id": _db_id(fresh_url, model_id), "tenant": _db_id(fresh_url, tenant_id),
                    "run": _db_id(fresh_url, old_run),
                    "blob": b"x", "sha": "0" * 64, "now": _NOW,
                },
            )  # fmt: skip
        upgrade_to_head(fresh_url)
        command.check(config)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT init_model_id FROM runs")).scalar_one() is None
            _insert_run(conn, fresh_url, warm_run, tenant_id)
            conn.execute(
                text("UPDATE runs SET init_model_id = :model WHERE id = :id"),
                {"model": _db_id(fresh_url, model_id), "id": _db_id(fresh_url, warm_run)},
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text("UPDATE runs SET init_model_id = :model WHERE id = :id"),
                {"model": _db_id(fresh_url, uuid.uuid4()), "id": _db_id(fresh_url, old_run)},
            )
        command.downgrade(config, "0005")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("runs")}
            assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 2
            assert conn.execute(text("SELECT count(*) FROM models")).scalar_one() == 1
        assert "init_model_id" not in columns
        upgrade_to_head(fresh_url)
        command.check(config)
    finally:
        engine.dispose()


def test_0007_adds_sweeps_and_trial_columns_and_removes_them(fresh_url: str) -> None:
    """Runs from before 0007 are no trials (NULL, not stopped early); a trial references its
    sweep (an unknown sweep is refused) and may be pending; downgrading cancels a pending run
    and drops the columns and the table with the rows kept."""
    from sqlalchemy.exc import IntegrityError

    config = alembic_config(fresh_url)
    command.upgrade(config, "0006")
    tenant_id = _seed(fresh_url)
    old_run, sweep_id, trial = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = make_engine_for_url(fresh_url)
    try:
        with engine.begin() as conn:
            _insert_run(conn, fresh_url, old_run, tenant_id, status="succeeded", epoch=0)
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _insert_run(conn, fresh_url, trial, tenant_id, status="pending", epoch=0)
        upgrade_to_head(fresh_url)
        command.check(config)
        with engine.begin() as conn:
            row = conn.execute(text("SELECT sweep_id, params, stopped_early FROM runs")).one()
            assert row[0] is None and row[1] is None and not row[2]
            conn.execute(
                text(
                    "INSERT INTO sweeps (id, tenant_id, spec, search, metric, mode, "
                    "max_parallel, status, created_at) VALUES (:id, :tenant, '{}', '{}', "
                    "'val_loss', 'min', 2, 'running', :now)"
                ),
                {
                    "id": _db_id(fresh_url, sweep_id),
                    "tenant": _db_id(fresh_url, tenant_id),
                    "now": _NOW,
                },
            )
            _insert_run(conn, fresh_url, trial, tenant_id, status="pending", epoch=0)
            conn.execute(
                text("UPDATE runs SET sweep_id = :sweep, trial = 0 WHERE id = :id"),
                {"sweep": _db_id(fresh_url, sweep_id), "id": _db_id(fresh_url, trial)},
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text("UPDATE runs SET sweep_id = :sweep WHERE id = :id"),
                {"sweep": _db_id(fresh_url, uuid.uuid4()), "id": _db_id(fresh_url, old_run)},
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text("UPDATE sweeps SET max_parallel = 0 WHERE id = :id"),
                {"id": _db_id(fresh_url, sweep_id)},
            )
        command.downgrade(config, "0006")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("runs")}
            statuses = {r[0] for r in conn.execute(text("SELECT status FROM runs"))}
        assert statuses == {"succeeded", "cancelled"}
        assert not {"sweep_id", "trial", "params", "rung", "stopped_early"} & columns
        assert "sweeps" not in _tables(fresh_url)
        upgrade_to_head(fresh_url)
        command.check(config)
    finally:
        engine.dispose()
