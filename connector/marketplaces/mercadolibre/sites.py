"""Mercado Libre's sites: the currency each one sells in and its country.

Every order example writes the site's currency (`"currency_id": "BRL"` on MLB orders, `"ARS"` on MLA ones:
https://developers.mercadolivre.com.br/gerenciamento-de-vendas); the site ids and currencies are those of
`GET /sites` (https://api.mercadolibre.com/sites). Countries are ISO 3166-1 alpha-3 for VTEX, from the
alpha-2 `country.id` Mercado Libre writes in addresses (`"BR"`).

Money: Mercado Libre writes amounts as JSON numbers in the currency's unit (`"unit_price": 49.9`,
`"unit_price": 15990` for Chilean pesos). VTEX writes every amount as an integer of hundredths whatever the
currency (README: "Money is always an integer number of cents, as in every VTEX API"; VTEX stores a CLP
price of $15.990 as 1599000), so cents are always the amount times 100: a currency without minor units
(CLP, COP) is no exception and needs no table of decimals.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    id: str
    currency_id: str
    country_alpha2: str
    country_alpha3: str


SITES: dict[str, Site] = {
    site.id: site
    for site in (
        Site("MLA", "ARS", "AR", "ARG"),
        Site("MLB", "BRL", "BR", "BRA"),
        Site("MLM", "MXN", "MX", "MEX"),
        Site("MLC", "CLP", "CL", "CHL"),
        Site("MCO", "COP", "CO", "COL"),
        Site("MLU", "UYU", "UY", "URY"),
        Site("MPE", "PEN", "PE", "PER"),
        Site("MEC", "USD", "EC", "ECU"),
        Site("MLV", "VES", "VE", "VEN"),
        Site("MBO", "BOB", "BO", "BOL"),
        Site("MPY", "PYG", "PY", "PRY"),
        Site("MCR", "CRC", "CR", "CRI"),
        Site("MRD", "DOP", "DO", "DOM"),
        Site("MPA", "USD", "PA", "PAN"),
        Site("MGT", "GTQ", "GT", "GTM"),
        Site("MHN", "HNL", "HN", "HND"),
        Site("MNI", "NIO", "NI", "NIC"),
        Site("MSV", "USD", "SV", "SLV"),
    )
}

ALPHA3 = {site.country_alpha2: site.country_alpha3 for site in SITES.values()}

# Brazil's fiscal documents come from Mercado Libre's own invoicing (the Faturador): the upload resource is
# "available in all sites, except Mercado Livre Brasil" (https://developers.mercadolivre.com.br/en_us/upload-invoices).
BRAZIL = "MLB"
# "To Mercado Libre Chile, the pack with Full shipping will not use this resource" (same page).
CHILE = "MLC"


def site(site_id: str) -> Site:
    """The site, or ValueError naming the ones the connector knows (a connection's configuration error)."""
    found = SITES.get(site_id.upper())
    if found is None:
        raise ValueError(f"unknown Mercado Libre site {site_id!r}: use one of {', '.join(SITES)}")
    return found
