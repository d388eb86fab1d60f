"""Connections: which marketplace account feeds the VTEX account, through which sales channel and
affiliate, with which secrets and payment mode. Configuration only; the connector serves several at once.

One connection comes from the environment (CONNECTION_NAME, MARKETPLACE_BASE_URL, WEBHOOK_SECRET, ...);
several come from the JSON file named by CONNECTIONS_FILE (README, "Connections").
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connector.models import ReprocessPolicy, VtexFlow
from connector.secret_strength import require_strong
from connector.settings import Settings, SettingsError, callback_tokens

MERCADOLIBRE_API = "https://api.mercadolibre.com"
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,40}$"
T = TypeVar("T")


class ConnectionConfig(BaseModel):
    """One entry of CONNECTIONS_FILE; what is left out falls back to the environment's settings."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    marketplace: str = Field(default="reference", description="Which adapter speaks to the marketplace.")
    marketplace_base_url: str | None = None
    vtex_flow: VtexFlow | None = Field(
        default=None, description="fulfillment (Place fulfillment order) or order-integration (Channel Order API)."
    )
    affiliate_id: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    sales_channel: str | None = Field(default=None, pattern=r"^\d+$")
    webhook_secret: str | None = None
    # Comma-separated to rotate, like CALLBACK_TOKEN: the first for new orders, all accepted.
    callback_token: str | None = None
    accept_unpaid_orders: bool | None = None
    payment_window_seconds: float | None = Field(default=None, gt=0)
    price_divergence_allowance_rate: float | None = Field(default=None, ge=0, le=1)
    poll_interval_seconds: float | None = Field(default=None, gt=0)
    poll_overlap_seconds: float | None = Field(default=None, ge=0)
    poll_page_size: int | None = Field(default=None, ge=1, le=100)
    poll_webhook_grace_seconds: float | None = Field(default=None, ge=0)
    # Mercado Libre (`"marketplace": "mercadolibre"`): the application's id and secret (Mercado Libre's own
    # secret: its strength is not checked), the site (MLB, MLA, MLM, ...), the OAuth server, and the first
    # refresh token, stored into the order store at the worker's first start when the store has none (after
    # that the store's rotated tokens are the ones used; `connector mercadolibre connect` replaces them).
    mercadolibre_app_id: str | None = Field(default=None, pattern=r"^\d+$")
    mercadolibre_client_secret: str | None = Field(default=None, min_length=1)
    mercadolibre_site: str | None = Field(default=None, pattern=r"^M[A-Z]{2}$")
    mercadolibre_auth_url: str = Field(default="https://api.mercadolibre.com", pattern=r"^https?://[^\s]+$")
    mercadolibre_refresh_token: str | None = Field(default=None, min_length=1)
    # The seller's Mercado Libre user id (notifications carry it as `user_id`; the order search filters by it).
    mercadolibre_seller_id: str | None = Field(default=None, pattern=r"^\d+$")
    # The VTEX warehouse that takes the orders the marketplace fulfills from its own stock (Mercado Libre
    # Full); without it such orders are parked saying to set it.
    fulfillment_warehouse_id: str | None = Field(default=None, min_length=1)

    @field_validator("webhook_secret")
    @classmethod
    def _strong_webhook_secret(cls, value: str | None) -> str | None:
        if value is not None:
            require_strong("webhook_secret", value)
        return value

    @field_validator("callback_token")
    @classmethod
    def _strong_callback_tokens(cls, value: str | None) -> str | None:
        if value is not None:
            callback_tokens(value, variable="callback_token")
        return value


class _ConnectionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connections: list[ConnectionConfig] = Field(min_length=1)


@dataclass(frozen=True)
class Connection:
    name: str
    marketplace: str
    affiliate_id: str
    sales_channel: str
    marketplace_base_url: str | None
    services_endpoint: str = field(repr=False)
    # Every token VTEX may call back with; the first is the one new orders are given.
    callback_tokens: tuple[str, ...] = field(repr=False)
    webhook_secret: str = field(repr=False)
    price_divergence_allowance_rate: float | None = None
    vtex_flow: VtexFlow = VtexFlow.FULFILLMENT
    accept_unpaid_orders: bool = False
    payment_window_seconds: float = 86400.0
    poll_interval_seconds: float = 60.0
    poll_overlap_seconds: float = 120.0
    poll_page_size: int = 100
    poll_heartbeat_timeout_seconds: float = 30.0
    poll_webhook_grace_seconds: float = 30.0
    webhook_replay_window_seconds: float = 300.0
    vtex_task_queue: str | None = None
    policy: ReprocessPolicy = field(default_factory=ReprocessPolicy)
    after_sale_window_seconds: float = 120 * 86400.0
    unknown_placement_window_seconds: float = 600.0
    continue_as_new_after_events: int = 2000
    mercadolibre_app_id: str | None = None
    mercadolibre_client_secret: str | None = field(default=None, repr=False)
    mercadolibre_site: str | None = None
    mercadolibre_auth_url: str = "https://api.mercadolibre.com"
    mercadolibre_refresh_token: str | None = field(default=None, repr=False)
    mercadolibre_seller_id: str | None = None
    fulfillment_warehouse_id: str | None = None


