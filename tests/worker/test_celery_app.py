"""The worker's Celery configuration (reliability settings) and the thin task, run in-process
against a migrated database on both backends."""

from __future__ import annotations

from core.broker import TRAIN_TASK, celery_config
from core.config import Settings
from store.session import Database
from tests.api.runs_fixtures import api, dataset_id, sent, submit
from tests.services import redis_url

__all__ = ["api", "dataset_id", "sent"]


def test_celery_settings(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url=redis_url(9, ensure=False))
    conf = celery_config(settings)
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["task_ignore_result"]
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    # Set once, where kombu reads it: no result backend, no top-level copy to drift apart.
    assert not {"visibility_timeout", "result_backend_transport_options"} & conf.keys()
    assert not any(key.startswith("result_") for key in conf)


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
    """The settings are on the app the worker runs and on the task itself, and a lost broker
    connection does not terminate a running late-ack task (the database decides completion;
    tests/faults/test_broker_restart.py shows what that buys)."""
    from worker.app import create_celery

    settings = Settings(data_dir=tmp_path, broker_url=redis_url(9, ensure=False))
    app = create_celery(settings)
    app.loader.import_default_modules()
    conf = app.conf
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == conf.event_serializer == "json"
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.result_backend is None and conf.task_ignore_result
    assert conf.task_soft_time_limit < conf.task_time_limit
    task = app.tasks[TRAIN_TASK]
    assert task.acks_late and task.reject_on_worker_lost


def test_embedded_broker_has_no_visibility_timeout(tmp_path) -> None:
    # Only Redis redelivers on a visibility timeout; the folder transport has none to set.
    conf = celery_config(Settings(data_dir=tmp_path))
    assert "visibility_timeout" not in conf["broker_transport_options"]


def test_celery_notice_about_the_6_0_default_is_dropped(tmp_path) -> None:
    import logging

    from worker.app import create_celery

    create_celery(Settings(data_dir=tmp_path, broker_url=redis_url(9, ensure=False)))
    warnings_log = logging.getLogger("py.warnings")

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, message, None, None)

    notice = "consumer.py:427: CPendingDeprecationWarning: \nIn Celery 5.1 we introduced an "
    notice += "optional breaking change which\non connection loss cancels all currently ..."
    assert not warnings_log.filter(record(notice))
    assert warnings_log.filter(record("any other warning"))
