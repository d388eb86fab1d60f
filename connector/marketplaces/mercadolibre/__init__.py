"""Mercado Libre behind the marketplace interface (issue 17).

One module per job: `client` (HTTP, bearer tokens, Mercado Libre's errors), `shapes` (the JSON Mercado Libre
answers, as documented), `sites` (currencies and countries), `mapping` (Mercado Libre's JSON to the
connector's models), `notifications` (the webhook body, pure), `carts` (which connector order, a cart, an
order belongs to), `search` (the changed-orders listing), `followup` (invoices, tracking, cancellations),
`invoices` (the NF-e Mercado Libre issues itself for Full carts in Brazil, for VTEX) and `adapter`
(MercadoLibreMarketplace, the MarketplaceAdapter). `tokens` keeps the OAuth tokens.
"""

from connector.marketplaces.mercadolibre.adapter import MercadoLibreMarketplace

__all__ = ["MercadoLibreMarketplace"]
