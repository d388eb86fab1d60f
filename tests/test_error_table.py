"""The one error table: each VTEX answer maps to exactly one handling, and the seller gets an action."""

from __future__ import annotations

import pytest

from connector.vtex.error_table import Handling, classify, divergent_prices, seller_action


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
