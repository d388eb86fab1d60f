"""OMS Cancel order (`POST /api/oms/pvt/orders/{orderId}/cancel`, Orders API `CancelOrder`).

OMS accepts the request (`cancellation-requested`) and asks the marketplace to agree by POSTing
`{"reason"}` to `{marketplaceServicesEndpoint}/pvt/orders/{orderId}/cancel`; only the marketplace's
2xx answer makes the order `canceled` (canceled-orders guide, steps 3c-3f).
"""

from __future__ import annotations

from typing import Any

from sandboxes.vtex_fulfillment import CANCELED
from sandboxes.vtex_invoices import INPUT, INVOICED, OUTPUT
from sandboxes.vtex_models import (
    JSON,
    SandboxCancellation,
    SandboxOrder,
    VtexApiError,
    bad_request,
    iso,
    new_receipt,
    now_utc,
    receipt_body,
)

CANCELLATION_REQUESTED = "cancellation-requested"


def parse_cancel(body: Any) -> tuple[str | None, bool]:
    """`reason` (the spec's only field) and `requestedByUser` (order-canceling-improvements guide)."""
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise bad_request("reason must be a string")
    by_user = body.get("requestedByUser")
    if by_user is not None and not isinstance(by_user, bool):
        raise bad_request("requestedByUser must be a boolean")
    return reason, bool(by_user)


def cancel_refusal(order: SandboxOrder) -> VtexApiError | None:
    """Why the order cannot be canceled, if it cannot: it is (partially) invoiced and not all returned."""
    sold = order.invoice_total(OUTPUT)
    if sold and order.invoice_total(INPUT) >= sold:
        # Return invoices undo the sale: the invoice guides' way to cancel an invoiced order.
        return None
    message = f"Order {order.order_id} cannot be cancelled in status {order.status}"
    if order.status == INVOICED:
        return VtexApiError(400, "CHK0202", message)
    if sold:
        return VtexApiError(400, "CHK0202", f"{message}: it is partially invoiced")
    return None


def allows_cancellation(order: SandboxOrder) -> bool:
    """Get order's `allowCancellation`."""
    return order.status not in (CANCELED, CANCELLATION_REQUESTED) and cancel_refusal(order) is None


def request_cancellation(order: SandboxOrder, reason: str | None, by_user: bool) -> SandboxCancellation | None:
    """Record the request; return the cancellation the marketplace must now be told about, if any.

    Asking again changes nothing and is answered with the first request's receipt, except that a
    notification that gave up is sent again (the caller's retry is what would unstick the order).
    """
    if order.status == CANCELED:
        return None
    refusal = cancel_refusal(order)
    if refusal is not None:
        raise refusal
    current = order.cancellation
    if order.status == CANCELLATION_REQUESTED and current is not None:
        if current.callback == "pending":
            return None
        current.callback = "pending"
        return current
    order.cancellation = SandboxCancellation(reason, by_user, iso(now_utc()), new_receipt())
    order.status = CANCELLATION_REQUESTED
    order.last_change = now_utc()
    return order.cancellation


def finish_cancellation(order: SandboxOrder, cancellation: SandboxCancellation, delivered: bool) -> None:
    """The marketplace notification's outcome: a 2xx answer completes the cancellation."""
    cancellation.callback = "delivered" if delivered else "failed"
    # The Admin may have moved the order meanwhile (sandbox admin API); then its status stays.
    if delivered and order.status == CANCELLATION_REQUESTED:
        order.status = CANCELED
        order.last_change = now_utc()


def cancel_answer(order: SandboxOrder) -> JSON:
    cancellation = order.cancellation
    if cancellation is None:  # canceled through the sandbox admin API, without a request
        return receipt_body(order.order_id, new_receipt(), iso(now_utc()))
    return receipt_body(order.order_id, cancellation.receipt, cancellation.date)


def cancellation_data(order: SandboxOrder) -> JSON | None:
    """Get order's `cancellationData` (Orders API schema; PascalCase, unlike the guide's example)."""
    cancellation = order.cancellation
    if cancellation is None:
        return None
    return {
        "RequestedByUser": cancellation.requested_by_user,
        "RequestedBySystem": False,
        "RequestedBySellerNotification": False,
        "RequestedByPaymentNotification": False,
        "Reason": cancellation.reason,
        "CancellationDate": cancellation.date,
    }
