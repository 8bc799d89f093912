"""The HTTP service's request and response bodies (pydantic models: they make the OpenAPI schema).
Items, hits and statistics answer with the library's own dataclasses (`mmsearch.results`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmsearch.results import Hit

Kind = Literal["image", "text", "audio", "video"]


class ErrorBody(BaseModel):
    """Every error answer: one message saying what went wrong and what to do."""

    error: str
    detail: list[dict[str, object]] | None = None
    """For a request that does not match the schema: where and why (pydantic's own report)."""


class Term(BaseModel):
    """One term of a structured query; rendered into the text syntax (`2:"red car"`, `-"night"`)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    weight: float = Field(1.0, gt=0, le=100)
    negative: bool = False

    @field_validator("text")
    @classmethod
    def _no_quote(cls, value: str) -> str:
        if '"' in value:
            raise ValueError("a term cannot hold a double quote; split it into two terms")
        if not value.strip():
            raise ValueError("a term needs some text")
        return value

    def syntax(self) -> str:
        weight = "" if self.weight == 1 else f"{self.weight:g}:"
        return f'{"-" if self.negative else ""}{weight}"{self.text}"'


class SearchRequest(BaseModel):
    """A search: any mix of text, structured terms and example media, with filters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": '2:"red car" street -night', "k": 5}]},
    )

    text: str | None = Field(None, max_length=4000)
    """Query text in mmsearch's syntax: weights `2:"red car"`, negatives `-night`."""
    terms: list[Term] = Field(default_factory=list, max_length=64)
    """Structured terms, appended to `text` in its syntax (quoting done for you)."""
    images: list[str] = Field(default_factory=list, max_length=16)
    """Example images by their indexed path ("more like this")."""
    image_ids: list[int] = Field(default_factory=list, max_length=16)
    """Example images by item id."""
    audios: list[str] = Field(default_factory=list, max_length=16)
    """Example sounds by their indexed path."""
    audio_ids: list[int] = Field(default_factory=list, max_length=16)
    """Example sounds by item id."""
    kinds: list[Kind] = Field(default_factory=list, max_length=4)
    folders: list[str] = Field(default_factory=list, max_length=64)
    extensions: list[str] = Field(default_factory=list, max_length=64)
    k: int = Field(10, ge=1)
    """At most this many hits (the server's limit is in `GET /status`)."""
    min_score: float | None = Field(None, ge=-1, le=1)
    """Drop matches scored below this: 0-1 on the model's calibrated scale, -1 to 1 for raw
    cosines (default: the model's cut-off)."""

    def query_text(self) -> str | None:
        parts = [self.text] if self.text and self.text.strip() else []
        parts += [term.syntax() for term in self.terms]
        return " ".join(parts) or None


class SearchResponse(BaseModel):
    hits: list[Hit]
    """The same fields as `mmsearch search --json` (`Hit`)."""
    took_ms: float


class ItemOut(BaseModel):
    """`ItemInfo` (`mmsearch info --json`), with its tuples as lists: OpenAPI tools read
    fixed-length arrays unevenly."""

    id: int | None
    path: str
    kind: str
    size: int
    status: str
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    codec: str | None = None
    tags: list[list[str | float]] = Field(default_factory=list)
    """Sound labels as [label, score] pairs, best first."""
    transcript: list[list[float | str]] = Field(default_factory=list)
    """What is said, as [start, end, text] segments."""
    read_text: list[str] = Field(default_factory=list)
    """Lines of text read in an image (with `read_text_in_images` on), top to bottom."""
    frame_rate: float | None = None
    """Videos: frames per second."""
    rotation: int | None = None
    """Videos: degrees turned clockwise for display."""
    moments: list[list[float]] = Field(default_factory=list)
    """Videos: each keyframe's shot as [start, end] seconds, in order (`/items/{id}/thumbnail?t=`
    shows one)."""
    indexed_until: float | None = None
    """Videos an interrupted run left part-way: the seconds from the start that are indexed
    (and searchable); the next indexing run goes on from there. Null: the whole file."""


class Limits(BaseModel):
    max_k: int
    max_upload_bytes: int
    max_image_pixels: int
    request_seconds: float
    thumbnail_sizes: list[int]
    """[smallest, largest] thumbnail side in pixels."""


class JobOut(BaseModel):
    """An indexing job: its state and progress; `report` when it is done."""

    id: int
    state: Literal["running", "done", "failed", "cancelled"]
    folders: list[str]
    phase: str | None = None
    done: int = 0
    total: int = 0
    current: str | None = None
    started_at: float
    finished_at: float | None = None
    report: dict[str, object] | None = None
    error: str | None = None


class WatchOut(BaseModel):
    watching: bool
    last: dict[str, object] | None
    """The last update: why ("changes", "rescan", ...), the folders, when, and its report."""
    notices: list[str]
    """Warnings, e.g. the system's watch limit reached (polling instead)."""
    error: str | None


class StatusOut(BaseModel):
    ready: bool
    """True once the model is loaded (searches answer at full speed)."""
    version: str
    index: str
    model: str
    items: dict[str, int]
    folders: list[str]
    """Folders an indexing job may be started for."""
    job: JobOut | None
    limits: Limits
    watch: WatchOut | None = None
    """What following the folders last did (`serve --watch`); null when not following."""


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folders: list[str] = Field(default_factory=list, max_length=64)
    """Folders to index; each must be one of `GET /status`'s `folders` (or inside one). Empty:
    every configured folder."""


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
