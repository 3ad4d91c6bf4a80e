"""Watching a run in a terminal: a live progress bar per epoch (rich), then a one-line summary.
Ctrl-C stops the watching, never the run."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from descent.handles import Run

_METRICS = (
    ("train_loss", "loss"),
    ("val_loss", "val_loss"),
    ("train_accuracy", "acc"),
    ("val_accuracy", "val_acc"),
    ("learning_rate", "lr"),
)


def metrics_text(entry: dict[str, Any]) -> str:
    parts = []
    for key, label in _METRICS:
        value = entry.get(key)
        if value is not None:
            parts.append(f"{label} {value:.4g}")
    return "  ".join(parts)


def summary(run: Run) -> str:
    latest = run.data.get("latest") or {}
    epochs = (run.data.get("progress") or {}).get("epoch", 0)
    figures = metrics_text(latest)
    line = f"run {run.id} {run.status} after {epochs} epochs"
    if run.data.get("parent_model_id"):
        line += f" (warm-started from model {run.data['parent_model_id']})"
    if figures:
        line += f": {figures}"
    if run.model_id:
        line += f"; model {run.model_id}"
    error = run.data.get("error")
    if error:
        line += f"; {error.get('code')}: {error.get('message')}"
    return line


def follow_run(run: Run, *, as_json: bool, console: Console, announce: str | None = None) -> int:
    """Show the run until it is final; the exit code: 0 succeeded, 1 failed or cancelled,
    130 when the user stopped watching (Ctrl-C: the run goes on, a note on stderr says so).
    ``announce`` is printed first, inside the Ctrl-C handling: a Ctrl-C right after it is the
    same stop, not click's "Aborted!"."""
    try:
        if announce:
            click.echo(announce)
        if as_json:
            for entry in run.follow():
                click.echo(json.dumps({"event": "epoch", **entry}))
        else:
            _bar(run, console)
    except KeyboardInterrupt:
        # On stderr: stdout is the bar (or, with --json, JSON lines a script reads).
        Console(stderr=True, highlight=False).print(
            f"Stopped following. Run {run.id} keeps training: "
            f"`descent runs follow {run.id}` watches it again, "
            f"`descent runs cancel {run.id}` stops it.",
            style="yellow",
        )
        return 130
    run.refresh()
    if as_json:
        click.echo(json.dumps({"event": "final", **run.data}))
    else:
        style = "green" if run.status == "succeeded" else "red"
        console.print(summary(run), style=style)
    return 0 if run.status == "succeeded" else 1


def _bar(run: Run, console: Console) -> None:
    shown = run.data.get("progress") or {}
    total = shown.get("epochs") or run.data["spec"].get("epochs")
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        # A warm start's epochs count on from its model's: its bar begins there.
        before = max(0, (total or 0) - int(run.data["spec"].get("epochs") or 0))
        task = progress.add_task(
            f"run {run.id[:8]}", total=total, completed=before, metrics=run.status
        )
        for entry in run.follow():
            progress.update(task, completed=entry["epoch"], metrics=metrics_text(entry))
        progress.update(task, metrics=run.status)
