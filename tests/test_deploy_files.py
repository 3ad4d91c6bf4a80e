"""docker-compose.yml and the Dockerfile, checked against the code without a Docker engine:
every setting the services pass is one Settings reads, every command parses with the real
CLI, the health checks ask what the services answer, the services find each other by name,
and the image contains every package the project installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from sqlalchemy.engine import make_url

from api.app import create_app
from core.config import Settings
from descent.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DESCENT_SERVICES = ("migrate", "api", "worker")


def _environment(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[name].get("environment", {}).items()}


def test_the_services_are_all_there() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "api", "worker"}
    for name in DESCENT_SERVICES:
        assert SERVICES[name]["image"] == "descent:latest" and SERVICES[name]["build"] == "."


@pytest.mark.parametrize("name", DESCENT_SERVICES)
def test_every_setting_passed_is_one_settings_reads(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = _environment(name)
    assert environment, name
    fields = {f"DESCENT_{field.upper()}" for field in Settings.model_fields}
    assert set(environment) <= fields, set(environment) - fields
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url == environment["DESCENT_DATABASE_URL"]
    assert settings.broker_url == environment["DESCENT_BROKER_URL"]
    assert settings.blas_threads == 1  # one BLAS thread per worker process: they share cores


@pytest.mark.parametrize("name", DESCENT_SERVICES)
def test_every_command_parses_with_the_cli(name: str) -> None:
    program, subcommand, *args = SERVICES[name]["command"]
    assert program == "descent"
    command = cli.get_command(click.Context(cli), subcommand)
    assert command is not None, subcommand
    context = command.make_context(subcommand, list(args))  # raises on an unknown option
    if name == "api":
        assert context.params["host"] == "0.0.0.0" and context.params["port"] == 8000
        assert SERVICES["api"]["ports"] == [f"{context.params['port']}:8000"]


def test_the_services_find_each_other_by_name() -> None:
    environment = _environment("api")
    database = make_url(environment["DESCENT_DATABASE_URL"])
    postgres = SERVICES["postgres"]["environment"]
    assert database.host in SERVICES and database.port == 5432
    assert (database.username, database.password, database.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    broker = urlsplit(environment["DESCENT_BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname in SERVICES and broker.port == 6379


def test_health_checks_ask_what_the_services_answer() -> None:
    postgres = SERVICES["postgres"]
    check = " ".join(postgres["healthcheck"]["test"])
    env = postgres["environment"]
    assert f"-U {env['POSTGRES_USER']}" in check and f"-d {env['POSTGRES_DB']}" in check
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    # The API's check opens /readyz on its own port: a route the app has.
    api_check = " ".join(SERVICES["api"]["healthcheck"]["test"])
    url = re.search(r"http://[^'\"]+", api_check)
    assert url is not None
    paths = create_app(Settings()).openapi()["paths"]
    assert urlsplit(url[0]).path in paths and urlsplit(url[0]).port == 8000
    # The worker's check pings its own Celery app (worker.app) by this container's name.
    worker_check = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "celery -A worker.app inspect ping" in worker_check
    assert "celery@$$HOSTNAME" in worker_check  # $$: compose passes a literal $ to the shell


def test_startup_order_waits_for_what_each_service_needs() -> None:
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (name, dependency)
    # Nothing that serves starts before the schema is there.
    for name in ("api", "worker"):
        condition = SERVICES[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_the_image_holds_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\S+) \./\1$", (REPO / "Dockerfile").read_text(), re.M))
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


def test_compose_users_are_told_how_to_make_a_key() -> None:
    readme = (REPO / "README.md").read_text()
    assert "docker compose run --rm api descent keys create --tenant" in readme
