"""The web search page: `GET /` and its three static files, shipped in `mmsearch/server/web/`.

The page holds no data of its own: it calls the JSON API from the browser (with the token, when
the server has one), so the page and its files are served without the token, and everything it
shows comes through the same checks as any other client's requests.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC = ("/", "/web/")
"""Paths served without the token (`Guard`): the page and its static files only."""

# No inline script or style anywhere; images only from the server itself or the blob: URLs
# the page makes from thumbnails it fetched with the token; nothing may frame the page.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# The indexed files themselves (and their thumbnails and previews) never run as a page.
MEDIA_POLICY = "default-src 'none'; sandbox"
_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
router = APIRouter(include_in_schema=False)


def _read(name: str) -> bytes:
    return (resources.files("mmsearch.server") / "web" / name).read_bytes()


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@router.get("/")
def page() -> Response:
    """The search page."""
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_headers())


@router.get("/web/{name}")
def static(name: str = PathParam(max_length=40)) -> Response:
    """One of the page's own files (a fixed list: nothing else is reachable here)."""
    media_type = _FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"No such file of the web page: {name}.")
    return Response(_read(name), media_type=media_type, headers=_headers())


class MediaPolicy:
    """Adds `MEDIA_POLICY` and `nosniff` to every `/items/...` answer (files, thumbnails)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/items/"):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", MEDIA_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
