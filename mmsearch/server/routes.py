"""The service's own routes: search, items and their media, status, indexing jobs, health."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError

from mmsearch.errors import QueryError
from mmsearch.results import Stats
from mmsearch.server.schemas import (
    ErrorBody,
    Health,
    ItemOut,
    JobOut,
    JobRequest,
    Kind,
    Limits,
    Ready,
    SearchRequest,
    SearchResponse,
    StatusOut,
)
from mmsearch.server.service import Service
from mmsearch.version import __version__

MAX_ID = 2**63 - 1
ItemId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="An item id, as in a hit's `id`.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422, 500, 503, 504)
}
router = APIRouter(responses=_ERRORS)
_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}")


class LimitExceeded(QueryError):
    """A request beyond one of the service's limits (answered with 413)."""


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


Svc = Annotated[Service, Depends(service)]


# -- health --------------------------------------------------------------------------------------


@router.get("/health", response_model=Health, tags=["health"])
def health() -> dict[str, str]:
    """The process answers (liveness)."""
    return {"status": "ok"}


@router.get("/ready", response_model=Ready, tags=["health"], responses={503: {"model": ErrorBody}})
def ready(svc: Svc) -> Any:
    """Ready once the model is loaded (readiness); 503 until then."""
    if svc.ready.is_set():
        return {"ready": True}
    reason = f"the model failed to load: {svc.load_error}" if svc.load_error else "the model is loading"
    return JSONResponse({"error": f"Not ready: {reason}."}, status_code=503)


# -- searching -----------------------------------------------------------------------------------


def check_no_nul(values: list[str]) -> None:
    """NUL cannot be in a path, and in query text the full-text index takes it for damage
    (`Library.search` reports "catalog failed"), so it is refused here, plainly."""
    if any("\x00" in value for value in values):
        raise QueryError("The request holds a NUL character (in its text or a path); remove it.")


def run_search(
    svc: Service, req: SearchRequest, images: list[str] = [], audios: list[str] = []  # noqa: B006
) -> dict[str, Any]:
    if req.k > svc.config.max_k:
        raise LimitExceeded(f"k={req.k} is above this server's limit of {svc.config.max_k}.")
    check_no_nul([*req.images, *req.audios, *req.folders, *req.extensions, req.query_text() or ""])
    examples = [svc.servable_path(p)[1] for p in req.images]
    examples += [svc.servable(i)[1] for i in req.image_ids] + images
    sounds = [svc.servable_path(p)[1] for p in req.audios]
    sounds += [svc.servable(i)[1] for i in req.audio_ids] + audios
    began = time.perf_counter()
    hits = svc.library.search(
        req.query_text(),
        image=examples,
        audio=sounds,
        k=req.k,
        min_score=req.min_score,
        kinds=req.kinds,
        folders=req.folders,
        extensions=req.extensions,
    )
    took = (time.perf_counter() - began) * 1000
    return {"hits": [h.to_json() for h in hits], "took_ms": round(took, 2)}


@router.post("/search", response_model=SearchResponse, tags=["search"])
def search(svc: Svc, req: SearchRequest) -> dict[str, Any]:
    """Search by text (weights `2:"red car"`, negatives `-night`), structured terms, indexed
    example images or sounds (by path or id), with filters."""
    return run_search(svc, req)


@router.get("/search", response_model=SearchResponse, tags=["search"])
def search_get(
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=4000, description="Query text.")],
    k: Annotated[int, Query(ge=1)] = 10,
    kind: Annotated[list[Kind] | None, Query(max_length=3)] = None,
    min_score: Annotated[float | None, Query(ge=-1, le=1, allow_inf_nan=False)] = None,
) -> dict[str, Any]:
    """A text search in a URL (for links and quick tries): `GET /search?q=red+car&k=5`."""
    return run_search(svc, SearchRequest(text=q, k=k, kinds=kind or [], min_score=min_score))


@contextmanager
def saved_examples(files: list[tuple[str, BinaryIO]], limit_pixels: int | None) -> Iterator[list[str]]:
    """Uploaded example files, given as (name, stream), as temporary files deleted afterwards.

    Raises:
        LimitExceeded: an image above `limit_pixels` (checked from its header).
    """
    folder = tempfile.mkdtemp(prefix="mmsearch-upload-")
    try:
        paths = []
        for n, (name, stream) in enumerate(files):
            ext = os.path.splitext(name)[1]
            path = os.path.join(folder, f"example-{n}{ext if _EXT.fullmatch(ext) else ''}")
            with open(path, "wb") as out:
                shutil.copyfileobj(stream, out)
            if limit_pixels is not None:
                _check_pixels(path, name, limit_pixels)
            paths.append(path)
        yield paths
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_pixels(path: str, name: str, limit: int) -> None:
    from PIL import Image

    try:
        with Image.open(path) as im:  # reads the header only
            width, height = im.size
    except Exception:  # noqa: BLE001 - not an image PIL knows: the search names the problem
        return
    if width * height > limit:
        raise LimitExceeded(
            f"Example image {name} has {width * height} pixels, above this server's limit "
            f"of {limit}; send a smaller copy."
        )


