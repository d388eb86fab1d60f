"""A connection: which marketplace account feeds which VTEX account, sales channel and affiliate."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from connector.models import ReprocessPolicy
from connector.settings import Settings


@dataclass(frozen=True)
class Connection:
    name: str
    affiliate_id: str
    sales_channel: str
    marketplace_base_url: str
    services_endpoint: str
    callback_token: str = field(repr=False)
    price_divergence_allowance_rate: float | None = None
    accept_unpaid_orders: bool = False
    payment_window_seconds: float = 86400.0
    policy: ReprocessPolicy = field(default_factory=ReprocessPolicy)


def callback_token(settings: Settings) -> str:
    """CALLBACK_TOKEN, or in embedded mode one generated once and kept in the data folder: orders
    already placed carry the URL, so the token must survive restarts."""
    if settings.callback_token is not None:
        return settings.callback_token.get_secret_value()
    path = Path(settings.data_dir) / "callback-token"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token)
    path.chmod(0o600)
    return token


def connections_from_settings(settings: Settings, *, marketplace_base_url: str | None = None) -> dict[str, Connection]:
    base_url = marketplace_base_url or (str(settings.marketplace_base_url) if settings.marketplace_base_url else None)
    if base_url is None:
        raise ValueError("MARKETPLACE_BASE_URL is not set and no marketplace sandbox is running")
    token = callback_token(settings)
    connection = Connection(
        name=settings.connection_name,
        affiliate_id=settings.vtex_affiliate_id,
        sales_channel=settings.vtex_sales_channel,
        marketplace_base_url=base_url.rstrip("/"),
        services_endpoint=settings.marketplace_services_endpoint(token),
        callback_token=token,
        price_divergence_allowance_rate=settings.price_divergence_allowance_rate,
        accept_unpaid_orders=settings.accept_unpaid_orders,
        payment_window_seconds=settings.payment_window_seconds,
        policy=settings.reprocess_policy(),
    )
    return {connection.name: connection}
