"""Client commands: talk to a Descent server through ``descent.Client``.

The server and key come from ``--url``/``--key``, else ``DESCENT_URL``/``DESCENT_API_KEY``,
else the file ``descent login`` wrote (mode 0600). Every command takes ``--json`` for scripts
and prints tables for people otherwise; an error answer prints its code, message and where,
and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
import yaml
from rich.console import Console
from rich.table import Table

from descent.client import Client
from descent.errors import DescentError
from descent.follow import follow_run, metrics_text

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_FILE = "config.json"


def config_path() -> Path:
    return Path(click.get_app_dir("descent")) / CONFIG_FILE


def _saved() -> dict[str, str]:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if k in ("url", "api_key")}


def _console() -> Console:
    return Console(stderr=False, highlight=False)


def _one_line_errors(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except DescentError as exc:
        raise click.ClickException(str(exc)) from exc
    except httpx.InvalidURL as exc:  # a URL httpx cannot even parse
        raise click.ClickException(f"invalid server URL: {exc}") from exc


class ClientGroup(click.Group):
    """Turns a server's error answer into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        return _one_line_errors(super().invoke, ctx)


class ClientCommand(click.Command):
    """A client command outside a group (login): errors as ClientGroup's."""

    def invoke(self, ctx: click.Context) -> Any:
        return _one_line_errors(super().invoke, ctx)


def connection_options(func: F) -> F:
    func = click.option("--url", default=None, help="Server URL (or DESCENT_URL)")(func)
    func = click.option("--key", default=None, help="API key (or DESCENT_API_KEY)")(func)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")(func)


def make_client(url: str | None, key: str | None) -> Client:
    saved = _saved()
    return Client(
        url or os.environ.get("DESCENT_URL") or saved.get("url"),
        key or os.environ.get("DESCENT_API_KEY") or saved.get("api_key"),
    )


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        # Ids are what people copy into the next command: never cut or wrapped.
        whole = column == "id"
        table.add_column(column, no_wrap=whole, min_width=36 if whole else None)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    _console().print(table)


def print_fields(title: str, data: dict[str, Any]) -> None:
    _table(title, ["field", "value"], [[k, _short(v)] for k, v in data.items()])


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@click.command(cls=ClientCommand)
@click.option("--url", required=True, help="The server, e.g. http://127.0.0.1:8000")
@click.option("--key", required=True, help="An API key (`descent serve` prints one)")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
def login(url: str, key: str, as_json: bool) -> None:
    """Save the server URL and API key for the other commands (environment variables still
    override them). Both are checked first: a wrong key or an unreachable server saves
    nothing and exits 1."""
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("expected http://HOST[:PORT] or https://...", param_hint="--url")
    # One retry only: a person at the prompt wants to hear at once that the URL is wrong.
    with Client(url, key, retries=1, max_retry_seconds=10) as client:
        client.datasets(limit=1)  # checks both before saving
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "api_key": key}, handle)
    path.chmod(0o600)
    if as_json:
        return print_json({"url": url, "config": str(path)})
    click.echo(f"logged in to {url}; saved in {path}")


# -- datasets ----------------------------------------------------------------------------------


@click.group(cls=ClientGroup)
def datasets() -> None:
    """Upload, list and show datasets."""


@datasets.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--label", default=None, help="Target column (default: the last one)")
@click.option("--name", default=None, help="A name (default: the file name)")
@connection_options
def datasets_upload(
    file: Path, label: str | None, name: str | None, url: str | None, key: str | None, as_json: bool
) -> None:
    """Upload FILE (CSV, NPZ or JSON); streamed from disk."""
    with make_client(url, key) as client:
        ds = client.upload(file, label=label, name=name)
    if as_json:
        return print_json(ds.data)
    classes = ds.classes
    click.echo(
        f"dataset {ds.id}: {ds.n_rows} rows, {ds.data['n_features']} features, {ds.task}"
        + (f", classes {classes}" if classes else "")
    )


@datasets.command("list")
@click.option("--limit", default=50, show_default=True, type=int)
@connection_options
def datasets_list(limit: int, url: str | None, key: str | None, as_json: bool) -> None:
    """Datasets, newest first."""
    with make_client(url, key) as client:
        found = client.datasets(limit=limit)
    if as_json:
        return print_json([d.data for d in found])
    rows = [[d.id, d.name, d.n_rows, d.data["n_features"], d.task, d.data["created_at"]]
            for d in found]  # fmt: skip
    _table("datasets", ["id", "name", "rows", "features", "task", "created"], rows)


