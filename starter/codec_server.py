"""A codec server: ``POST /encode`` and ``POST /decode`` for the Web UI and the temporal CLI.

Both endpoints take and return ``temporal.api.common.v1.Payloads`` in protobuf
JSON (``{"payloads": [...]}``), the format the Web UI and ``temporal
--codec-endpoint`` send. Every request needs ``Authorization: Bearer TOKEN``
with the configured token. Browsers may call it only from the configured UI
origin, because CORS headers are sent for that origin alone and requests that
carry another ``Origin`` are rejected.
"""

import asyncio
import hmac
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from starter.codec import DecryptionError

log = structlog.get_logger("casedesk.codec_server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
# The Web UI of `make run` (the dev server's default UI port).
DEFAULT_UI_ORIGIN = "http://localhost:8233"
TOKEN_ENV = "CASE_CODEC_TOKEN"
UI_ORIGIN_ENV = "CASE_CODEC_UI_ORIGIN"
# A payload may be up to 2 MiB on a default Temporal server; a batch of a
# few of them fits.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
ALLOWED_HEADERS = "authorization,content-type,x-namespace"
# A rejected request is logged the first time and then once per this many.
LOG_EVERY_REJECTION = 100


@dataclass
class CodecServerSettings:
    token: str
    ui_origin: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError(
                f"the codec server needs a bearer token; set {TOKEN_ENV} to a long "
                "random string and give the same token to its clients"
            )
        if not self.ui_origin.startswith(("http://", "https://")):
            raise ValueError(
                f"invalid UI origin {self.ui_origin!r}; write scheme, host and port, "
                "such as http://localhost:8233"
            )


class RejectionCounter:
    """Counts rejected requests so that repeated ones do not flood the log."""

    def __init__(self) -> None:
        self.count = 0

    def record(self, request: web.Request, status: int, reason: str) -> None:
        self.count += 1
        if self.count == 1 or self.count % LOG_EVERY_REJECTION == 0:
            log.warning(
                "codec_server.request_rejected",
                status=status,
                reason=reason,
                path=request.path,
                remote=request.remote,
                rejected_so_far=self.count,
            )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(codec: PayloadCodec, settings: CodecServerSettings) -> web.Application:
    """Return the aiohttp application that serves ``codec`` under ``settings``."""
    rejections = RejectionCounter()
    expected_authorization = f"Bearer {settings.token}".encode()

    def cors_headers() -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": settings.ui_origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def reject(request: web.Request, status: int, reason: str) -> web.Response:
        rejections.record(request, status, reason)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return web.json_response({"error": reason}, status=status, headers=headers)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin != settings.ui_origin:
            return reject(request, 403, f"origin {origin!r} is not allowed")
        if request.method == "OPTIONS":
            # A CORS preflight carries no credentials by design.
            return web.Response(status=204, headers=cors_headers())
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return reject(request, 401, "missing Authorization: Bearer token")
        if not hmac.compare_digest(authorization.encode(), expected_authorization):
            return reject(request, 403, "invalid bearer token")
        response = await handler(request)
        if origin is not None:
            response.headers.update(cors_headers())
        return response

    async def transform(
        request: web.Request, operation: Callable[..., Awaitable[list]]
    ) -> web.Response:
        try:
            payloads = json_format.Parse(await request.text(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as err:
            return reject(request, 400, f"invalid Payloads JSON: {err}")
        try:
            result = await operation(list(payloads.payloads))
        except DecryptionError as err:
            return reject(request, 422, str(err))
        body = json_format.MessageToJson(Payloads(payloads=result))
        return web.Response(text=body, content_type="application/json")

    async def encode(request: web.Request) -> web.Response:
        return await transform(request, codec.encode)

    async def decode(request: web.Request) -> web.Response:
        return await transform(request, codec.decode)

    async def preflight(request: web.Request) -> web.Response:
        # The guard middleware handles preflights. This route only makes
        # OPTIONS a known method on both paths.
        return web.Response(status=204)

    app = web.Application(middlewares=[guard], client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post("/encode", encode)
    app.router.add_post("/decode", decode)
    app.router.add_route("OPTIONS", "/encode", preflight)
    app.router.add_route("OPTIONS", "/decode", preflight)
    return app


async def serve(codec: PayloadCodec, settings: CodecServerSettings) -> None:
    """Serve until SIGINT or SIGTERM."""
    runner = web.AppRunner(build_app(codec, settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "codec_server.started",
        host=settings.host,
        port=settings.port,
        ui_origin=settings.ui_origin,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("codec_server.stopping")
        await runner.cleanup()
        log.info("codec_server.stopped")
