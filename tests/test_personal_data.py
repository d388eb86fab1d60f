"""What a service quotes of the customer's data is cut out of its error message (connector/personal_data.py)."""

from __future__ import annotations

import httpx

from connector.personal_data import personal_values, without
from connector.vtex.errors import error_from_response

PLACED = {
    "marketplaceOrderId": "1001",
    "items": [{"id": "1", "quantity": 1, "seller": "1"}],
    "clientProfileData": {"email": "ana@example.com", "document": "12345678909", "phone": 5511999990000},
    "shippingData": {"address": {"receiverName": "Ana Souza", "street": "Rua Augusta", "state": "SP"}},
}


def test_the_values_under_personal_subtrees_are_found_at_any_depth() -> None:
    assert personal_values(PLACED) == {
        "ana@example.com",
        "12345678909",
        "5511999990000",
        "Ana Souza",
        "Rua Augusta",
    }  # not the order id, the SKU, nor "SP" (too short to cut out of a sentence)
    assert personal_values(None) == frozenset()


def test_a_vtex_error_quoting_the_sent_data_reaches_nobody_with_it() -> None:
    answer = httpx.Response(
        400,
        json={"error": {"code": "ORD999", "message": "Invalid e-mail ana@example.com for Ana Souza, SKU 1"}},
        request=httpx.Request("POST", "https://vtex.example/api/fulfillment/pvt/orders"),
    )
    error = error_from_response("place order", answer, sent=PLACED)
    assert error.message == "Invalid e-mail [redacted] for [redacted], SKU 1"
    assert "ana@example.com" not in str(error) and error.code == "ORD999"


def test_a_value_inside_another_goes_with_the_longer_one() -> None:
    assert without("Ana Souza Lima, Ana Souza", ["Ana Souza", "Ana Souza Lima"]) == "[redacted], [redacted]"
