"""The seeded catalog both sandboxes share, so demo orders match what the VTEX sandbox sells.

Each SKU is chosen to exercise one path of the connector: good SKUs, an inactive SKU, a SKU outside
sales channel 1, one out of stock, one no carrier serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SandboxSla:
    id: str
    delivery_channel: str  # "delivery" or "pickup-in-point"
    price: int  # cents, for one item line
    shipping_estimate: str
    pickup_point_id: str | None = None


@dataclass(frozen=True)
class SandboxSku:
    id: str
    name: str
    price: int  # cents
    stock: int
    sales_channels: tuple[int, ...] = (1,)
    is_active: bool = True
    is_product_active: bool = True
    slas: tuple[SandboxSla, ...] = field(default_factory=tuple)


NORMAL = SandboxSla("Normal", "delivery", 500, "5bd")
EXPRESS = SandboxSla("Express", "delivery", 1500, "1bd")
PICKUP = SandboxSla("Retirada Centro", "pickup-in-point", 0, "2bd", pickup_point_id="1_centro")
STANDARD_SLAS = (NORMAL, EXPRESS, PICKUP)

SKUS: tuple[SandboxSku, ...] = (
    SandboxSku("1", "Camiseta Azul M", 4990, 100_000, (1, 2), slas=STANDARD_SLAS),
    SandboxSku("2", "Tênis Corrida 42", 29990, 100_000, (1, 2), slas=STANDARD_SLAS),
    SandboxSku("3", "Mochila Urbana", 15990, 100_000, (1,), slas=STANDARD_SLAS),
    SandboxSku("4", "Boné Clássico", 3990, 100_000, (1,), is_active=False, slas=STANDARD_SLAS),
    SandboxSku("5", "Jaqueta Exclusiva Loja", 49990, 100_000, (2,), slas=STANDARD_SLAS),
    SandboxSku("6", "Relógio Edição Limitada", 89990, 0, (1,), slas=STANDARD_SLAS),
    SandboxSku("7", "Sofá 3 Lugares", 259990, 100, (1,), slas=()),
    SandboxSku("8", "Garrafa Térmica", 7990, 100_000, (1, 2), slas=(NORMAL, PICKUP)),
)

# SKUs a demo order may contain: each is active, in sales channel 1, in stock and served by a carrier.
SELLABLE_SKU_IDS: tuple[str, ...] = ("1", "2", "3", "8")


def sku_by_id() -> dict[str, SandboxSku]:
    return {sku.id: sku for sku in SKUS}
