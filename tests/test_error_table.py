"""The one error table: each VTEX answer maps to exactly one handling, and the seller gets an action."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connector.vtex.error_table import (
    CHANNEL_ORDER_BY_CODE,
    Handling,
    channel_order_action,
    channel_order_handling,
    classify,
    divergent_prices,
    seller_action,
)
from connector.vtex.responses import ChannelOrderAnswer


@pytest.mark.parametrize(
    ("status", "code", "handling"),
    [
        (400, "FMT007", Handling.PRICE_DIVERGENCE),
        (400, "ORD027", Handling.REPROCESS),
        (400, "ORD028", Handling.REPROCESS),
        (400, "FMT003", Handling.REPROCESS),
        (400, "FMT004", Handling.REPROCESS),
        (400, "FMT005", Handling.REPROCESS),
        (400, "FMT010", Handling.REPROCESS),
        (400, "FMT009", Handling.ALREADY_EXISTS),
        (400, "FMT0060", Handling.ALREADY_CANCELED),
        (400, "FMT0042", Handling.BUSINESS),
        (400, None, Handling.BUSINESS),
        (404, None, Handling.BUSINESS),
        (401, "CHK003", Handling.CREDENTIALS),
        (403, None, Handling.CREDENTIALS),
        (429, None, Handling.TRANSIENT),
        (500, None, Handling.TRANSIENT),
        (503, None, Handling.TRANSIENT),
        (None, None, Handling.TRANSIENT),
    ],
)
def test_every_documented_answer_has_one_handling(status: int | None, code: str | None, handling: Handling) -> None:
    assert classify(status, code) is handling


def test_price_divergence_message_names_both_prices_and_the_fix() -> None:
    message = "Payment total (10990) differs from store desired value (9990)"
    assert divergent_prices(message) == (10990, 9990)
    action = seller_action(400, "FMT007", message, sales_channel="1")
    assert "109.90" in action and "99.90" in action and "sales channel 1" in action


@pytest.mark.parametrize(("status", "words"), [(401, "VTEX_APP_KEY"), (403, "License Manager")])
def test_credential_problems_say_what_to_fix(status: int, words: str) -> None:
    assert words in seller_action(status, None, "Access denied", sales_channel="1")


# --- Channel Order API (New Order Integration) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "handling"),
    [
        ("SOI001", None),
        ("SOI002", None),
        ("SOI003", None),
        ("EOI000", Handling.TRANSIENT),
        ("EOI001", Handling.BUSINESS),
        ("EOI002", Handling.REPROCESS),
        ("EOI003", Handling.PRICE_DIVERGENCE),
        ("EOI004", Handling.BUSINESS),
        ("EOI005", Handling.BUSINESS),
        ("EOI006", Handling.TRANSIENT),
        ("EOI007", Handling.ALREADY_EXISTS),
        ("EOI008", Handling.TRANSIENT),
        ("EOI009", None),
        ("EOI010", Handling.TRANSIENT),
        ("EOI011", None),
        # Unknown codes park the order, whatever their prefix.
        ("EOI012", Handling.BUSINESS),
        ("SOI004", Handling.BUSINESS),
        ("FMT007", Handling.BUSINESS),
        ("", Handling.BUSINESS),
        # VTEX's codes are upper case; a stray space or case does not change the meaning.
        (" eoi002 ", Handling.REPROCESS),
    ],
)
def test_every_channel_order_code_has_one_handling(code: str, handling: Handling | None) -> None:
    assert channel_order_handling(code) is handling


def test_every_documented_channel_order_code_is_in_the_table() -> None:
    documented = {f"SOI00{n}" for n in (1, 2, 3)} | {f"EOI{n:03d}" for n in range(12)}
    assert set(CHANNEL_ORDER_BY_CODE) == documented


STOCK = ("Fulfillment", "FMT005", "Item 6 is not available")
PRICE = ("Fulfillment", "FMT007", "Payment total (10990) differs from store desired value (9990)")
UNKNOWN_SKU = ("Checkout", "ORD027", "Item 999 not found")
FIELD = ("Order Integration", "EOI005", "shippingData.selectedAddresses[0].postalCode is invalid")


@pytest.mark.parametrize(
    ("code", "errors", "words"),
    [
        ("SOI001", [], ["nothing to do"]),
        ("SOI002", [], ["nothing to do"]),
        ("SOI003", [], ["Nothing to do"]),
        ("EOI000", [], ["EOI000", "contact VTEX support"]),
        ("EOI001", [("Checkout", "CHK0001", "Something odd")], ["EOI001", "CHK0001", "Something odd"]),
        ("EOI002", [STOCK], ["FMT005", "Item 6 is not available", "stock", "shipping policies", "sales channel 3"]),
        ("EOI003", [PRICE], ["FMT007", "109.90", "99.90", "PRICE_DIVERGENCE_ALLOWANCE_RATE", "Order Authorization"]),
        ("EOI004", [UNKNOWN_SKU], ["ORD027", "Item 999 not found", "catalog", "sales channel 3"]),
        ("EOI005", [FIELD], ["EOI005", "postalCode is invalid"]),
        ("EOI006", [], ["EOI006", "again later"]),
        ("EOI007", [("Order Integration", "EOI007", "Order 100 already exists")], ["already exists", "follows"]),
        ("EOI008", [], ["EOI008", "approves it again later"]),
        ("EOI009", [("Order Integration", "EOI009", "Order MKP-1-01 is canceled")], ["is canceled", "EOI009"]),
        ("EOI010", [], ["EOI010", "timed out"]),
        ("EOI011", [], ["EOI011", "manual authorization"]),
        ("EOI099", [("Checkout", "X1", "New thing")], ["EOI099", "X1", "New thing", "VTEX support"]),
    ],
)
def test_every_channel_order_code_tells_the_seller_what_to_do(
    code: str, errors: list[tuple[str, str, str]], words: list[str]
) -> None:
    action = channel_order_action(code, errors, sales_channel="3")
    for word in words:
        assert word in action, (word, action)


def test_channel_order_action_takes_models_a_message_and_the_operation_id() -> None:
    answer = ChannelOrderAnswer.model_validate(
        {
            "code": "EOI002",
            "flow": "PlaceOrder",
            "errors": [dict(zip(("source", "code", "description"), STOCK, strict=True))],
        }
    )
    assert "FMT005: Item 6 is not available" in channel_order_action("EOI002", answer.errors, sales_channel="1")
    assert channel_order_action("EOI002", answer.error_details(), sales_channel="1") == channel_order_action(
        "EOI002", answer.errors, sales_channel="1"
    )
    # A synchronous 400 (VtexError) carries only a message.
    from_message = channel_order_action("EOI005", [], sales_channel="1", message="clientProfileData.phone is required")
    assert "clientProfileData.phone is required" in from_message
    support = channel_order_action("EOI000", [], sales_channel="1", operation_id="a1a0e124")
    assert "operationId a1a0e124" in support
    # A divergence VTEX reports only in its message still shows both prices.
    assert "109.90" in channel_order_action("EOI003", [], sales_channel="1", message=PRICE[2])


def test_channel_order_answer_reads_the_guides_examples() -> None:
    enqueued = ChannelOrderAnswer.model_validate(
        {
            "marketplaceOrderId": None,
            "accountName": "connections",
            "code": "SOI003",
            "flow": "PlaceOrder",
            "success": True,
            "operationId": None,
            "errors": None,
            "fields": None,
            "message": "Order successfully enqueued",
        }
    )
    assert (enqueued.errors, enqueued.fields, enqueued.main_order_id) == ([], None, None)
    integrated = ChannelOrderAnswer.model_validate(
        {
            "marketplaceOrderId": "123456789",
            "accountName": "connections",
            "code": "SOI001",
            "flow": "PlaceOrder",
            "success": True,
            "operationId": "a1a0e124-6cfc-404e-a8c5-95f5a494dc86",
            "errors": None,
            "fields": {"mainOrderId": "MKP-123456789", "franchiseOrderId": None},
            "message": "Order integrated successfully",
            "somethingNew": 1,
        }
    )
    assert (integrated.main_order_id, integrated.operation_id) == (
        "MKP-123456789",
        "a1a0e124-6cfc-404e-a8c5-95f5a494dc86",
    )
    # Sparse: only code and flow are required; success follows the code; null error parts read as "".
    sparse = ChannelOrderAnswer.model_validate(
        {"code": "EOI002", "flow": "PlaceOrder", "errors": [{"source": None, "code": "FMT005"}]}
    )
    assert (sparse.success, sparse.error_details()) == (False, [("", "FMT005", "")])
    assert ChannelOrderAnswer.model_validate({"code": "SOI001", "flow": "PlaceOrder", "success": None}).success
    with pytest.raises(ValidationError):
        ChannelOrderAnswer.model_validate({"flow": "PlaceOrder", "success": True})
    with pytest.raises(ValidationError):
        ChannelOrderAnswer.model_validate({"code": "SOI001", "success": True})
