"""Mercado Libre's HTTP API as the adapter calls it: a bearer token on every call, one retry with a fresh
token after a 401, and every failure a MarketplaceError that says whether trying again can help.

What Mercado Libre documents and this follows:
- Every resource call carries `Authorization: Bearer $ACCESS_TOKEN`
  (https://developers.mercadolibre.com.co/en_us/authentication-and-authorization). An access token can stop
  working before its 6 hours (the seller changed the password, revoked the app, the app renewed its
  secret: same page), so a 401 tells the token source (`rejected`) and the call is made once more with the
  token it gives next; a second 401 is transient for the order (the token source finds out, at its next
  refresh, whether the grant is gone: AuthorizationBroken, which is transient too).
- Errors are `{"message", "error", "status", "cause"}` (https://developers.mercadolivre.com.br/pt_ar/erros);
  the message of every MarketplaceError carries Mercado Libre's `message`, `error` and causes.
- 429 is Mercado Libre's rate limit (`too_many_requests`); its guide recommends exponential backoff with
  jitter and documents no Retry-After (https://developers.mercadolivre.com.br/pt_br/rate-limit-erro-429).
  It is transient; a Retry-After sent anyway is kept on the error (MercadoLibreRateLimited.retry_after) so
  the caller does not come back sooner. Nothing waits here: the hand-off queue and the activities back off.
- 5xx, timeouts and transport failures are transient; 400, 403, 404 and the rest are not.
- A call given `max_bytes` reads its answer as a stream and never holds more than that: a successful body
  over it is ResponseTooLarge (not transient: the same document stays as large), an error body is cut at
  64 KiB (Mercado Libre's errors are a few hundred bytes).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import httpx

from connector.http_pool import pooled_client
from connector.marketplaces.base import MarketplaceError, TokenSource

DEFAULT_BASE_URL = "https://api.mercadolibre.com"
# A multipart part: (field name, (file name, content, content type)).
FilePart = tuple[str, tuple[str, bytes, str]]


# What is kept of an error's body read under `max_bytes`: enough for Mercado Libre's `{message, error, cause}`.
ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Body:
    """What a call sends: JSON, multipart files, or raw bytes (at most one of them)."""

    json: Any
    files: Sequence[FilePart] | None
    content: bytes | None


class ResponseTooLarge(MarketplaceError):
    """A successful answer over the `max_bytes` its caller gave."""

    def __init__(self, message: str, *, max_bytes: int) -> None:
        super().__init__(message, status=None, transient=False)
        self.max_bytes = max_bytes


class MercadoLibreRateLimited(MarketplaceError):
    """Mercado Libre's 429; `retry_after` (seconds) when it said how long to wait."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message, status=429, transient=True)
        self.retry_after = retry_after


