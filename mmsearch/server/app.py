"""`make_app`: the FastAPI application over one index (routes in `routes.py` and `clip.py`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mmsearch.config import Settings, load_settings
from mmsearch.errors import (
    ConfigError,
    DiskFullError,
    IndexBusyError,
    IndexFormatError,
    IndexNotFoundError,
    MediaError,
    MmsearchError,
    ModelUnavailableError,
    NotIndexedError,
    QueryError,
    ReadOnlyIndexError,
)
from mmsearch.server import clip, page, routes
from mmsearch.server.guard import Guard, error_response
from mmsearch.server.service import Service, ServiceConfig
from mmsearch.version import __version__

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of gives its HTTP status.
STATUS: tuple[tuple[type[MmsearchError], int], ...] = (
    (routes.LimitExceeded, 413),
    (NotIndexedError, 404),
    (QueryError, 400),
    (ConfigError, 400),
    (MediaError, 422),
    (IndexBusyError, 409),
    (ReadOnlyIndexError, 409),
    (DiskFullError, 507),
    (IndexNotFoundError, 503),
    (IndexFormatError, 503),
    (ModelUnavailableError, 503),
)


def status_of(exc: MmsearchError) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def make_app(
    index: str | Path | None = None,
    *,
    settings: Settings | None = None,
    config: ServiceConfig | None = None,
    warm_up: bool = True,
) -> FastAPI:
    """The HTTP service over the index at `index` (default: the configured one).

    The index is created if missing, then opened read-only for searches; indexing jobs open
    their own writable handle. The model loads in the background at start-up (`/ready`).

    Raises:
        MmsearchError: the index cannot be opened (damaged, another model, ...).
    """
    settings = settings or load_settings()
    config = config or ServiceConfig()
    folder = Path(index) if index is not None else settings.index_path()
    svc = Service(folder, settings, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(target=svc.warm_up, name="mmsearch-warm-up", daemon=True).start()
        if svc.follower is not None:
            svc.follower.start()
        yield
        svc.close()

    app = FastAPI(
        title="mmsearch",
        version=__version__,
        summary="Local multimodal search: text, example images and sounds, over one index.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.include_router(routes.router)
    app.include_router(clip.router)
    app.include_router(page.router)
    _add_error_handlers(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(page.MediaPolicy)
    app.add_middleware(
        Guard, token=config.token, max_body=config.max_upload_bytes, seconds=config.request_seconds,
        public=page.PUBLIC,
    )
    if config.token:
        _declare_bearer(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MmsearchError)
    async def _mmsearch(request: Request, exc: MmsearchError) -> JSONResponse:
        code = status_of(exc)
        if code >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid value')}" if where else "invalid request"
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors
        ]
        return JSONResponse(
            {"error": f"The request does not match the API: {message}.", "detail": detail},
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such route: {request.method} {request.url.path}. See /docs."
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(
            500, f"Internal error ({type(exc).__name__}); the server log has the details."
        )


def _declare_bearer(app: FastAPI) -> None:
    """The schema and /docs say every route needs `Authorization: Bearer`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
