"""HTTP plumbing of the API: Millicast-shaped replies, bearer parsing, body limit, CORS.

success  {"status": "success", "data": ...}
fail     {"status": "fail", "data": {"message": "..."}}          (4xx)
error    {"status": "error", "message": "...", "code": 500}      (5xx)
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110
# §11.1).
_BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def success(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data}, status_code=status)


def fail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"status": "fail", "data": {"message": message}}, status_code=status, headers=headers
    )


def unauthorized(message: str, error: str = "invalid_token") -> ApiError:
    # RFC 6750 §3: a 401 names the scheme (and the error) in WWW-Authenticate.
    return ApiError(401, message, {"WWW-Authenticate": f'Bearer realm="hubbub", error="{error}"'})


def bearer(authorization: str | None, required: bool) -> str | None:
    """The token of an `Authorization: Bearer <token>` header.

    Missing -> 401 when required (RFC 6750 §3.1 says no error code then); present but not a
    Bearer credential -> 400 `invalid_request`, whether or not it was required.
    """
    if authorization is None or authorization == "":
        if required:
            raise ApiError(
                401,
                "Unauthorized: missing Authorization header (expected 'Bearer <token>')",
                {"WWW-Authenticate": 'Bearer realm="hubbub"'},
            )
        return None
    match = _BEARER.match(authorization)
    if match is None:
        raise ApiError(
            400,
            "Bad Request: malformed Authorization header (expected 'Bearer <token>')",
            {"WWW-Authenticate": 'Bearer realm="hubbub", error="invalid_request"'},
        )
    return match.group(1)


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "Bad Request: invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"Bad Request: invalid JSON body ({first.get('msg', 'parse error')})"
    loc = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    msg = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Bad Request: {loc + ': ' if loc else ''}{msg}{more}"


def install_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return fail(exc.status, exc.message, exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return fail(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return fail(400, _validation_message(exc))

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"status": "error", "message": "internal server error", "code": 500}, status_code=500
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, server_error)


def _json_body(message: str) -> bytes:
    return json.dumps({"status": "fail", "data": {"message": message}}).encode()


class BodyLimit:
    """Reads the body of HTTP requests under `prefix` first: 413 above `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int, prefix: str = "/api/") -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = _json_body(f"Payload Too Large: request body over {self.limit} bytes")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PathCors:
    """CORS for the browser-facing paths only (the Director, the JWK set, WHIP and WHEP).

    Any origin may call them: they take bearer tokens, not cookies, and a token's
    allowedOrigins are checked by the handler itself. The admin API gets no CORS.
    """

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...],
                 methods: tuple[str, ...] = ("GET", "POST", "OPTIONS"),
                 headers: tuple[str, ...] = ("Authorization", "Content-Type"),
                 expose: tuple[str, ...] = ()) -> None:
        self.app = app
        self.prefixes = prefixes
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=list(methods),
            allow_headers=list(headers),
            expose_headers=list(expose),
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
