"""The worker's Celery configuration (reliability settings) and the thin task, run in-process
against a migrated database on both backends."""

from __future__ import annotations

from core.broker import TRAIN_TASK, celery_config
from core.config import Settings
from store.session import Database
from tests.api.runs_fixtures import api, dataset_id, sent, submit

__all__ = ["api", "dataset_id", "sent"]


def test_celery_settings(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/9")
    conf = celery_config(settings)
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["task_ignore_result"]
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    for place in (
        conf["broker_transport_options"]["visibility_timeout"],
        conf["result_backend_transport_options"]["visibility_timeout"],
        conf["visibility_timeout"],
    ):
        assert place > conf["task_time_limit"]


def test_embedded_broker_is_a_folder(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.broker_url.startswith("filesystem://")
    conf = celery_config(settings)
    assert conf["broker_url"] == "filesystem://"
    assert conf["broker_transport_options"]["data_folder_in"].startswith(str(tmp_path.resolve()))


def test_task_is_registered_by_name_and_trains(
    settings: Settings, db: Database, api, tenant_key: str, dataset_id: str
) -> None:
    from worker.app import create_celery

    app = create_celery(settings)
    app.loader.import_default_modules()
    from worker import tasks

    assert TRAIN_TASK in app.tasks
    tasks._database.cache_clear()
    run = submit(api, tenant_key, dataset_id).json()
    try:
        assert tasks.train_run(run["id"]) == "succeeded"
        assert tasks.train_run(run["id"]) == "skipped"
    finally:
        tasks._database(settings).dispose()
        tasks._database.cache_clear()
