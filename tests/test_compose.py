"""docker-compose.yml cannot be run here (no Docker engine): check what it starts against the project."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.cli import _parser
from connector.settings import Settings
from workflows.support import SEARCH_ATTRIBUTES

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
CONNECTOR_SERVICES = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}


def cli_commands() -> set[str]:
    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(commands.choices)


def test_the_stack_has_every_part() -> None:
    assert {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-ui",
        "temporal-search-attributes",
        "connector-db",
        "connector-worker",
        "connector-intake",
        "connector-codec",
    } <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(CONNECTOR_SERVICES))
def test_connector_services_run_existing_commands_with_known_settings(name: str) -> None:
    service = CONNECTOR_SERVICES[name]
    assert service["command"][0] in cli_commands()
    unknown = set(service["environment"]) - SETTINGS_VARIABLES
    assert not unknown, f"{name} sets variables the connector does not read: {unknown}"
    assert service["env_file"] == ".env"


def test_example_env_names_only_real_settings() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names <= SETTINGS_VARIABLES, names - SETTINGS_VARIABLES


def test_published_ports_match_the_settings() -> None:
    intake = CONNECTOR_SERVICES["connector-intake"]
    assert intake["ports"] == [f"{intake['environment']['INTAKE_PORT']}:{intake['environment']['INTAKE_PORT']}"]
    codec = CONNECTOR_SERVICES["connector-codec"]
    assert codec["ports"] == [f"{codec['environment']['CODEC_PORT']}:{codec['environment']['CODEC_PORT']}"]
    ui = SERVICES["temporal-ui"]
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith(f":{codec['environment']['CODEC_PORT']}")
    assert codec["environment"]["CODEC_CORS_ORIGINS"] == ui["environment"]["TEMPORAL_CORS_ORIGINS"]
    assert Settings.model_fields["metrics_port"].default == 9464
    assert "9464" in " ".join(CONNECTOR_SERVICES["connector-worker"]["healthcheck"]["test"])


def test_the_worker_scales_out() -> None:
    worker = CONNECTOR_SERVICES["connector-worker"]
    assert "ports" not in worker and "container_name" not in worker


def test_dependencies_exist_and_databases_are_health_checked() -> None:
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
    for database in ("postgresql", "connector-db", "temporal"):
        assert "healthcheck" in SERVICES[database]


def test_mounted_files_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source


def test_search_attributes_job_registers_what_the_workflow_uses() -> None:
    script = (REPO / "deploy/temporal/register-search-attributes.sh").read_text()
    (names,) = re.findall(r"for name in ([A-Za-z ]+); do", script)
    assert set(names.split()) == {key.name for key in SEARCH_ATTRIBUTES}


def test_the_store_url_points_at_the_store_database() -> None:
    url = COMPOSE["x-connector-env"]["STORE_URL"]
    database = SERVICES["connector-db"]["environment"]
    assert url == (
        f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}"
        f"@connector-db:5432/{database['POSTGRES_DB']}"
    )


def test_the_image_installs_the_project() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for part in ("connector", "workflows", "activities", "worker.py", "pyproject.toml"):
        assert part in dockerfile
    assert 'ENTRYPOINT ["connector"]' in dockerfile
