"""``descent models show|predict|download``: a trained model from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click

from descent.client_commands import (
    ClientGroup,
    connection_options,
    make_client,
    print_fields,
    print_json,
)


@click.group(cls=ClientGroup)
def models() -> None:
    """Show trained models, predict with them, download their weights."""


@models.command("show")
@click.argument("model_id")
@connection_options
def models_show(model_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """One model: task, inputs, classes, metrics."""
    with make_client(url, key) as client:
        model = client.model(model_id)
    return print_json(model.data) if as_json else print_fields(f"model {model.id}", model.data)


def read_inputs(path: Path) -> Any:
    """Rows to predict: a CSV with a header (columns by name; empty cells are missing), or JSON
    holding a list of rows, a list of records, or a whole predict body."""
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if isinstance(data, dict) and "inputs" in data:
            return data["inputs"]
        return data
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise click.BadParameter(f"{path} has no header row", param_hint="--input")
    return _Table(header, [[_cell(v) for v in row] for row in reader if row])


class _Table:
    """Just enough of a DataFrame for the client: named columns, rows as lists."""

    def __init__(self, columns: list[str], rows: list[list[Any]]) -> None:
        self.columns = columns
        self.rows = rows

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _model_columns(rows: Any, features: list[str]) -> Any:
    """A table with every feature and more (a held-out file with its label, say): the other
    columns are left out, and the user is told which."""
    if not isinstance(rows, _Table):
        return rows
    extra = [c for c in rows.columns if c not in features]
    if not extra or any(f not in rows.columns for f in features):
        return rows  # the server names what is missing or unknown
    click.echo(f"ignoring columns the model does not use: {', '.join(extra)}", err=True)
    where = [rows.columns.index(f) for f in features]
    return _Table(features, [[row[i] for i in where] for row in rows.rows])


def _cell(value: str) -> Any:
    stripped = value.strip()
    if stripped == "":
        return None
    try:
        return float(stripped)
    except ValueError:
        return stripped


@models.command("predict")
@click.argument("model_id")
@click.option("--input", "input_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rows as CSV (with a header) or JSON")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write CSV (or JSON with --json) here instead of printing")  # fmt: skip
@connection_options
def models_predict(
    model_id: str,
    input_path: Path,
    output: Path | None,
    url: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Predict every row of an input file: the prediction and, for classifiers, one
    probability column per class."""
    rows = read_inputs(input_path)
    with make_client(url, key) as client:
        model = client.model(model_id)
        rows = _model_columns(rows, model.feature_names)
        values, proba = model.predict_with_proba(rows)
        predictions = values.tolist()
        probabilities = proba.tolist() if proba is not None else None
    if as_json:
        body = {"model_id": model.id, "predictions": predictions,
                "probabilities": probabilities, "classes": model.classes}  # fmt: skip
        text = json.dumps(body, indent=2, default=str)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        classes = model.classes or []
        writer.writerow(["prediction", *(f"p_{c}" for c in classes)])
        for i, value in enumerate(predictions):
            writer.writerow(
                [value, *(f"{p:.6g}" for p in (probabilities or [[]] * len(predictions))[i])]
            )
        text = buffer.getvalue()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"{len(predictions)} predictions written to {output}", err=True)


@models.command("register")
@click.argument("model_id")
@click.option("--name", required=True, help="The registry name (created when new)")
@click.option("--alias", default=None, help="Point this alias (e.g. production) at the version")
@connection_options
def models_register(
    model_id: str, name: str, alias: str | None, url: str | None, key: str | None, as_json: bool
) -> None:
    """Add a model to the registry as the next version of NAME."""
    with make_client(url, key) as client:
        version = client.register(model_id, name, alias=alias)
    if as_json:
        return print_json(version)
    click.echo(registered_line(version))


def registered_line(version: dict[str, Any]) -> str:
    line = f"registered model {version['model_id']} as {version['name']} v{version['version']}"
    return line + (f" ({version['alias']})" if version.get("alias") else "")


@models.command("download")
@click.argument("model_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the .npz (default: <model id>.npz)")  # fmt: skip
@connection_options
def models_download(
    model_id: str, output: Path | None, url: str | None, key: str | None, as_json: bool
) -> None:
    """The weights as a self-contained .npz (numpy.load(..., allow_pickle=False))."""
    with make_client(url, key) as client:
        path = client.model(model_id).download(output or Path(f"{model_id}.npz"))
    if as_json:
        return print_json({"model_id": model_id, "path": str(path)})
    click.echo(f"weights of model {model_id} written to {path}")
