"""Request bodies read with a cap: a body over it is refused (413) as soon as the cap is passed, whether
its size was declared (Content-Length) or not (chunked), so no request makes the intake hold more."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class BodyTooLarge(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(f"body larger than {cap} bytes")
        self.cap = cap


async def capped_body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge(cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge(cap)  # the rest is never read: the server closes the connection
        chunks.append(chunk)
    return b"".join(chunks)


async def body_too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    # The unread rest of the body makes the connection unusable for another request.
    return JSONResponse({"error": str(exc)}, status_code=413, headers={"Connection": "close"})