@datasets.command("show")
@click.argument("dataset_id")
@connection_options
def datasets_show(dataset_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """One dataset."""
    with make_client(url, key) as client:
        ds = client.dataset(dataset_id)
    return print_json(ds.data) if as_json else print_fields(f"dataset {ds.id}", ds.data)


# -- runs --------------------------------------------------------------------------------------


def load_spec(path: Path | None, overrides: tuple[str, ...]) -> dict[str, Any]:
    """A spec from a JSON or YAML file, then ``dotted.key=value`` overrides (values read as
    YAML, so numbers, booleans and lists keep their types)."""
    spec: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        if not isinstance(loaded, dict):
            raise click.BadParameter("the spec file must hold an object", param_hint="--spec")
        spec = loaded
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        if not sep or not dotted:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        *parents, leaf = dotted.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"{dotted}: {part} is not an object", param_hint="--set")
        node[leaf] = yaml.safe_load(raw)
    return spec


def _run_row(run: Any) -> list[Any]:
    progress = run.data.get("progress") or {}
    return [
        run.id,
        run.data.get("name"),
        run.status,
        f"{progress.get('epoch', 0)}/{progress.get('epochs') or '?'}",
        metrics_text(run.data.get("latest") or {}),
        run.data.get("created_at"),
    ]


@click.group(cls=ClientGroup)
def runs() -> None:
    """Start, watch, list and cancel training runs."""


@runs.command("submit")
@click.option("--dataset", "dataset_id", required=True, help="Dataset id")
@click.option("--spec", "spec_file", type=click.Path(exists=True, path_type=Path),
              help="TrainingSpec as JSON or YAML")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec field, e.g. optimizer.learning_rate=0.05")  # fmt: skip
@click.option("--name", default=None)
@click.option("--init-from", "init_from", default=None, metavar="MODEL_ID",
              help="Warm start from this model (spec fields not given are its)")  # fmt: skip
@click.option("--follow", is_flag=True, help="Show progress until the run ends")
@connection_options
def runs_submit(
    dataset_id: str,
    spec_file: Path | None,
    overrides: tuple[str, ...],
    name: str | None,
    init_from: str | None,
    follow: bool,
    url: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Start a run on a dataset (with --init-from, continuing a model's training)."""
    spec = load_spec(spec_file, overrides)
    with make_client(url, key) as client:
        run = client.train(dataset_id, spec, name=name, init_from=init_from)
        if follow:
            announce = None if as_json else f"run {run.id} queued"
            sys.exit(follow_run(run, as_json=as_json, console=_console(), announce=announce))
    if as_json:
        return print_json(run.data)
    click.echo(f"run {run.id} {run.status}; `descent runs follow {run.id}` shows its progress")


@runs.command("list")
@click.option("--status", default=None, help="queued, running, succeeded, failed, ...")
@click.option("--limit", default=50, show_default=True, type=int)
@connection_options
def runs_list(
    status: str | None, limit: int, url: str | None, key: str | None, as_json: bool
) -> None:
    """Runs, newest first."""
    with make_client(url, key) as client:
        found = client.runs(status=status, limit=limit)
    if as_json:
        return print_json([r.data for r in found])
    columns = ["id", "name", "status", "epoch", "latest", "created"]
    _table("runs", columns, [_run_row(r) for r in found])


@runs.command("show")
@click.argument("run_id")
@connection_options
def runs_show(run_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """One run: status, progress, latest metrics, error, model."""
    with make_client(url, key) as client:
        run = client.run(run_id)
    return print_json(run.data) if as_json else print_fields(f"run {run.id}", run.data)


@runs.command("follow")
@click.argument("run_id")
@connection_options
def runs_follow(run_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """Show a run's progress until it ends (exit 0 succeeded, 1 failed or cancelled)."""
    with make_client(url, key) as client:
        run = client.run(run_id)
        sys.exit(follow_run(run, as_json=as_json, console=_console()))


@runs.command("cancel")
@click.argument("run_id")
@connection_options
def runs_cancel(run_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """Ask a run to stop (it stops between batches)."""
    with make_client(url, key) as client:
        status = client.run(run_id).cancel()
    if as_json:
        return print_json({"id": run_id, "status": status})
    click.echo(f"run {run_id} {status}")


@runs.command("history")
@click.argument("run_id")
@connection_options
def runs_history(run_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """Per-epoch loss, accuracy and learning rate."""
    with make_client(url, key) as client:
        epochs = client.run(run_id).history()
    if as_json:
        return print_json(epochs)
    columns = ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "learning_rate"]
    rows = [[_figure(e.get(c)) for c in columns] for e in epochs]
    _table(f"history of run {run_id}", columns, rows)


def _figure(value: Any) -> Any:
    return f"{value:.5g}" if isinstance(value, float) else value


COMMANDS: list[click.Command] = [login, datasets, runs]
