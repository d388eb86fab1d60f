"""The codec server: lets the Temporal Web UI (and `temporal --codec-endpoint`) show decrypted payloads to
operators who can reach it. It speaks Temporal's remote codec protocol: `POST /encode` and `POST /decode`
with `{"payloads": [...]}` in protobuf JSON, and allows the UI's origin by CORS.

It decrypts order data for whoever calls it, so it wants `Authorization: Bearer <CODEC_AUTH_TOKEN>` on
every call (`connector codec-server` refuses to start without a token when payload keys are configured);
only embedded mode's loopback server may run open. CORS preflights need no token (browsers send none).
"""

from __future__ import annotations

import hmac

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from connector.codec import CodecError, EncryptionCodec


def create_codec_app(codec: EncryptionCodec, *, cors_origins: list[str], auth_token: str | None) -> Starlette:
    """`auth_token` None leaves the server open: only for embedded mode on loopback (the caller checks)."""
    if auth_token is not None and not auth_token:
        raise ValueError("the codec server's token is empty")
    expected = f"Bearer {auth_token}".encode()

    def authorized(request: Request) -> bool:
        if auth_token is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)  # constant time: the token is not guessed bytewise

    async def convert(request: Request, *, decode: bool) -> Response:
        if not authorized(request):
            return JSONResponse(
                {"error": "unauthorized: send Authorization: Bearer <CODEC_AUTH_TOKEN>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            return JSONResponse({"error": f"not a Payloads JSON: {exc}"}, status_code=400)
        try:
            converted = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except CodecError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        body = json_format.MessageToJson(Payloads(payloads=converted))
        return Response(body, media_type="application/json")

    async def encode(request: Request) -> Response:
        return await convert(request, decode=False)

    async def decode(request: Request) -> Response:
        return await convert(request, decode=True)

    return Starlette(
        routes=[Route("/encode", encode, methods=["POST"]), Route("/decode", decode, methods=["POST"])],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["POST"],
                allow_headers=["content-type", "x-namespace", "authorization"],
                allow_credentials=True,
            )
        ],
    )
