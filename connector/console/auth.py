"""Who may use the console: one login (CONSOLE_USER / CONSOLE_PASSWORD), a signed session cookie, and a
CSRF token per session that every action's form must carry."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

CSRF_FIELD = "csrf_token"
_USER = "user"
_CSRF = "csrf"


def password_matches(given_user: str, given_password: str, *, user: str, password: str) -> bool:
    # Both compared, in constant time, whatever the first answer: the timing tells nothing.
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return user_ok and password_ok


def log_in(request: Request, user: str) -> None:
    request.session.clear()
    request.session[_USER] = user
    request.session[_CSRF] = secrets.token_urlsafe(32)


def log_out(request: Request) -> None:
    request.session.clear()


def signed_in(request: Request) -> bool:
    return _USER in request.session


def csrf_token(request: Request) -> str:
    return str(request.session.get(_CSRF, ""))


def csrf_ok(request: Request, given: str | None) -> bool:
    expected = csrf_token(request)
    return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


Handler = Callable[[Request], Awaitable[Response]]


def login_required(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return await handler(request)

    return guarded
