"""VTEX responses turned into one typed error, parsed once, so every caller handles the same thing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connector.personal_data import personal_values, without


class VtexError(Exception):
    """A VTEX call that did not succeed.

    `status` is None for failures with no response (timeout, connection refused). `code` is VTEX's
    error code (FMT007, ORD027, ...) when the body carries one. What it means for the order is decided
    by the error table (`classify`) and connector/failures.py, nowhere else.
    """

    def __init__(
        self,
        *,
        operation: str,
        status: int | None,
        code: str | None,
        message: str,
        retry_after: float | None = None,
    ) -> None:
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"VTEX {operation} failed ({where}{', ' + code if code else ''}): {message}")


def error_from_response(operation: str, response: httpx.Response, *, sent: Any = None) -> VtexError:
    """`sent`: the request's body; what the answer quotes of its personal data is cut out of the message."""
    code, message = _code_and_message(response)
    return VtexError(
        operation=operation,
        status=response.status_code,
        code=code,
        message=without(message, personal_values(sent)),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def error_from_transport(operation: str, exc: httpx.HTTPError) -> VtexError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return VtexError(operation=operation, status=None, code=None, message=f"{kind}: {type(exc).__name__}")


def _code_and_message(response: httpx.Response) -> tuple[str | None, str]:
    # VTEX answers {"error": {"code", "message"}} (Checkout, Fulfillment); the Channel Order API its
    # contract ({"code", "flow", "message", "errors": [...]}); some APIs use {"Message": ...} or plain
    # text. Never echo more than a short excerpt.
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return (str(code) if code else None), str(error.get("message") or response.reason_phrase)
        if isinstance(body.get("code"), str) and "flow" in body:
            return _channel_order_code_and_message(body, response.reason_phrase)
        for key in ("message", "Message"):
            if key in body:
                return None, str(body[key])[:300]
    return None, str(body)[:300]


def _channel_order_code_and_message(body: dict[str, object], fallback: str) -> tuple[str | None, str]:
    """The Channel Order API answers errors in its own contract (`Deliverybyfranchiseseller`: `code`,
    `flow`, `message`, `errors[]` of {source, code, description}): the code is the contract's (EOI005 for
    a field check), the message the errors' descriptions, each prefixed with its own code when that
    differs (the underlying FMT/ORD code), or the contract's `message` when there are none."""
    code = str(body["code"]) or None
    details = []
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict) or not error.get("description"):
            continue
        own = error.get("code")
        prefix = f"{own}: " if own and own != code else ""
        details.append(f"{prefix}{error['description']}")
    message = "; ".join(details) or str(body.get("message") or fallback)
    return code, message[:300]


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
