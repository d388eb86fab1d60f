"""Mercado Libre's OAuth tokens for one connection, kept in the order store and refreshed for every worker at
once (issue 17, "token custody").

Mercado Libre's access tokens last six hours, and every refresh returns a NEW refresh token while the one used
stops working (https://developers.mercadolibre.com.co/en_us/authentication-and-authorization). Two workers
refreshing with the same token: one wins, the other gets `invalid_grant`; a rotated token that is not stored
is the grant lost. So:

- The tokens live in the store (`marketplace_tokens`, one row per connection), sealed under the payload keys
  (connector/codec.py SecretSealer; the key id is stored beside them, so a rotated key still opens them).
- `access_token()` answers the stored token while it has more than REFRESH_MARGIN left. Otherwise it takes
  the row's refresh lease (a short TTL that outlives one token request), takes the row as it is now (another
  worker may have refreshed meanwhile: that token is used), refreshes, and stores the new pair with a
  compare-and-set on the version it read BEFORE giving the lease back. A worker that does not get the lease
  polls the row (small sleeps, bounded) until the holder's new token is there. One instance also serialises
  its own callers (a lock), so one worker sends one refresh.
- `invalid_grant` on a refresh (revoked, expired, already used) marks the connection broken in the store,
  sets the metric, writes an X22 alert line, and raises AuthorizationBroken; while broken, `access_token()`
  raises at once without calling Mercado Libre. `connect` (an authorization code) or
  `connect_with_refresh_token` stores a new pair and clears it.
- Nothing here logs or raises a token, code or secret: messages name the connection, never a credential.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError

from connector.codec import CodecError, SecretSealer
from connector.logbook import Logbook
from connector.marketplaces.base import AuthorizationBroken, MarketplaceError
from connector.metrics import MARKETPLACE_AUTHORIZATION_BROKEN
from connector.store.base import OrderStore
from connector.store.models import LogStatus, StoredToken, TokenWrite

log = logging.getLogger(__name__)

DEFAULT_AUTH_URL = "https://api.mercadolibre.com"
TOKEN_PATH = "/oauth/token"
# A token with less than this left is refreshed first (a call made with it must not expire on the way).
REFRESH_MARGIN = timedelta(minutes=5)
HTTP_TIMEOUT_SECONDS = 20.0
# The lease outlives one token request (its timeout) by this much, room to store the answer: a worker's refresh
# never runs past its lease, so no other worker refreshes with the same refresh token meanwhile.
LEASE_MARGIN_SECONDS = 10.0
POLL_SECONDS = 0.05
# A worker without the lease waits for the holder's new token at most the lease and this much more (a holder
# that died: its lease runs out and the next worker takes it).
WAIT_MARGIN_SECONDS = 5.0
# Compare-and-set rounds of one write before giving up (each lost round means another writer went first).
WRITE_ROUNDS = 5

AUTHORIZATION_CODE = "X22"
OPERATION = "Marketplace authorization"
DIRECTION = "Marketplace to connector"
BROKEN_MESSAGE = (
    "Mercado Libre refused the connection's authorization (invalid_grant): reconnect the account with "
    "`connector mercadolibre connect ...`"
)
BROKEN_REASON = (
    "Mercado Libre answered invalid_grant to the refresh token: the seller revoked the app's access, or the "
    "token expired or was already used"
)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def broken_business_message(connection: str) -> str:
    """The X22 line's business message."""
    return (
        f"Mercado Libre refused the authorization of the connection {connection} (invalid_grant: the seller "
        "revoked the app's access, or the refresh token expired or was already used). Its orders wait and "
        "nothing is lost; they resume once the account is connected again: authorize the app in Mercado Libre "
        f"and run `connector mercadolibre connect --connection {connection} --code CODE --redirect-uri URL`."
    )


def not_connected_message(connection: str) -> str:
    return (
        f"the Mercado Libre connection {connection} is not connected: connect the account with "
        f"`connector mercadolibre connect --connection {connection} ...` (or set its mercadolibre_refresh_token)"
    )


