"""Server commands: ``descent serve`` is the embedded default (SQLite + a filesystem broker in
one data directory, migrations applied, an API process and a worker process started together,
the URL and an API key printed). ``descent api`` / ``descent worker`` / ``descent migrate`` are
the production pieces (configured by ``DESCENT_*`` environment variables); ``descent keys
create|list|revoke`` manage API keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click

from core.config import Settings, get_settings

KEY_FILE = "api-key.txt"
DEFAULT_TENANT = "default"
_STOP_GRACE_SECONDS = 10.0


def _echo(message: str) -> None:
    click.echo(message)
    sys.stdout.flush()


@click.command()
def migrate() -> None:
    """Apply database migrations (DESCENT_DATABASE_URL) up to the newest revision."""
    from core.migrate import upgrade_to_head

    upgrade_to_head(get_settings().database_url)
    _echo("database is at the newest revision")


@click.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant name (created if it does not exist)")
@click.option("--name", default=None, help="A label for the key")
def keys_create(tenant: str, name: str | None) -> None:
    """Create an API key and print it (it is shown only once)."""
    from core.auth import create_api_key
    from store.session import Database

    db = Database.from_settings(get_settings())
    try:
        with db.session() as session:
            key = create_api_key(session, tenant, key_name=name)
    finally:
        db.dispose()
    _echo(f"API key: {key}")


@keys.command("list")
@click.option("--tenant", required=True, help="Tenant name")
def keys_list(tenant: str) -> None:
    """List a tenant's keys (id, prefix, name, dates); secrets are never shown."""
    from core.auth import list_api_keys
    from store.session import Database

    db = Database.from_settings(get_settings())
    try:
        with db.read_session() as session:
            found = list_api_keys(session, tenant)
    finally:
        db.dispose()
    if not found:
        _echo(f"no keys for tenant {tenant!r}")
        return
    for info in found:
        state = f"revoked {info.revoked_at.isoformat()}" if info.revoked_at else "active"
        _echo(
            f"{info.id}  {info.display}  {info.name or '-'}  "
            f"created {info.created_at.isoformat()}  {state}"
        )


@keys.command("revoke")
@click.argument("key_ref")
def keys_revoke(key_ref: str) -> None:
    """Revoke a key, named by its id or its prefix (as `keys list` shows them). From then on
    it is answered 401, like a key that never existed."""
    from core.auth import revoke_key_ref
    from store.session import Database

    db = Database.from_settings(get_settings())
    try:
        with db.session() as session:
            info = revoke_key_ref(session, key_ref)
    finally:
        db.dispose()
    if info is None:
        raise click.ClickException(f"no API key matches {key_ref!r}")
    _echo(f"revoked {info.display} ({info.id}) of tenant {info.tenant!r}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def api(host: str, port: int) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    uvicorn.run("api.app:serve_app", factory=True, host=host, port=port, log_level="info")


@click.command()
@click.option("--concurrency", "-c", default=1, show_default=True, type=int)
@click.option("--loglevel", "-l", default="info", show_default=True)
def worker(concurrency: int, loglevel: str) -> None:
    """Run a Celery worker that trains runs (one process per concurrency slot)."""
    from core.broker import TRAIN_QUEUE
    from worker.app import create_celery

    app = create_celery(get_settings())
    app.worker_main(
        argv=[
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            f"--queues={TRAIN_QUEUE}",
            # The database is the source of truth; no worker-to-worker chatter is needed.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


def _first_key(settings: Settings) -> str:
    """The API key of the embedded tenant: created on first start, read back afterwards (a new
    one replaces it if it was revoked with ``descent keys revoke``)."""
    from core.auth import authenticate, create_api_key
    from core.errors import Unauthorized
    from store.session import Database

    path = settings.data_dir / KEY_FILE
    saved = path.read_text().strip() if path.exists() else ""
    db = Database.from_settings(settings)
    try:
        if saved:
            try:
                with db.read_session() as session:
                    authenticate(session, saved)
                return saved
            except Unauthorized:
                pass
        with db.session() as session:
            key = create_api_key(session, DEFAULT_TENANT, key_name="descent serve")
    finally:
        db.dispose()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    default="./descent-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes")
def serve(host: str, port: int, data_dir: Path, workers: int) -> None:
    """API + worker together, on SQLite and a filesystem broker in DATA_DIR. Ctrl-C stops both."""
    from core.broker import prepare_broker
    from core.migrate import upgrade_to_head

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir)
    upgrade_to_head(settings.database_url)
    prepare_broker(settings)
    key = _first_key(settings)

    env = dict(os.environ)
    env.update(
        DESCENT_DATA_DIR=str(data_dir),
        DESCENT_DATABASE_URL=settings.database_url,
        DESCENT_BROKER_URL=settings.broker_url,
    )
    cli = [sys.executable, "-m", "descent.cli"]
    children: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        children.append(subprocess.Popen([*cli, "worker", "-c", str(workers)], env=env))
        children.append(
            subprocess.Popen([*cli, "api", "--host", host, "--port", str(port)], env=env)
        )
        _echo(f"Descent is serving on http://{host}:{port} (data in {data_dir})")
        _echo(f"API key: {key}")
        _echo(f"Dashboard: http://{host}:{port}/ (sign in with the key); API docs: /docs")
        _echo("Press Ctrl-C to stop.")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll() is not None]
        _echo(f"a child process exited (code {failed[0].returncode}); stopping")
        raise SystemExit(1)
    except KeyboardInterrupt:
        _echo("stopping")
    finally:
        _stop(children)


COMMANDS = [migrate, keys, api, worker, serve]
