"""clip-retrieval's back-end API (`clip back`), so its `ClipClient` and front end can query mmsearch.

`POST /knn-service` takes text, a base64 image or an embedding and answers `[{url, id,
similarity, caption}]`; `GET /indices-list` names the one index; `POST /metadata` maps ids to
metadata. Queries go through `Library.search` / `Library.search_vector` like every other route.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import io
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from mmsearch.errors import NotIndexedError, QueryError
from mmsearch.results import Hit
from mmsearch.server.routes import _ERRORS, LimitExceeded, check_no_nul, saved_examples, service
from mmsearch.server.service import Service

# ClipClient posts its JSON without a Content-Type (clip back's Flask reads it with force=True);
# FastAPI versions that check the Content-Type are told to accept that here.
_LENIENT = (
    {"strict_content_type": False}
    if "strict_content_type" in inspect.signature(APIRouter).parameters else {}
)
router = APIRouter(tags=["clip-retrieval"], responses=_ERRORS, **_LENIENT)
Svc = Annotated[Service, Depends(service)]
_KINDS = {"image": ["image"], "text": ["text"], "audio": ["audio"]}


class KnnRequest(BaseModel):
    """What clip-retrieval's `ClipClient` sends (fields it sends that mmsearch has no use for,
    such as the safety and aesthetic switches, are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    text: str | None = Field(None, max_length=4000)
    image: str | None = None
    """A base64-encoded image file."""
    image_url: str | None = None
    embedding_input: list[float] | None = Field(None, max_length=8192)
    modality: str = "image"
    """`image` searches images, `text` documents (`audio` recordings: an mmsearch extension)."""
    num_images: int = Field(40, ge=1)
    indice_name: str | None = None
    deduplicate: bool = False
    min_score: float = Field(-1.0, ge=-1, le=1, allow_inf_nan=False)
    """An mmsearch extension: drop matches below this cosine. clip back has no cut-off (plain
    nearest neighbours), so neither has this API unless asked."""


class KnnResult(BaseModel):
    id: int
    similarity: float
    url: str
    caption: str
    path: str
    kind: str


class MetadataRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    ids: list[int] = Field(max_length=10_000)
    indice_name: str | None = None


class MetadataEntry(BaseModel):
    id: int
    metadata: dict[str, Any]


def index_name(svc: Service) -> str:
    return svc.index.name or "mmsearch"


def _check_index(svc: Service, name: str | None) -> None:
    if name not in (None, "", index_name(svc)):
        raise NotIndexedError(
            f"No index named {name!r} here; GET /indices-list names the one this server holds "
            f"({index_name(svc)!r})."
        )


def _result(request: Request, hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id, "similarity": hit.score, "url": _file_url(request, hit.id),
        "caption": os.path.basename(hit.path), "path": hit.path, "kind": hit.kind,
    }


def _file_url(request: Request, item_id: int | None) -> str:
    return str(request.url_for("item_file", item_id=item_id))


def _without_copies(hits: list[Hit]) -> list[Hit]:
    """Drop exact copies: the same file content indexed twice scores the same and has the same
    size and picture size. (`clip back` also merges near-duplicates above 0.94 cosine; mmsearch
    keeps those, as its hits carry no vectors.)"""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for hit in hits:
        key = (round(hit.score, 5), hit.kind, hit.size, hit.width, hit.height)
        if key not in seen:
            seen.add(key)
            out.append(hit)
    return out


@router.post("/knn-service", response_model=list[KnnResult])
def knn_service(svc: Svc, req: KnnRequest, request: Request) -> list[dict[str, Any]]:
    """Nearest items to a text, an image (base64) or an embedding, as `clip back` answers."""
    _check_index(svc, req.indice_name)
    kinds = _KINDS.get(req.modality)
    if kinds is None:
        raise QueryError(f"modality {req.modality!r} is not one of {', '.join(_KINDS)}.")
    if req.num_images > svc.config.max_k:
        raise LimitExceeded(
            f"num_images={req.num_images} is above this server's limit of {svc.config.max_k}."
        )
    # Ask for a few more when copies are to be dropped, so num_images can still be met.
    k = min(svc.config.max_k, req.num_images * 2 if req.deduplicate else req.num_images)
    if req.text:
        check_no_nul([req.text])
        hits = svc.library.search(req.text, k=k, kinds=kinds, min_score=req.min_score)
    elif req.image:
        hits = _image_search(svc, req.image, k, kinds, req.min_score)
    elif req.image_url:
        raise QueryError(
            "This server does not fetch image_url (it would let clients make it call any "
            "address); send the image itself in `image` (base64)."
        )
    elif req.embedding_input:
        space = _space_for(svc, len(req.embedding_input))
        hits = svc.library.search_vector(
            req.embedding_input, space=space, k=k, kinds=kinds, min_score=req.min_score
        )
    else:
        raise QueryError("Give one of text, image (base64) or embedding_input.")
    if req.deduplicate:
        hits = _without_copies(hits)
    return [_result(request, hit) for hit in hits[: req.num_images]]


def _space_for(svc: Service, dim: int) -> str:
    """The space an embedding of `dim` numbers belongs to: the text space when it fits."""
    dims = svc.library.stats().spaces
    for space in ("semantic", *sorted(dims)):
        if (dims.get(space) or {}).get("dim") == dim:
            return space
    shown = ", ".join(f"{s} ({(e or {}).get('dim')})" for s, e in dims.items()) or "none yet"
    raise QueryError(f"An embedding of {dim} numbers fits no space of this index: {shown}.")


def _image_search(
    svc: Service, encoded: str, k: int, kinds: list[str], min_score: float
) -> list[Hit]:
    try:
        data = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise QueryError("`image` is not base64 data; send the image file's bytes in base64.") from None
    if not data:
        raise QueryError("`image` is empty; send the image file's bytes in base64.")
    with saved_examples([("image", io.BytesIO(data))], svc.config.max_image_pixels) as paths:
        return svc.library.search(image=paths, k=k, kinds=kinds, min_score=min_score)


@router.get("/indices-list", response_model=list[str])
def indices_list(svc: Svc) -> list[str]:
    """The one index this server holds (pass its name as `indice_name`)."""
    return [index_name(svc)]


@router.post("/metadata", response_model=list[MetadataEntry])
def metadata(svc: Svc, req: MetadataRequest, request: Request) -> list[dict[str, Any]]:
    """Metadata of items by id (`{}` for ids the index does not hold)."""
    _check_index(svc, req.indice_name)
    out = []
    for item_id in req.ids:
        try:
            info = svc.item(item_id) if 1 <= item_id < 2**63 else None
        except NotIndexedError:
            info = None
        meta: dict[str, Any] = {}
        if info is not None and info.status == "ok":
            meta = {
                "url": _file_url(request, item_id), "caption": os.path.basename(info.path),
                "path": info.path, "kind": info.kind, "width": info.width, "height": info.height,
            }
        out.append({"id": item_id, "metadata": meta})
    return out
