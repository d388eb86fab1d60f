"""The console as a server: its login from the settings (generated in embedded mode) and the Mercado Libre
connections whose authorization it watches (CONNECTIONS_FILE), on INTAKE_HOST."""

from __future__ import annotations

import secrets
from pathlib import Path

from temporalio.client import Client

from connector.connections import connection_configs
from connector.console.app import ConsoleConfig, create_console_app
from connector.console.authorizations import MARKETPLACE
from connector.http_server import HttpServer
from connector.settings import Settings, SettingsError
from connector.store.base import OrderStore


def console_password(settings: Settings) -> str:
    """CONSOLE_PASSWORD, or in embedded mode one generated once into the data folder (printed by
    `connector run`); SettingsError (one sentence) when a real deployment has none."""
    if settings.console_password is not None:
        return settings.console_password.get_secret_value()
    if not settings.embedded:
        raise SettingsError(
            "CONSOLE_PASSWORD is required for the seller's console when VTEX credentials are set (16+ random "
            'characters: python -c "import secrets; print(secrets.token_urlsafe(24))"), or set CONSOLE_PORT=0'
        )
    return _generated_password(settings.data_dir)


def _generated_password(data_dir: Path) -> str:
    path = data_dir / "console-password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return path.read_text().strip()


def console_server(settings: Settings, client: Client, store: OrderStore, *, port: int | None = None) -> HttpServer:
    config = ConsoleConfig(
        user=settings.console_user,
        password=console_password(settings),
        account=settings.account_name,
        temporal_namespace=settings.temporal_namespace,
        temporal_ui_url=str(settings.temporal_ui_url),
        task_queue=settings.temporal_task_queue,
        mercadolibre_connections=tuple(
            config.name for config in connection_configs(settings) if config.marketplace == MARKETPLACE
        ),
    )
    app = create_console_app(client, store, config)
    chosen = settings.console_port if port is None else port
    return HttpServer(app, host=settings.intake_host, port=chosen, name="console", setting="CONSOLE_PORT")
