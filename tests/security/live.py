"""A live API for tests that must go over real HTTP: a real uvicorn process
(``api.app:serve_app``) on a fresh PostgreSQL database and a redis-server of its own, with one
tenant key, and the process's memory as /proc reports it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from core.auth import create_api_key
from core.config import Settings
from core.migrate import upgrade_to_head
from store.session import Database, make_engine_for_url
from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.helpers import API_APP, free_port, process, uvicorn_argv, wait_healthy
from tests.faults.harness import RedisServer

REPO = Path(__file__).resolve().parents[2]


class LiveApi:
    """uvicorn on a fresh PostgreSQL database and a throwaway redis-server (its queue and rate
    counters vanish with it); one tenant key. Every process is stopped on exit."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.extra_env = env or {}
        self._pg_name: str | None = None
        self.redis = RedisServer(tmp)
        self._stack: Any = None

    def __enter__(self) -> LiveApi:
        try:
            self._pg_name, self.database_url = create_pg_database()
            upgrade_to_head(self.database_url)
            self.redis.start()
            self.settings = Settings(
                database_url=self.database_url,
                broker_url=self.redis.url,
                data_dir=self.tmp / "data",
            )
            self.db = Database(make_engine_for_url(self.database_url))
            with self.db.session() as session:
                self.key = create_api_key(session, f"live-{uuid.uuid4().hex[:8]}")
            self.start_api()
        except BaseException:
            self.close()
            raise
        return self

    def start_api(self, **env: str) -> None:
        """Start (or, after :meth:`stop_api`, restart) the uvicorn process, with ``env`` over
        the fixed settings."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
        full.update(
            DESCENT_DATABASE_URL=self.database_url,
            DESCENT_BROKER_URL=self.redis.url,
            DESCENT_DATA_DIR=str(self.tmp / "data"),
            DESCENT_RECONCILE_EVERY_SECONDS="0",
        )
        full.update(self.extra_env, **env)
        argv = uvicorn_argv(API_APP, self.port, log_level="warning")
        log = self.tmp / "api.log"
        self._stack = process(argv, env=full, log=log, cwd=REPO)
        self.child = self._stack.__enter__()
        wait_healthy(self.base, self.child, log)

    def stop_api(self) -> None:
        """Stop the uvicorn process group (kill -9 it first to leave what a crash leaves)."""
        if self._stack is not None:
            self._stack.__exit__(None, None, None)
            self._stack = None

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_api()
        self.redis.kill()
        if getattr(self, "db", None) is not None:
            self.db.dispose()
        if self._pg_name is not None:
            drop_pg_database(self._pg_name)
            self._pg_name = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the uvicorn process, in bytes."""
        found = {}
        with open(f"/proc/{self.child.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(value.split()[0]) * 1024
        return found

    def start_measuring(self) -> int:
        """Reset the peak to the current RSS (Linux: ``5`` to clear_refs); the RSS now."""
        with open(f"/proc/{self.child.pid}/clear_refs", "w") as clear:
            clear.write("5")
        return self.memory()["VmRSS"]

    def growth(self, rss_before: int) -> int:
        return self.memory()["VmHWM"] - rss_before
