"""A connection: which marketplace account feeds which VTEX account, sales channel and affiliate."""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.models import ReprocessPolicy
from connector.settings import Settings


@dataclass(frozen=True)
class Connection:
    name: str
    affiliate_id: str
    sales_channel: str
    marketplace_base_url: str
    services_endpoint: str
    price_divergence_allowance_rate: float | None = None
    policy: ReprocessPolicy = field(default_factory=ReprocessPolicy)


def connections_from_settings(
    settings: Settings, *, marketplace_base_url: str | None = None
) -> dict[str, Connection]:
    base_url = marketplace_base_url or (
        str(settings.marketplace_base_url) if settings.marketplace_base_url else None
    )
    if base_url is None:
        raise ValueError("MARKETPLACE_BASE_URL is not set and no marketplace sandbox is running")
    connection = Connection(
        name=settings.connection_name,
        affiliate_id=settings.vtex_affiliate_id,
        sales_channel=settings.vtex_sales_channel,
        marketplace_base_url=base_url.rstrip("/"),
        services_endpoint=settings.marketplace_services_endpoint(),
        price_divergence_allowance_rate=settings.price_divergence_allowance_rate,
        policy=settings.reprocess_policy(),
    )
    return {connection.name: connection}
