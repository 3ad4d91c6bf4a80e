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


def test_reliability_settings_reach_the_worker_app_and_task(tmp_path) -> None:
    """C1-C4/C11: the settings are on the app the worker runs and on the task itself, the
    visibility timeout is the same in all three places, and connection loss cancels late-ack
    tasks (the DB lease then decides who trains)."""
    from worker.app import create_celery

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/9")
    app = create_celery(settings)
    app.loader.import_default_modules()
    conf = app.conf
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == conf.result_serializer == conf.event_serializer == "json"
    visibility = {
        conf.broker_transport_options["visibility_timeout"],
        conf.result_backend_transport_options["visibility_timeout"],
        conf.visibility_timeout,
    }
    assert len(visibility) == 1 and visibility.pop() > conf.task_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit
    task = app.tasks[TRAIN_TASK]
    assert task.acks_late and task.reject_on_worker_lost
