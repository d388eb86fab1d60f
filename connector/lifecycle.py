"""The order lifecycle: every status an order can be in and every move between them, in one table.

OrderLifecycle (workflows/order.py) moves an order only along these edges; the `status` query, the
`OrderStatus` search attribute and the timeline all show the status this table names. Read it top to
bottom as the order's life:

    received → (awaiting-payment →) validating (→ enqueued) → placed | pending-approval → dispatch-authorized
             → invoiced → completed (→ after-sale → canceled)
    any working status → reprocessing | parked | dead-lettered → back to where it was
    any status before completed → canceling → canceled (→ late-payment)

reprocessing: a transient failure, retried on a durable backoff. dead-lettered: still failing after
`max_attempts`, retried every `dead_letter_retry_seconds`, with an alert. parked: the seller or operator
must act (an ErrorCode says what), then `connector reprocess` or a new notification resumes it.
enqueued: only for connections on VTEX's Channel Order API (vtex_flow order-integration), sent and waiting
for VTEX's asynchronous result.
"""

from __future__ import annotations

from connector.models import OrderStatus

S = OrderStatus

# Visibility filter for order workflows: OrderLifecycle, and OrderWorkflow (the first definition, kept
# registered until the orders it started drain).
ORDER_WORKFLOW_TYPES = "WorkflowType IN ('OrderLifecycle', 'OrderWorkflow')"

# Statuses in which an order waits for a retry or for someone to act.
HELD = frozenset({S.REPROCESSING, S.PARKED, S.DEAD_LETTERED})

# Statuses in which steps run and can fail (and so can be held).
WORKING = frozenset(
    {
        S.RECEIVED,
        S.AWAITING_PAYMENT,
        S.VALIDATING,
        S.ENQUEUED,
        S.PLACED,
        S.PENDING_APPROVAL,
        S.DISPATCH_AUTHORIZED,
        S.INVOICED,
        S.COMPLETED,
        S.CANCELING,
        S.AFTER_SALE,
        S.CANCELED,
        S.LATE_PAYMENT,
    }
)

# Statuses in which the order's integration is over; the workflow waits out the after-sale window.
SETTLED = frozenset({S.COMPLETED, S.CANCELED, S.LATE_PAYMENT})

_FORWARD: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.AWAITING_PAYMENT, S.VALIDATING, S.CANCELING, S.CANCELED}),
    S.AWAITING_PAYMENT: frozenset({S.VALIDATING, S.DISPATCH_AUTHORIZED, S.CANCELING, S.CANCELED}),
    S.VALIDATING: frozenset({S.ENQUEUED, S.PLACED, S.PENDING_APPROVAL, S.AWAITING_PAYMENT, S.CANCELING, S.CANCELED}),
    S.ENQUEUED: frozenset({S.PLACED, S.PENDING_APPROVAL, S.CANCELING, S.CANCELED}),
    S.PLACED: frozenset({S.AWAITING_PAYMENT, S.DISPATCH_AUTHORIZED, S.CANCELING, S.CANCELED}),
    S.PENDING_APPROVAL: frozenset({S.PLACED, S.AWAITING_PAYMENT, S.DISPATCH_AUTHORIZED, S.CANCELING, S.CANCELED}),
    S.DISPATCH_AUTHORIZED: frozenset({S.INVOICED, S.COMPLETED, S.CANCELING, S.CANCELED}),
    S.INVOICED: frozenset({S.COMPLETED, S.CANCELING, S.CANCELED}),
    S.COMPLETED: frozenset({S.AFTER_SALE, S.CANCELED}),
    S.AFTER_SALE: frozenset({S.CANCELED}),
    S.CANCELING: frozenset({S.CANCELED}),
    S.CANCELED: frozenset({S.LATE_PAYMENT}),
    S.LATE_PAYMENT: frozenset(),
}

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    **{status: targets | (HELD if status in WORKING else frozenset()) for status, targets in _FORWARD.items()},
    # A held order goes back to any working status (the one it left, or further once retried) or to
    # another kind of hold (a retry that now needs the seller, a queue that reached the dead letter).
    **{held: WORKING | HELD for held in HELD},
}


def allowed(current: OrderStatus, target: OrderStatus) -> bool:
    return current == target or target in TRANSITIONS[current]