class MercadoLibreClient:
    def __init__(
        self,
        *,
        tokens: TokenSource,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._tokens = tokens
        self._http = pooled_client(base_url=base_url, timeout=timeout_seconds, transport=transport)
        # Renewals under way, by the token refused: concurrent calls that met the same 401 share one report and
        # one new token (a second report could land while the first one's refresh is being stored).
        self._renewals: dict[str, asyncio.Future[str]] = {}

    @property
    def base_url(self) -> httpx.URL:
        """Where Mercado Libre's API is (the only host the connection's token is ever sent to)."""
        return self._http.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_json(
        self,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        not_found: str | None = None,
        missing_is_transient: bool = False,
    ) -> Any:
        """The JSON answer, every decimal number a Decimal (never a float: `49.9` stays exactly 49.9)."""
        response = await self.send(
            "GET",
            path,
            what=what,
            params=params,
            headers=headers,
            not_found=not_found,
            missing_is_transient=missing_is_transient,
        )
        return read_json(response, what)

    async def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        files: Sequence[FilePart] | None = None,
        content: bytes | None = None,
        accept: frozenset[int] = frozenset(),
        not_found: str | None = None,
        missing_is_transient: bool = False,
        max_bytes: int | None = None,
    ) -> httpx.Response:
        """One call with the connection's token (and once more with a fresh one after a 401). A status in
        `accept` is returned like a success; any other failure raises a MarketplaceError. With `max_bytes`
        the answer is streamed and a successful body over it raises ResponseTooLarge. `content` is a raw body
        (its Content-Type in `headers`)."""
        body = _Body(json_body, files, content)
        token = await self._tokens.access_token()
        response = await self._once(method, path, token, what, params, headers, body, max_bytes)
        if response.status_code == 401:
            token = await self._renewed(token)
            response = await self._once(method, path, token, what, params, headers, body, max_bytes)
            if response.status_code == 401:
                await self._tokens.rejected(token)
                raise MarketplaceError(
                    f"Mercado Libre refused a fresh access token for {what} (HTTP 401): {reason(response)}",
                    status=401,
                    transient=True,
                )
        status = response.status_code
        if response.is_success or status in accept:
            return response
        if status == 404 and not_found is not None:
            raise MarketplaceError(
                f"{not_found} (Mercado Libre: {reason(response)})", status=404, transient=missing_is_transient
            )
        message = f"Mercado Libre answered HTTP {status} to {what}: {reason(response)}"
        if status == 429:
            wait = retry_after(response)
            if wait is not None:
                message += f" (Retry-After {wait:g} s)"
            raise MercadoLibreRateLimited(message, retry_after=wait)
        raise MarketplaceError(message, status=status, transient=status >= 500)

    async def _renewed(self, refused: str) -> str:
        """A token to use instead of `refused` (Mercado Libre answered it 401): reported once, whatever the
        number of calls that met the refusal at the same time."""
        renewal = self._renewals.get(refused)
        if renewal is None:

            async def renew() -> str:
                await self._tokens.rejected(refused)
                return await self._tokens.access_token()

            def done(future: asyncio.Future[str]) -> None:
                self._renewals.pop(refused, None)
                if not future.cancelled():
                    future.exception()  # retrieved: every waiter may have gone

            renewal = asyncio.ensure_future(renew())
            self._renewals[refused] = renewal
            renewal.add_done_callback(done)
        # Shielded: a caller given up on does not cancel the renewal the others wait for.
        return await asyncio.shield(renewal)

    async def _once(
        self,
        method: str,
        path: str,
        token: str,
        what: str,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str] | None,
        body: _Body,
        max_bytes: int | None = None,
    ) -> httpx.Response:
        all_headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        request = self._http.build_request(
            method,
            path,
            params=params,
            headers=all_headers,
            json=body.json,
            files=list(body.files) if body.files is not None else None,
            content=body.content,
        )
        try:
            if max_bytes is None:
                return await self._http.send(request)
            return await self._capped(request, what, max_bytes)
        except httpx.TimeoutException:
            raise MarketplaceError(
                f"Mercado Libre did not answer {what} in time", status=None, transient=True
            ) from None
        except httpx.HTTPError as exc:
            raise MarketplaceError(
                f"Mercado Libre unreachable for {what}: {type(exc).__name__}", status=None, transient=True
            ) from None

    async def _capped(self, request: httpx.Request, what: str, max_bytes: int) -> httpx.Response:
        """The answer with its body read as a stream, never more than `max_bytes` of it held (a success over
        that: ResponseTooLarge), or ERROR_BODY_BYTES of an error's."""
        response = await self._http.send(request, stream=True)
        try:
            limit = max_bytes if response.is_success else ERROR_BODY_BYTES
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    break
        finally:
            await response.aclose()
        if response.is_success and len(body) > max_bytes:
            raise ResponseTooLarge(f"Mercado Libre's answer to {what} is over {max_bytes} bytes", max_bytes=max_bytes)
        # Only what the callers read: the body is decoded already (no content-encoding to apply again).
        kept = {name: value for name, value in response.headers.items() if name in ("content-type", "retry-after")}
        return httpx.Response(response.status_code, headers=kept, content=bytes(body[:limit]), request=request)


def _no_constant(name: str) -> NoReturn:
    # json.loads takes NaN and Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not JSON")


def parse_json(content: bytes) -> Any:
    """JSON with every number that has a fraction read as a Decimal. ValueError if it is not JSON."""
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(response: httpx.Response, what: str) -> Any:
    try:
        return parse_json(response.content)
    except ValueError:
        raise MarketplaceError(
            f"Mercado Libre's answer to {what} is not JSON", status=response.status_code, transient=False
        ) from None


def reason(response: httpx.Response) -> str:
    """Mercado Libre's own words for a refusal: `message` (`error_description` on OAuth), `error` and the
    causes; else the start of the body."""
    try:
        data = parse_json(response.content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("error_description")
        error = data.get("error")
        parts = [str(message)] if isinstance(message, str) and message else []
        if isinstance(error, str) and error and error != message:
            parts.append(f"[{error}]")
        causes = [_cause(cause) for cause in data.get("cause") or [] if _cause(cause)]
        if causes:
            parts.append("causes: " + "; ".join(causes[:3]))
        if parts:
            return " ".join(parts)
    return response.text.strip()[:200] or response.reason_phrase


def _cause(cause: object) -> str:
    if isinstance(cause, str):
        return cause
    if isinstance(cause, dict):
        text = " ".join(str(cause[key]) for key in ("code", "message") if cause.get(key))
        return text
    return ""


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)