class _TokenAnswer(BaseModel):
    """The fields of `POST /oauth/token`'s answer the connector uses."""

    access_token: str
    refresh_token: str
    expires_in: float
    user_id: int | None = None


class _InvalidGrant(Exception):
    """Mercado Libre refused the code or refresh token for good (400 invalid_grant)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class AuthorizationStatus:
    """What `connector mercadolibre status` shows: connected, broken (why, since when), or not connected."""

    connection: str
    state: Literal["connected", "broken", "not connected"]
    reason: str | None = None
    broken_at: datetime | None = None
    access_expires_at: datetime | None = None
    updated_at: datetime | None = None


def _observe(connection: str, row: StoredToken | None) -> None:
    """The metric follows every read or change of the state: 1 broken or never connected, 0 fine."""
    broken = row is None or row.broken_reason is not None
    MARKETPLACE_AUTHORIZATION_BROKEN.labels(connection=connection).set(1 if broken else 0)


async def authorization_status(store: OrderStore, connection: str) -> AuthorizationStatus:
    """The connection's authorization as stored (no key needed: nothing is opened)."""
    row = await store.marketplace_token(connection)
    _observe(connection, row)
    if row is None:
        return AuthorizationStatus(connection, "not connected")
    return AuthorizationStatus(
        connection,
        "broken" if row.broken_reason is not None else "connected",
        reason=row.broken_reason,
        broken_at=row.broken_at,
        access_expires_at=row.access_expires_at,
        updated_at=row.updated_at,
    )


