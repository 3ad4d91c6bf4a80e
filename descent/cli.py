"""The ``descent`` command: server commands (serve, api, worker, migrate, keys) and client
commands that talk to a server (login, datasets, runs, models, sweeps)."""

from __future__ import annotations

import click

from descent import client_commands, model_commands, server_commands, sweep_commands


@click.group()
@click.version_option(package_name="descent")
def main() -> None:
    """Descent: training-as-a-service for small dense networks."""


for command in (
    *server_commands.COMMANDS,
    *client_commands.COMMANDS,
    model_commands.models,
    *sweep_commands.COMMANDS,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
