"""The codec server: lets the Temporal Web UI (and `temporal --codec-endpoint`) show decrypted payloads to
operators who can reach it. It speaks Temporal's remote codec protocol: `POST /encode` and `POST /decode`
with `{"payloads": [...]}` in protobuf JSON, and allows the UI's origin by CORS.
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


def create_codec_app(codec: EncryptionCodec, *, cors_origins: list[str], auth_token: str | None = None) -> Starlette:
    def authorized(request: Request) -> bool:
        if auth_token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {auth_token}".encode())

    async def convert(request: Request, *, decode: bool) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
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