@router.post("/search/upload", response_model=SearchResponse, tags=["search"])
def search_upload(
    svc: Svc,
    query: Annotated[str, Form(description="A `SearchRequest` as JSON (may be `{}`).")] = "{}",
    images: Annotated[list[UploadFile], File(description="Example images.")] = [],  # noqa: B006
    audios: Annotated[list[UploadFile], File(description="Example sounds.")] = [],  # noqa: B006
) -> dict[str, Any]:
    """Search with uploaded example images and sounds (multipart), plus any `SearchRequest`."""
    try:
        req = SearchRequest.model_validate(json.loads(query or "{}"))
    except (ValueError, ValidationError) as exc:
        raise QueryError(f"The `query` field is not a valid search request: {exc}") from None
    image_files = [(f.filename or "image", f.file) for f in images]
    sound_files = [(f.filename or "sound", f.file) for f in audios]
    with (
        saved_examples(image_files, svc.config.max_image_pixels) as image_paths,
        saved_examples(sound_files, None) as sound_paths,
    ):
        return run_search(svc, req, image_paths, sound_paths)


# -- items ---------------------------------------------------------------------------------------


@router.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
def item(svc: Svc, item_id: ItemId) -> dict[str, Any]:
    """What the index knows of one item."""
    return svc.item(item_id).to_json()


@router.get(
    "/items/{item_id}/file",
    tags=["items"],
    response_class=FileResponse,
    responses={200: {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}},
)
def item_file(svc: Svc, item_id: ItemId) -> FileResponse:
    """The original file (only inside the indexed folders)."""
    _, real = svc.servable(item_id)
    return FileResponse(real, filename=os.path.basename(real), content_disposition_type="inline")


@router.get(
    "/items/{item_id}/thumbnail",
    tags=["items"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def item_thumbnail(
    svc: Svc,
    item_id: ItemId,
    size: Annotated[int, Query(ge=16, le=1024, description="Longer side in pixels.")] = 256,
    t: Annotated[
        float | None,
        Query(ge=0, le=1e6, allow_inf_nan=False, description="Videos: the moment (a hit's start)."),
    ] = None,
) -> Response:
    """A JPEG thumbnail of an image item, or of a video's shot at `t` seconds (cached)."""
    low, high = svc.config.thumbnail_sizes
    size = max(low, min(high, size))
    return Response(
        svc.thumbnail(item_id, size, t), media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get(
    "/items/{item_id}/preview",
    tags=["items"],
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
)
def item_preview(
    svc: Svc,
    item_id: ItemId,
    start: Annotated[float, Query(ge=0, le=1e6, allow_inf_nan=False)] = 0.0,
    seconds: Annotated[float, Query(gt=0, le=600, allow_inf_nan=False)] = 10.0,
) -> Response:
    """A WAV excerpt of a recording or of a video's soundtrack (e.g. a hit's `start`), at most
    the server's preview length."""
    return Response(svc.audio_preview(item_id, start, seconds), media_type="audio/wav")


# -- the index -----------------------------------------------------------------------------------


def _limits(svc: Service) -> Limits:
    c = svc.config
    return Limits(
        max_k=c.max_k, max_upload_bytes=c.max_upload_bytes, max_image_pixels=c.max_image_pixels,
        request_seconds=c.request_seconds, thumbnail_sizes=list(c.thumbnail_sizes),
    )


@router.get("/status", response_model=StatusOut, tags=["index"])
def status(svc: Svc) -> dict[str, Any]:
    """Readiness, the index, the folders jobs may index, the running job, the limits."""
    stats = svc.library.stats()
    job = svc.jobs.current() or svc.jobs.latest()
    return {
        "ready": svc.ready.is_set(), "version": __version__, "index": stats.path,
        "model": stats.model, "items": stats.items, "folders": svc.job_folders(),
        "job": job.to_json() if job else None, "limits": _limits(svc),
        "watch": svc.follower.to_json() if svc.follower is not None else None,
    }


@router.get("/stats", response_model=Stats, tags=["index"])
def stats(svc: Svc) -> dict[str, Any]:
    """What the index holds (`mmsearch info --json`)."""
    return svc.library.stats().to_json()


@router.post("/index/jobs", response_model=JobOut, status_code=202, tags=["index"])
def start_job(svc: Svc, req: JobRequest) -> dict[str, Any]:
    """Start indexing configured folders (one job at a time; searches go on meanwhile)."""
    check_no_nul(req.folders)
    folders = svc.allowed_job_folders(req.folders) if req.folders else svc.job_folders()
    if not folders:
        raise QueryError(
            "No folders to index: start the service with --folder DIR, or index one with "
            "`mmsearch index DIR` first."
        )
    return svc.jobs.start(folders).to_json()


@router.get("/index/jobs", response_model=list[JobOut], tags=["index"])
def list_jobs(svc: Svc) -> list[dict[str, Any]]:
    """Recent jobs, newest first."""
    return [job.to_json() for job in svc.jobs.all()]


@router.get("/index/jobs/{job_id}", response_model=JobOut, tags=["index"])
def get_job(svc: Svc, job_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> dict[str, Any]:
    """One job's state and progress."""
    return svc.jobs.get(job_id).to_json()


@router.delete("/index/jobs/{job_id}", response_model=JobOut, tags=["index"])
def cancel_job(svc: Svc, job_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> dict[str, Any]:
    """Cancel a job: it stops between files, keeping what it committed."""
    return svc.jobs.cancel(job_id).to_json()

