"""What every request passes first: the bearer token, the body-size limit and the time limit.

A plain ASGI middleware, so it also covers unknown routes, the docs and the schema, and its
answers are the same JSON error bodies as everywhere else.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_WITH_BODY = {"POST", "PUT", "PATCH"}


class _TooLarge(Exception):
    pass


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """Token check, body limit and request deadline for every HTTP request."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, max_body: int, seconds: float,
        public: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.public = public
        """Paths served without the token: exactly these, or under those ending in `/`."""
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, limited_receive, tracking_send))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.seconds)
        except TimeoutError:
            if started:  # a large file on its way: let it finish
                await task
                return
            task.cancel()
            await error_response(
                504, f"The request took longer than {self.seconds:g} s and was abandoned; "
                "narrow it (smaller k, fewer examples) or try again when the server is less busy."
            )(scope, receive, send)
        except _TooLarge:
            if not started:
                await self._too_large()(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Any:
        if self.token is not None and not self._is_public(scope["path"], scope["method"]):
            given = headers.get(b"authorization", b"")
            scheme, _, value = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self.token):
                return error_response(
                    401, "This server needs a token: send `Authorization: Bearer <token>`.",
                    {"WWW-Authenticate": "Bearer"},
                )
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return error_response(400, "The Content-Length header is not a number.")
            if int(length) > self.max_body:
                return self._too_large()
        elif scope["method"] in _WITH_BODY and b"chunked" in headers.get(b"transfer-encoding", b""):
            return error_response(411, "Send a Content-Length header with the request body.")
        return None

    def _is_public(self, path: str, method: str) -> bool:
        if method != "GET":
            return False
        return any(path == p or (p.endswith("/") and p != "/" and path.startswith(p)) for p in self.public)

    def _too_large(self) -> JSONResponse:
        return error_response(
            413, f"The request body is larger than the server's limit of {self.max_body} bytes; "
            "send smaller example files."
        )