class MercadoLibreTokens:
    """The TokenSource (connector/marketplaces/base.py) of one Mercado Libre connection.

    Every worker makes its own over the shared store; `owner` (host, process, instance) names this one's
    refresh lease. `http` is the caller's client (closed by the caller), or one of its own (`aclose`)."""

    def __init__(
        self,
        store: OrderStore,
        *,
        connection: str,
        client_id: str,
        client_secret: str,
        sealer: SecretSealer,
        logbook: Logbook,
        auth_base_url: str = DEFAULT_AUTH_URL,
        http: httpx.AsyncClient | None = None,
        timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
        poll_seconds: float = POLL_SECONDS,
        refresh_margin: timedelta = REFRESH_MARGIN,
        clock: Clock = _now,
    ) -> None:
        self._store = store
        self.connection = connection
        self._client_id = client_id
        self._client_secret = client_secret
        self._sealer = sealer
        self._logbook = logbook
        self._token_url = auth_base_url.rstrip("/") + TOKEN_PATH
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._timeout = timeout_seconds
        self._lease_seconds = lease_seconds if lease_seconds is not None else timeout_seconds + LEASE_MARGIN_SECONDS
        self._wait_seconds = wait_seconds if wait_seconds is not None else self._lease_seconds + WAIT_MARGIN_SECONDS
        self._poll_seconds = poll_seconds
        self._margin = refresh_margin
        self._clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._refreshing = asyncio.Lock()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # -- TokenSource ----------------------------------------------------------------------------------------------

    async def access_token(self) -> str:
        token = self._usable(await self._read())
        if token is not None:
            return token
        async with self._refreshing:
            return await self._refresh()

    async def rejected(self, token: str) -> None:
        row = await self._read()
        if row is None or row.sealed_access_token is None or row.broken_reason is not None:
            return
        if not secrets.compare_digest(self._open(row, "access_token", row.sealed_access_token), token):
            return  # another token is stored already (refreshed meanwhile): nothing to do
        # Only over the version read: a token stored meanwhile is never marked expired.
        expired = await self._store.replace_marketplace_token(
            self.connection, row.version, row.write(access_expires_at=self._clock())
        )
        if expired is not None:
            log.info("Mercado Libre rejected the access token of connection %s: it is refreshed next", self.connection)

    # -- connecting ---------------------------------------------------------------------------------------------

    async def connect(self, *, code: str, redirect_uri: str) -> AuthorizationStatus:
        """Exchange an authorization code (what the seller's browser brought back to `redirect_uri` after
        authorizing the app) for the first pair, store it and clear `broken`. MarketplaceError when Mercado
        Libre refuses the code (used, older than 10 minutes, another redirect URI) or cannot be reached."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        try:
            answer = await self._post_token(form, secrets_sent=(code,))
        except _InvalidGrant:
            raise MarketplaceError(
                "Mercado Libre refused the authorization code (invalid_grant): a code works once, for 10 minutes, "
                "with the redirect URI the app was authorized with; authorize the app again for a new code",
                status=400,
                transient=False,
            ) from None
        return await self._store_connected(answer)

    async def connect_with_refresh_token(self, refresh_token: str) -> AuthorizationStatus:
        """Connect with a refresh token obtained elsewhere: it is used at once (so it is checked, and rotated:
        from then on only the connector holds the live one), the pair stored and `broken` cleared."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        try:
            answer = await self._post_token(form, secrets_sent=(refresh_token,))
        except _InvalidGrant:
            raise MarketplaceError(
                "Mercado Libre refused the refresh token (invalid_grant): it was revoked, expired or already used "
                "(each works once); connect with a new authorization code (--code, --redirect-uri)",
                status=400,
                transient=False,
            ) from None
        return await self._store_connected(answer)

    async def seed(self, refresh_token: str) -> bool:
        """The configured first refresh token (`mercadolibre_refresh_token`), stored when the store has no
        tokens for the connection yet (a worker's first start; nothing is sent to Mercado Libre: the first
        `access_token()` refreshes). Whether it was stored."""
        created = await self._store.create_marketplace_token(
            self.connection,
            TokenWrite(
                key_id=self._sealer.key_id,
                sealed_refresh_token=self._seal(refresh_token, "refresh_token"),
            ),
        )
        if created is not None:
            log.info("stored the configured Mercado Libre refresh token of connection %s", self.connection)
            _observe(self.connection, created)
        return created is not None

    async def status(self) -> AuthorizationStatus:
        return await authorization_status(self._store, self.connection)

    # -- refreshing ---------------------------------------------------------------------------------------------

    async def _refresh(self) -> str:
        deadline = asyncio.get_running_loop().time() + self._wait_seconds
        while True:
            leased = await self._store.lease_marketplace_token(self.connection, self.owner, self._lease_seconds)
            if leased is not None:
                try:
                    _observe(self.connection, leased)
                    # The row as it is now: another worker may have refreshed (or broken) it meanwhile.
                    token = self._usable(leased)
                    if token is not None:
                        return token
                    return await self._refresh_under_lease(leased)
                finally:
                    await self._release()
            # Another worker holds the lease: wait for its new token (or for its lease to run out).
            await asyncio.sleep(self._poll_seconds)
            token = self._usable(await self._read())
            if token is not None:
                return token
            if asyncio.get_running_loop().time() >= deadline:
                raise MarketplaceError(
                    f"another worker's refresh of the Mercado Libre token of connection {self.connection} did not "
                    f"finish within {self._wait_seconds:g} s",
                    status=None,
                    transient=True,
                )

    def _holds(self, row: StoredToken, refresh_token: str) -> bool:
        stored = self._open(row, "refresh_token", row.sealed_refresh_token)
        return secrets.compare_digest(stored, refresh_token)

    async def _refresh_under_lease(self, row: StoredToken) -> str:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._open(row, "refresh_token", row.sealed_refresh_token),
        }
        try:
            answer = await self._post_token(form, secrets_sent=(form["refresh_token"],))
        except _InvalidGrant as refusal:
            return await self._broken(row, refusal.description)
        write = self._write(answer)
        stored = await self._store.replace_marketplace_token(self.connection, row.version, write)
        if stored is None:
            # The row changed while the lease was held (a reconnect, or a lease that ran out).
            current = await self._read()
            spent = form["refresh_token"]
            if current is not None and (current.broken_reason is not None or self._holds(current, spent)):
                # A worker whose refresh came after ours used the same token and was refused, or only marked the
                # access token expired (`rejected`): the refresh token stored is the one we just spent, and the
                # pair we hold is the grant's live one. Stored over that row, it is not lost.
                stored = await self._store.replace_marketplace_token(self.connection, current.version, write)
            if stored is None:
                log.warning(
                    "newer Mercado Libre tokens of connection %s were stored while it refreshed: those stand",
                    self.connection,
                )
                token = self._usable(current) if current is not None else None
                return token if token is not None else answer.access_token
        _observe(self.connection, stored)
        log.info(
            "refreshed the Mercado Libre access token of connection %s (valid until %s)",
            self.connection,
            stored.access_expires_at.isoformat() if stored.access_expires_at else "-",
        )
        return answer.access_token

    async def _broken(self, row: StoredToken, description: str) -> str:
        """invalid_grant on a refresh of `row`: the connection is broken, unless the row changed meanwhile (then
        the refusal was about a token no longer stored)."""
        reason = f"{BROKEN_REASON} (Mercado Libre: {description})" if description else BROKEN_REASON
        stored = await self._store.replace_marketplace_token(
            self.connection, row.version, row.write(broken_reason=reason, broken_at=self._clock())
        )
        if stored is None:
            current = await self._read()
            token = self._usable(current)  # raises while broken or not connected
            if token is not None:
                return token
            raise MarketplaceError(
                f"the Mercado Libre tokens of connection {self.connection} changed during a refresh: try again",
                status=None,
                transient=True,
            )
        _observe(self.connection, stored)
        log.error(
            "Mercado Libre refused the authorization of connection %s (invalid_grant): its orders wait until the "
            "account is connected again (`connector mercadolibre connect --connection %s ...`)",
            self.connection,
            self.connection,
        )
        try:
            await self._logbook.record(
                code=AUTHORIZATION_CODE,
                operation=OPERATION,
                direction=DIRECTION,
                status=LogStatus.ALERT,
                business_message=broken_business_message(self.connection),
                connection=self.connection,
                marketplace_order_id="-",
                source={"error": "invalid_grant", "connection": self.connection},
            )
        except Exception as exc:  # the state is stored; the line is its echo
            log.warning("could not write the X22 line of connection %s: %s", self.connection, type(exc).__name__)
        raise AuthorizationBroken(BROKEN_MESSAGE)

    async def _release(self) -> None:
        try:
            await self._store.release_marketplace_token(self.connection, self.owner)
        except Exception as exc:  # the lease runs out by itself
            log.warning(
                "could not release the token lease of connection %s (%s): it runs out within %g s",
                self.connection,
                type(exc).__name__,
                self._lease_seconds,
            )

    # -- the token endpoint -----------------------------------------------------------------------------------

    async def _post_token(self, grant: Mapping[str, str], *, secrets_sent: tuple[str, ...]) -> _TokenAnswer:
        """`POST /oauth/token`, form-encoded. _InvalidGrant on invalid_grant; MarketplaceError otherwise
        (transient for 429, 5xx, timeouts and unreachable)."""
        form = {**grant, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            response = await self._http.post(
                self._token_url, data=form, headers={"Accept": "application/json"}, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise MarketplaceError(
                f"Mercado Libre's token endpoint did not answer within {self._timeout:g} s", status=None, transient=True
            ) from None
        except httpx.HTTPError as exc:
            raise MarketplaceError(
                f"cannot reach Mercado Libre's token endpoint: {type(exc).__name__}", status=None, transient=True
            ) from None
        status = response.status_code
        if status == 200:
            try:
                return _TokenAnswer.model_validate_json(response.content)
            except ValidationError:
                raise MarketplaceError(
                    "Mercado Libre's token endpoint answered 200 without a usable token pair",
                    status=status,
                    transient=True,
                ) from None
        error, description = _error_of(response, (*secrets_sent, self._client_secret))
        if status in (400, 401) and error == "invalid_grant":
            raise _InvalidGrant(description)
        if status == 429 or status >= 500:
            raise MarketplaceError(
                f"Mercado Libre's token endpoint is unavailable (HTTP {status}{f', {error}' if error else ''}): "
                "tried again later",
                status=status,
                transient=True,
            )
        if error == "invalid_client":
            raise MarketplaceError(
                f"Mercado Libre refused the application's credentials (HTTP {status}, invalid_client): check the "
                f"connection {self.connection}'s mercadolibre_app_id and mercadolibre_client_secret",
                status=status,
                transient=False,
            )
        raise MarketplaceError(
            f"Mercado Libre's token endpoint refused the request (HTTP {status}{f', {error}' if error else ''})",
            status=status,
            transient=False,
        )

    # -- the row ------------------------------------------------------------------------------------------------

    async def _read(self) -> StoredToken | None:
        row = await self._store.marketplace_token(self.connection)
        _observe(self.connection, row)
        return row

    def _usable(self, row: StoredToken | None) -> str | None:
        """The stored access token while it has more than the margin left; None when it must be refreshed;
        AuthorizationBroken while broken or never connected."""
        if row is None:
            raise AuthorizationBroken(not_connected_message(self.connection))
        if row.broken_reason is not None:
            raise AuthorizationBroken(BROKEN_MESSAGE)
        if row.sealed_access_token is None or row.access_expires_at is None:
            return None
        if row.access_expires_at - self._clock() <= self._margin:
            return None
        return self._open(row, "access_token", row.sealed_access_token)

    async def _store_connected(self, answer: _TokenAnswer) -> AuthorizationStatus:
        write = self._write(answer)
        for _ in range(WRITE_ROUNDS):
            row = await self._store.marketplace_token(self.connection)
            stored = (
                await self._store.create_marketplace_token(self.connection, write)
                if row is None
                else await self._store.replace_marketplace_token(self.connection, row.version, write)
            )
            if stored is not None:
                _observe(self.connection, stored)
                log.info("connected the Mercado Libre account of connection %s", self.connection)
                return await self.status()
        raise MarketplaceError(
            f"the Mercado Libre tokens of connection {self.connection} kept changing while they were stored: "
            "connect again",
            status=None,
            transient=True,
        )

    def _write(self, answer: _TokenAnswer) -> TokenWrite:
        """A new pair as a write: sealed under the current key, `broken` cleared."""
        return TokenWrite(
            key_id=self._sealer.key_id,
            sealed_refresh_token=self._seal(answer.refresh_token, "refresh_token"),
            sealed_access_token=self._seal(answer.access_token, "access_token"),
            access_expires_at=self._clock() + timedelta(seconds=answer.expires_in),
        )

    def _context(self, field: str) -> str:
        return f"marketplace_tokens/{self.connection}/{field}"

    def _seal(self, token: str, field: str) -> str:
        return self._sealer.seal(token, context=self._context(field))

    def _open(self, row: StoredToken, field: str, sealed: str) -> str:
        """A stored token in the clear; MarketplaceError (transient: the orders wait for the key to be
        configured) naming the key when it is not configured here or does not open it."""
        try:
            return self._sealer.open(sealed, key_id=row.key_id, context=self._context(field))
        except CodecError as exc:
            raise MarketplaceError(
                f"the Mercado Libre tokens of connection {self.connection} cannot be read: {exc}",
                status=None,
                transient=True,
            ) from None


def _error_of(response: httpx.Response, secrets_sent: tuple[str, ...]) -> tuple[str, str]:
    """Mercado Libre's `error` code and `error_description` (OAuth: `{"error", "error_description", "status",
    "cause"}`; its API errors: `{"error", "message", ...}`), short, and never echoing what was sent."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    error = body.get("error")
    description = body.get("error_description") or body.get("message")
    code = error if isinstance(error, str) and error.replace("_", "").isalnum() and len(error) <= 60 else ""
    text = description[:200] if isinstance(description, str) else ""
    if any(secret and secret in text for secret in secrets_sent):
        text = ""
    return code, text