def connection_configs(settings: Settings) -> list[ConnectionConfig]:
    if settings.connections_file is None:
        return [
            ConnectionConfig(
                name=settings.connection_name,
                marketplace_base_url=str(settings.marketplace_base_url) if settings.marketplace_base_url else None,
                webhook_secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
                callback_token=settings.callback_token.get_secret_value() if settings.callback_token else None,
            )
        ]
    path = Path(settings.connections_file)
    try:
        parsed = _ConnectionsFile.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"CONNECTIONS_FILE {path}: cannot read it: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise SettingsError(f"CONNECTIONS_FILE {path}: {problems}") from None
    names = [config.name for config in parsed.connections]
    if len(set(names)) != len(names):
        raise SettingsError(f"CONNECTIONS_FILE {path}: connection names must be unique")
    return parsed.connections


def build_connections(settings: Settings, *, marketplace_urls: dict[str, str] | None = None) -> dict[str, Connection]:
    """The configured connections; `marketplace_urls` fills in embedded sandboxes' URLs."""
    connections = {}
    for config in connection_configs(settings):
        base_url = (marketplace_urls or {}).get(config.name) or config.marketplace_base_url
        if base_url is None and config.marketplace == "mercadolibre":
            base_url = MERCADOLIBRE_API
        if base_url is None:
            raise SettingsError(f"connection {config.name}: no marketplace base URL (MARKETPLACE_BASE_URL)")
        tokens = (
            callback_tokens(config.callback_token, variable="CALLBACK_TOKEN")
            if config.callback_token
            else (_secret(settings, config.name, "callback-token", "CALLBACK_TOKEN"),)
        )
        connections[config.name] = Connection(
            name=config.name,
            marketplace=config.marketplace,
            affiliate_id=config.affiliate_id or settings.vtex_affiliate_id,
            sales_channel=config.sales_channel or settings.vtex_sales_channel,
            marketplace_base_url=base_url.rstrip("/"),
            services_endpoint=settings.marketplace_services_endpoint(config.name, tokens[0]),
            vtex_flow=_pick(config.vtex_flow, settings.vtex_flow),
            callback_tokens=tokens,
            webhook_secret=config.webhook_secret or _secret(settings, config.name, "webhook-secret", "WEBHOOK_SECRET"),
            price_divergence_allowance_rate=_pick(
                config.price_divergence_allowance_rate, settings.price_divergence_allowance_rate
            ),
            accept_unpaid_orders=_pick(config.accept_unpaid_orders, settings.accept_unpaid_orders),
            payment_window_seconds=_pick(config.payment_window_seconds, settings.payment_window_seconds),
            poll_interval_seconds=_pick(config.poll_interval_seconds, settings.poll_interval_seconds),
            poll_overlap_seconds=_pick(config.poll_overlap_seconds, settings.poll_overlap_seconds),
            poll_page_size=_pick(config.poll_page_size, settings.poll_page_size),
            poll_heartbeat_timeout_seconds=settings.poll_heartbeat_timeout_seconds,
            poll_webhook_grace_seconds=_pick(config.poll_webhook_grace_seconds, settings.poll_webhook_grace_seconds),
            webhook_replay_window_seconds=settings.webhook_replay_window_seconds,
            vtex_task_queue=settings.vtex_task_queue,
            policy=settings.reprocess_policy(),
            after_sale_window_seconds=settings.after_sale_window_days * 86400.0,
            unknown_placement_window_seconds=settings.unknown_placement_window_seconds,
            continue_as_new_after_events=settings.continue_as_new_after_events,
            mercadolibre_app_id=config.mercadolibre_app_id,
            mercadolibre_client_secret=config.mercadolibre_client_secret,
            mercadolibre_site=config.mercadolibre_site,
            mercadolibre_auth_url=config.mercadolibre_auth_url.rstrip("/"),
            mercadolibre_refresh_token=config.mercadolibre_refresh_token,
            mercadolibre_seller_id=config.mercadolibre_seller_id,
            fulfillment_warehouse_id=config.fulfillment_warehouse_id,
        )
    return connections


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def _secret(settings: Settings, connection: str, kind: str, variable: str) -> str:
    """In embedded mode, a secret generated once and kept in the data folder (placed orders carry the
    callback URL, so it must survive restarts); with a real VTEX account it must be configured."""
    if not settings.embedded:
        raise SettingsError(f"connection {connection}: {variable} (16+ random characters) is required")
    path = Path(settings.data_dir) / f"{kind}-{connection}"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    path.write_text(value)
    path.chmod(0o600)
    return value
