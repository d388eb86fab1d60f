"""Catalog side of the VTEX sandbox: SKU lookups and the `SkuContext` answer (Catalog API spec)."""

from __future__ import annotations

import zlib

from sandboxes.catalog import SandboxSku
from sandboxes.vtex_models import JSON, SELLER_ID


def numeric_id(value: str) -> int:
    # Catalog ids are integers in the spec; a non-numeric seeded id still gets a stable one.
    return int(value) if value.isdigit() else zlib.crc32(value.encode()) % 2_000_000_000


def product_id(sku: SandboxSku) -> int:
    # The seeded catalog has one SKU per product; offsetting keeps the two ids visibly different.
    return numeric_id(sku.id) + 1000


def is_sellable(sku: SandboxSku | None, seller: str, sales_channel: int) -> bool:
    """What Checkout needs to put a SKU in a cart at all (stock and carriers are separate checks)."""
    return (
        sku is not None
        and seller == SELLER_ID
        and sku.is_active
        and sku.is_product_active
        and sales_channel in sku.sales_channels
    )


def ean(sku: SandboxSku) -> str:
    return f"789{numeric_id(sku.id):010d}"


def image_url(sku: SandboxSku) -> str:
    return f"https://sandbox.vteximg.com.br/arquivos/ids/{numeric_id(sku.id)}-55-55/sku.jpg"


def detail_url(sku: SandboxSku) -> str:
    return f"/{sku.name.lower().replace(' ', '-')}/p"


def sku_context(sku: SandboxSku) -> JSON:
    """`GetSKUandContext`: every field the spec marks required, PascalCase as VTEX answers."""
    sku_id = numeric_id(sku.id)
    return {
        "Id": sku_id,
        "ProductId": product_id(sku),
        "NameComplete": sku.name,
        "ComplementName": "",
        "ProductName": sku.name,
        "ProductDescription": sku.name,
        "ProductRefId": f"REF-{sku.id}",
        "TaxCode": "",
        "SkuName": sku.name,
        "IsActive": sku.is_active,
        "IsTransported": True,
        "IsInventoried": True,
        "IsGiftCardRecharge": False,
        "ImageUrl": image_url(sku),
        "DetailUrl": detail_url(sku),
        "CSCIdentification": None,
        "BrandId": "2000000",
        "BrandName": "Sandbox",
        "IsBrandActive": True,
        "Dimension": {"cubicweight": 1.0, "height": 10.0, "length": 10.0, "weight": 500.0, "width": 10.0},
        "RealDimension": {
            "realCubicWeight": 1.0,
            "realHeight": 10.0,
            "realLength": 10.0,
            "realWeight": 500.0,
            "realWidth": 10.0,
        },
        "ManufacturerCode": "",
        "IsKit": False,
        "KitItems": [],
        "Services": [],
        "Categories": [],
        "CategoriesFullPath": ["/1/"],
        "Attachments": [],
        "Collections": [],
        "SkuSellers": [
            {
                "SellerId": SELLER_ID,
                "StockKeepingUnitId": sku_id,
                "SellerStockKeepingUnitId": sku.id,
                "IsActive": sku.is_active,
                "FreightCommissionPercentage": 0,
                "ProductCommissionPercentage": 0,
            }
        ],
        "SalesChannels": list(sku.sales_channels),
        "Images": [{"ImageUrl": image_url(sku), "ImageName": sku.name, "FileId": sku_id}],
        "Videos": [],
        "SkuSpecifications": [],
        "ProductSpecifications": [],
        "ProductClustersIds": "",
        "PositionsInClusters": {},
        "ProductClusterNames": {},
        "ProductClusterHighlights": {},
        "ProductCategoryIds": "/1/",
        "IsDirectCategoryActive": True,
        "ProductGlobalCategoryId": None,
        "ProductCategories": {"1": "Sandbox"},
        "CommercialConditionId": 1,
        "RewardValue": 0.0,
        "AlternateIds": {"Ean": ean(sku), "RefId": f"REF-{sku.id}"},
        "AlternateIdValues": [ean(sku), f"REF-{sku.id}"],
        "EstimatedDateArrival": None,
        "MeasurementUnit": "un",
        "UnitMultiplier": 1.0,
        "InformationSource": "Indexer",
        "ModalType": None,
        "KeyWords": None,
        "ReleaseDate": None,
        "ProductIsVisible": True,
        "ShowIfNotAvailable": True,
        "IsProductActive": sku.is_product_active,
        "ProductFinalScore": 0,
    }
