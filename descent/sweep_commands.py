"""``descent sweeps submit|follow|list|show|cancel``: hyperparameter sweeps from the command line.

``--follow`` draws the leaderboard live (rich) by polling the sweep, since the server has no
event stream for sweeps, then prints the best run and model. Exit codes as ``runs submit
--follow``: 0 succeeded, 1 failed or cancelled, 130 when the user stopped watching.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from descent.client_commands import (
    ClientGroup,
    connection_options,
    load_spec,
    make_client,
    print_json,
)
from descent.handles import SWEEP_POLL_SECONDS, Sweep
from descent.model_commands import registered_line

_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def _console() -> Console:
    return Console(highlight=False)


def _load_search(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    if not isinstance(loaded, dict):
        raise click.BadParameter("the search file must hold an object", param_hint="--search")
    return loaded


def _asha(value: str | None) -> dict[str, int] | None:
    if value is None:
        return None
    grace, _, factor = (part.strip() for part in value.partition(","))
    if grace.isdigit() and factor.isdigit():
        return {"grace_epochs": int(grace), "reduction_factor": int(factor)}
    raise click.BadParameter(
        f"expected GRACE,FACTOR (e.g. 2,3), got {value!r}", param_hint="--asha"
    )


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return value if isinstance(value, str) else json.dumps(value)


def leaderboard(data: dict[str, Any], *, full_ids: bool = True) -> Table:
    """The trials best first: their parameters (a column each), best value and epochs."""
    trials = data.get("trials") or []
    keys = list(dict.fromkeys(k for t in trials for k in t["params"]))
    done = sum(t["status"] in ("succeeded", "failed", "cancelled") for t in trials)
    title = (
        f"sweep {data['id']} [{_STYLE.get(data['status'], '')}]{data['status']}[/] · "
        f"{data['metric']} ({data['mode']}) · {done}/{len(trials)} trials done"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("trial", justify="right")
    # Ids are what people copy into the next command: whole and unwrapped when shown.
    table.add_column("run", no_wrap=True, min_width=36 if full_ids else None)
    table.add_column("status")
    for key in keys:
        table.add_column(key)
    table.add_column(str(data["metric"]), justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("note")
    for rank, trial in enumerate(trials, 1):
        run_id = str(trial["run_id"])
        table.add_row(
            str(rank) if trial["best_value"] is not None else "-",
            str(trial["trial"]),
            run_id if full_ids else run_id[:8],
            Text(trial["status"], style=_STYLE.get(trial["status"], "")),
            *(_value(trial["params"].get(k, "-")) for k in keys),
            "-" if trial["best_value"] is None else _value(trial["best_value"]),
            str(trial["epochs_done"]),
            "stopped early" if trial["stopped_early"] else "",
        )
    return table


def best_line(data: dict[str, Any]) -> str:
    best = data.get("best")
    line = f"sweep {data['id']} {data['status']}"
    if best is None:
        return line + "; no trial has a model"
    params = " ".join(f"{k}={_value(v)}" for k, v in best["params"].items())
    return (
        f"{line}; best {data['metric']} {_value(best['value'])} ({params}): "
        f"run {best['run_id']}, model {best['model_id']}"
    )


def follow_sweep(sweep: Sweep, *, as_json: bool, interval: float, console: Console) -> int:
    """Show the sweep until it is final; the exit code: 0 succeeded, 1 failed or cancelled,
    130 when the user stopped watching."""
    try:
        if as_json:
            for snapshot in sweep.follow(interval=interval):
                click.echo(json.dumps({"event": "snapshot", **snapshot}, default=str))
        elif console.is_terminal:
            with Live(leaderboard(sweep.data, full_ids=False), console=console) as live:
                for snapshot in sweep.follow(interval=interval):
                    live.update(leaderboard(snapshot, full_ids=False), refresh=True)
        else:  # a pipe or a log: the final leaderboard once, not a redraw per change
            for _ in sweep.follow(interval=interval):
                pass
            console.print(leaderboard(sweep.data))
    except KeyboardInterrupt:
        console.print(
            f"Stopped following. Sweep {sweep.id} goes on: `descent sweeps follow {sweep.id}` "
            f"watches it again, `descent sweeps cancel {sweep.id}` stops it.",
            style="yellow",
        )
        return 130
    if as_json:
        click.echo(json.dumps({"event": "final", **sweep.data}, default=str))
    else:
        console.print(best_line(sweep.data), style=_STYLE.get(sweep.status, ""))
    return 0 if sweep.status == "succeeded" else 1


_interval = click.option(
    "--interval", default=SWEEP_POLL_SECONDS, show_default=True, type=click.FloatRange(min=0),
    help="Seconds between polls of the leaderboard",
)  # fmt: skip


@click.group(cls=ClientGroup)
def sweeps() -> None:
    """Hyperparameter sweeps: one run per point of a search space, ranked by a metric."""


@sweeps.command("submit")
@click.option("--dataset", "dataset_id", required=True, help="Dataset id")
@click.option("--spec", "spec_file", type=click.Path(exists=True, path_type=Path),
              help="The base TrainingSpec as JSON or YAML")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a base spec field, e.g. epochs=20")  # fmt: skip
@click.option("--search", "search_file", required=True,
              type=click.Path(exists=True, path_type=Path),
              help="JSON or YAML: method (grid or random), space, n_trials, seed")  # fmt: skip
@click.option("--metric", required=True, help="What ranks the trials, e.g. val_accuracy")
@click.option("--mode", type=click.Choice(["min", "max"]), default=None,
              help="Default: max for accuracy-like metrics, else min")  # fmt: skip
@click.option("--max-parallel", type=int, default=None, help="Trials at once")
@click.option("--asha", default=None, metavar="GRACE,FACTOR",
              help="Early termination: judge at epochs GRACE, GRACE*FACTOR, ...")  # fmt: skip
@click.option("--name", default=None)
@click.option("--follow", is_flag=True, help="Show the leaderboard until the sweep ends")
@click.option(
    "--register",
    "register_as",
    default=None,
    metavar="NAME",
    help="With --follow: register the best model under this registry name",
)
@click.option("--alias", default=None, help="With --register: point this alias at it")
@_interval
@connection_options
def sweeps_submit(
    dataset_id: str,
    spec_file: Path | None,
    overrides: tuple[str, ...],
    search_file: Path,
    metric: str,
    mode: str | None,
    max_parallel: int | None,
    asha: str | None,
    name: str | None,
    follow: bool,
    register_as: str | None,
    alias: str | None,
    interval: float,
    url: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Start a sweep on a dataset; every trial's spec is checked before anything is queued."""
    spec = load_spec(spec_file, overrides)
    search = _load_search(search_file)
    early = _asha(asha)
    if register_as is not None and not follow:
        raise click.UsageError("--register needs --follow (it registers when the sweep ends)")
    if alias is not None and register_as is None:
        raise click.UsageError("--alias needs --register")
    with make_client(url, key) as client:
        sweep = client.sweep(
            dataset_id, spec, search, metric=metric, mode=mode, max_parallel=max_parallel,
            early_termination=early, name=name,
        )  # fmt: skip
        if follow:
            if not as_json:
                click.echo(f"sweep {sweep.id}: {len(sweep.trials)} trials")
            code = follow_sweep(sweep, as_json=as_json, interval=interval, console=_console())
            if code == 0 and register_as is not None:
                version = sweep.register(register_as, alias=alias)
                if as_json:
                    print_json({"event": "registered", **version})
                else:
                    click.echo(registered_line(version))
            sys.exit(code)
    if as_json:
        return print_json(sweep.data)
    click.echo(
        f"sweep {sweep.id} {sweep.status}, {len(sweep.trials)} trials; "
        f"`descent sweeps follow {sweep.id}` shows the leaderboard"
    )


