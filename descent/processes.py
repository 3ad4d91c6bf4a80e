"""Child processes for the end-to-end tests and the benchmarks: each in its own process group,
always stopped (SIGINT, then SIGKILL to the whole group), and waited for over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from core.broker import TRAIN_QUEUE

T = TypeVar("T")

# What `descent api` serves.
API_APP = "api.app:serve_app"


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ``DESCENT_`` setting (a child configured only by
    what it is given), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(settings)
    return env


def uvicorn_argv(target: str, port: int, *extra: str, log_level: str = "info") -> list[str]:
    """``uvicorn --factory target`` on 127.0.0.1:``port`` (`descent api` logs at info)."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", target, *extra,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level,
    ]  # fmt: skip


def worker_argv(*extra: str, app: str = "worker.app", concurrency: int = 1) -> list[str]:
    """A ``celery worker`` on the runs queue, without the gossip/mingle/heartbeat chatter."""
    return [
        sys.executable, "-m", "celery", "-A", app, "worker", f"--concurrency={concurrency}",
        f"--queues={TRAIN_QUEUE}", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel=info", *extra,
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(
    argv: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group, its output in ``log``; stopped on exit, whatever
    happened inside the block."""
    with open(log, "wb") as out:
        child = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield child
        finally:
            stop_group(child)


def stop_group(child: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int | None:
    """``sig`` to the child's group, 20 s to finish, then SIGKILL to whatever is left of it."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(5)
    return child.returncode


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """The first truthy value of ``predicate``; TimeoutError naming ``what`` past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_healthy(base: str, child: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Until ``base``/healthz answers 200; RuntimeError with the log's tail if the child dies."""

    def up() -> bool:
        if child.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    wait_for(up, timeout=timeout, what=f"{base}/healthz", interval=0.1)
