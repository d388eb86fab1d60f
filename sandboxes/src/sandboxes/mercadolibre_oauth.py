"""Mercado Libre's OAuth 2.0 server for one application and one seller: `POST /oauth/token` and the check
of the bearer token on every resource call.

What it follows (https://developers.mercadolibre.com.co/en_us/authentication-and-authorization and its
Portuguese and Spanish copies; the response fields and the invalid_grant body as quoted from that page in
integrators' notes):
- The body is form-encoded (`curl -d 'grant_type=...'`, `content-type: application/x-www-form-urlencoded`);
  grant_type `authorization_code` (code, redirect_uri, optional PKCE code_verifier) or `refresh_token`.
- The answer: `{access_token, token_type: "bearer", expires_in: 21600, scope: "offline_access read write",
  user_id, refresh_token}`; the access token lives 6 hours.
- Every refresh returns a NEW refresh token and the one used stops working: reusing it, or an unknown or
  revoked one, is `400 {"error_description": "Error validating grant. Your authorization code or refresh
  token may be expired or it was already used", "error": "invalid_grant", "status": 400, "cause": []}`.
- A refresh token unused for 6 months expires; the user revoking the app (or changing the password, or
  the app renewing its secret) invalidates the grant: revoke() stands for all of these.
- Other documented codes: invalid_client, invalid_request, unsupported_grant_type (all 400 here: the page
  gives no status for them [INFERRED, as RFC 6749 section 5.2]).
- An authorization code is valid for 10 minutes and once (Mercado Pago's OAuth reference, the same
  server; Mercado Libre's page does not say) [INFERRED for Mercado Libre].
- Access tokens: `APP_USR-{client id}-{MMddHH}-{hash}-{user id}`; refresh tokens `TG-{hash}-{user id}`
  (the documented examples' forms).

Where the docs are silent: whether an access token issued before a refresh keeps working until it
expires (here it does), and what a reused code or token does to the rest of the grant (here nothing).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from sandboxes.mercadolibre_models import JSON, MlApiError, OAuthError

ACCESS_TOKEN_SECONDS = 21600
REFRESH_TOKEN_SECONDS = 180 * 24 * 3600  # unused for 6 months
AUTHORIZATION_CODE_SECONDS = 600
SCOPE = "offline_access read write"
INVALID_GRANT = "Error validating grant. Your authorization code or refresh token may be expired or it was already used"


@dataclass
class _Refresh:
    expires_at: float
    generation: int  # the grant generation it belongs to; revoke() starts a new one
    used: bool = False


@dataclass
class _Access:
    expires_at: float
    generation: int


@dataclass
class _Code:
    expires_at: float
    generation: int
    code_challenge: str | None
    used: bool = False


@dataclass(frozen=True)
class Authenticated:
    user_id: int


class OAuthServer:
    """Tokens of one application (client id/secret, redirect URI) for one seller (user id)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        user_id: int,
        clock: Callable[[], float],
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.user_id = user_id
        self._clock = clock
        self._generation = 0
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _Access] = {}
        # Counters tests read: successful exchanges per grant type, and refused requests.
        self.issued: dict[str, int] = {"authorization_code": 0, "refresh_token": 0}
        self.refused: list[JSON] = []

    # -- admin side -----------------------------------------------------------------------------------------

    def issue_code(self, code_challenge: str | None = None) -> str:
        """What the seller's browser brings back to the redirect URI after authorizing the app."""
        code = f"TG-{secrets.token_hex(12)}-{self.user_id}"
        self._codes[code] = _Code(self._clock() + AUTHORIZATION_CODE_SECONDS, self._generation, code_challenge)
        return code

    def revoke(self) -> None:
        """The seller removed the app (or changed the password): every token of the grant stops working,
        and only a new authorization code starts a new grant."""
        self._generation += 1

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is past its 6 hours."""
        now = self._clock()
        for token in self._access.values():
            token.expires_at = min(token.expires_at, now)

    def reset(self) -> None:
        self._codes.clear()
        self._refresh.clear()
        self._access.clear()
        self.issued = {"authorization_code": 0, "refresh_token": 0}
        self.refused.clear()

    def state(self) -> JSON:
        now = self._clock()
        return {
            "user_id": self.user_id,
            "generation": self._generation,
            "live_access_tokens": sum(
                1 for t in self._access.values() if t.expires_at > now and t.generation == self._generation
            ),
            "live_refresh_tokens": sum(
                1
                for t in self._refresh.values()
                if not t.used and t.expires_at > now and t.generation == self._generation
            ),
            "issued": dict(self.issued),
            "refused": len(self.refused),
        }

    # -- POST /oauth/token ----------------------------------------------------------------------------------

    def exchange(self, form: Mapping[str, str]) -> JSON:
        """One token request, checked and applied at once (no await inside), so of two concurrent refreshes
        with the same token exactly one wins. OAuthError carries the refusal."""
        try:
            return self._exchange(form)
        except OAuthError as exc:
            self.refused.append(exc.payload)
            raise

    def _exchange(self, form: Mapping[str, str]) -> JSON:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(
                400, "unsupported_grant_type", "Allowed values for grant_type are authorization_code or refresh_token"
            )
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if not client_id or not client_secret:
            raise OAuthError(400, "invalid_request", "client_id and client_secret are required")
        if not (
            secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(client_secret, self.client_secret)
        ):
            raise OAuthError(400, "invalid_client", "The provided client_id and/or client_secret are invalid")
        now = self._clock()
        if grant_type == "authorization_code":
            code, redirect_uri = form.get("code"), form.get("redirect_uri")
            if not code or not redirect_uri:
                raise OAuthError(400, "invalid_request", "code and redirect_uri are required")
            found = self._codes.get(code)
            if (
                found is None
                or found.used
                or found.expires_at <= now
                or found.generation != self._generation
                or redirect_uri != self.redirect_uri
            ):
                raise OAuthError(400, "invalid_grant", INVALID_GRANT)
            if found.code_challenge is not None and not _pkce_matches(form.get("code_verifier"), found.code_challenge):
                raise OAuthError(400, "invalid_grant", INVALID_GRANT)
            found.used = True
            self.issued["authorization_code"] += 1
            return self._tokens(now)
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        known = self._refresh.get(refresh_token)
        if known is None or known.used or known.expires_at <= now or known.generation != self._generation:
            raise OAuthError(400, "invalid_grant", INVALID_GRANT)
        known.used = True
        self.issued["refresh_token"] += 1
        return self._tokens(now)

    def _tokens(self, now: float) -> JSON:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%m%d%H")
        access = f"APP_USR-{self.client_id}-{stamp}-{secrets.token_hex(16)}-{self.user_id}"
        refresh = f"TG-{secrets.token_hex(12)}-{self.user_id}"
        self._access[access] = _Access(now + ACCESS_TOKEN_SECONDS, self._generation)
        self._refresh[refresh] = _Refresh(now + REFRESH_TOKEN_SECONDS, self._generation)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": SCOPE,
            "user_id": self.user_id,
            "refresh_token": refresh,
        }

    # -- resource calls -------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Authenticated:
        """The caller of a resource call, from its `Authorization: Bearer` header; MlApiError(401) when the
        header is missing, malformed, or names an unknown, expired or revoked token."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MlApiError(401, "unauthorized", "invalid access token")
        found = self._access.get(token.strip())
        if found is None or found.generation != self._generation:
            raise MlApiError(401, "unauthorized", "invalid access token")
        if found.expires_at <= self._clock():
            raise MlApiError(401, "unauthorized", "expired access token")
        return Authenticated(self.user_id)


def _pkce_matches(verifier: str | None, challenge: str) -> bool:
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    derived = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(derived, challenge) or secrets.compare_digest(verifier, challenge)


def parse_form(raw: bytes, content_type: str) -> dict[str, Any]:
    """The token request's form fields; OAuthError(invalid_request) when the body is not form-encoded."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise OAuthError(400, "invalid_request", "The body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(400, "invalid_request", "The body is not a valid form") from None
    form: dict[str, Any] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError(400, "invalid_request", f"Parameter {name} is repeated")
        form[name] = value
    return form