@sweeps.command("follow")
@click.argument("sweep_id")
@_interval
@connection_options
def sweeps_follow(
    sweep_id: str, interval: float, url: str | None, key: str | None, as_json: bool
) -> None:
    """Show a sweep's leaderboard until it ends (exit 0 succeeded, 1 failed or cancelled)."""
    with make_client(url, key) as client:
        sweep = client.get_sweep(sweep_id)
        sys.exit(follow_sweep(sweep, as_json=as_json, interval=interval, console=_console()))


@sweeps.command("list")
@click.option("--limit", default=50, show_default=True, type=int)
@connection_options
def sweeps_list(limit: int, url: str | None, key: str | None, as_json: bool) -> None:
    """Sweeps, newest first."""
    with make_client(url, key) as client:
        found = client.sweeps(limit=limit)
    if as_json:
        return print_json([s.data for s in found])
    table = Table(title="sweeps", title_justify="left")
    for column in ("id", "name", "status", "metric", "created", "finished"):
        table.add_column(column, no_wrap=column == "id", min_width=36 if column == "id" else None)
    for s in found:
        d = s.data
        table.add_row(
            s.id, d.get("name") or "-", Text(s.status, style=_STYLE.get(s.status, "")),
            f"{d['metric']} ({d['mode']})", str(d["created_at"]), str(d.get("finished_at") or "-"),
        )  # fmt: skip
    _console().print(table)


@sweeps.command("show")
@click.argument("sweep_id")
@connection_options
def sweeps_show(sweep_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """A sweep's leaderboard: trials best first, with their parameters, and the best model."""
    with make_client(url, key) as client:
        sweep = client.get_sweep(sweep_id)
    if as_json:
        return print_json(sweep.data)
    console = _console()
    console.print(leaderboard(sweep.data))
    console.print(best_line(sweep.data))


@sweeps.command("cancel")
@click.argument("sweep_id")
@connection_options
def sweeps_cancel(sweep_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """Cancel the trials still waiting or training, and the sweep."""
    with make_client(url, key) as client:
        sweep = Sweep(client, {"id": sweep_id})
        sweep.cancel()
    if as_json:
        return print_json(sweep.data)
    click.echo(f"sweep {sweep.id} {sweep.status}")


COMMANDS: list[click.Command] = [sweeps]
