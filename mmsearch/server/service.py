"""What the HTTP routes share: the read-only `Library`, the limits, which files may be served,
thumbnails and audio previews. No search logic: that stays in `Library`."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mmsearch.config import Settings
from mmsearch.errors import MediaError, NotIndexedError
from mmsearch.library import Library
from mmsearch.media.paths import canonical_path, is_within
from mmsearch.results import ItemInfo
from mmsearch.server.jobs import Jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and switches of one service; the defaults are safe for a machine on a network."""

    token: str | None = None
    """When set, every request must carry `Authorization: Bearer <token>`."""
    folders: tuple[str, ...] = ()
    """Folders an indexing job may be started for, besides those the index already holds."""
    cors_origins: tuple[str, ...] = ()
    """Origins a browser may call from; none by default (no CORS headers at all)."""
    max_k: int = 1000
    max_upload_bytes: int = 32 * 1024 * 1024
    """The largest request body (uploaded example files included)."""
    max_image_pixels: int = 50_000_000
    """Uploaded example images and thumbnails larger than this are refused (decompression bombs)."""
    request_seconds: float = 60.0
    """A request that has not started answering by then gets 504."""
    thumbnail_sizes: tuple[int, int] = (16, 1024)
    thumbnail_cache_bytes: int = 64 * 1024 * 1024
    preview_seconds: float = 30.0
    """The longest audio preview served."""
    watch: bool = False
    """Follow the indexed folders (`serve --watch`): new, changed, moved and deleted files are
    indexed moments later, in a background thread (see `mmsearch.watch`)."""


class NotServable(NotIndexedError):
    """An item whose file may not be served (gone, failed, or outside the indexed folders)."""


@dataclass
class _Thumbs:
    """Recently made thumbnails, bounded by total bytes (least recently used leave first)."""

    limit: int
    entries: OrderedDict[tuple[object, ...], bytes] = field(default_factory=OrderedDict)
    size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[object, ...]) -> bytes | None:
        with self.lock:
            data = self.entries.get(key)
            if data is not None:
                self.entries.move_to_end(key)
            return data

    def put(self, key: tuple[object, ...], data: bytes) -> None:
        with self.lock:
            if key in self.entries or len(data) > self.limit:
                return
            self.entries[key] = data
            self.size += len(data)
            while self.size > self.limit:
                _, old = self.entries.popitem(last=False)
                self.size -= len(old)


class Service:
    """One index behind the HTTP routes."""

    ROOTS_TTL = 2.0

    def __init__(self, index: Path, settings: Settings, config: ServiceConfig) -> None:
        # Create the index if it is missing (the service may be started before anything was
        # indexed), then keep only a read-only handle: searches never take the write lock.
        if not (index / "catalog.db").is_file():
            Library.open(index, settings=settings).close()
        self.library = Library.open(index, settings=settings, readonly=True)
        self.index = self.library.path
        self.settings = settings
        self.config = config
        self.jobs = Jobs(self.index, settings)
        self.ready = threading.Event()
        self.load_error: str | None = None
        self._thumbs = _Thumbs(config.thumbnail_cache_bytes)
        self._roots: tuple[float, list[str]] = (0.0, [])
        self.follower = None
        if config.watch:
            from mmsearch.server.watching import Follower

            self.follower = Follower(self.index, settings)

    def warm_up(self) -> None:
        """Load the model and open its networks (readiness waits for it)."""
        try:
            self.library.encoder().warm()
        except Exception as exc:  # reported by /ready and by every search
            log.exception("loading the model failed")
            self.load_error = str(exc)
            return
        self.ready.set()

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.jobs.stop_all()
        self.library.close()

    # -- which files may be served -------------------------------------------------------------

    def roots(self) -> list[str]:
        """The indexed folders (briefly cached: every thumbnail asks)."""
        at, roots = self._roots
        if time.monotonic() - at > self.ROOTS_TTL:
            roots = self.library.stats().roots
            self._roots = (time.monotonic(), roots)
        return roots

    def job_folders(self) -> list[str]:
        configured = [canonical_path(f) for f in self.config.folders]
        return sorted(set(configured) | set(self.roots()))

    def allowed_job_folders(self, folders: list[str]) -> list[str]:
        """The folders a client asked to index, each checked against the configured ones."""
        allowed = self.job_folders()
        out = []
        for folder in folders:
            path = canonical_path(folder)
            if not any(is_within(path, root) for root in allowed):
                raise NotServable(
                    f"{folder} is not a folder this service indexes; `GET /status` lists them "
                    "(start the service with --folder to add one)."
                )
            out.append(path)
        return out

    def item(self, item_id: int) -> ItemInfo:
        return self.library.item(item_id)

    def servable(self, item_id: int) -> tuple[ItemInfo, str]:
        """An indexed item and the real path of its file, which must lie inside an indexed folder.

        Raises:
            NotIndexedError: no such item, or its file may not be served (removed, failed,
                gone, or a symlink now leading out of the indexed folders).
        """
        info = self.library.item(item_id)
        return info, self._inside_roots(info)

    def servable_path(self, path: str) -> tuple[ItemInfo, str]:
        """As `servable`, for an item named by its path (example images in a search)."""
        info = self.library.item(path)
        return info, self._inside_roots(info)

    def _inside_roots(self, info: ItemInfo) -> str:
        if info.status != "ok":
            raise NotServable(f"Item {info.id} could not be indexed ({info.error}); it is not served.")
        real = canonical_path(info.path)  # a symlink put in place of the file leads elsewhere
        if real != info.path or not any(is_within(real, root) for root in self.roots()):
            raise NotServable(f"Item {info.id} lies outside the indexed folders; it is not served.")
        if not os.path.isfile(real):
            raise NotServable(f"The file of item {info.id} is gone; index its folder again.")
        return real

    # -- derived media -------------------------------------------------------------------------

    def thumbnail(self, item_id: int, size: int, at: float | None = None) -> bytes:
        """A JPEG at most `size` pixels on its longer side; for a video, its picture at `at`
        seconds (default: its first keyframe), so a hit shows the moment that matched.

        Raises:
            NotIndexedError: as `servable`, or the item is neither an image nor a video with
                pictures.
            MediaError: the image or video cannot be decoded (or is larger than the pixel limit).
        """
        info, real = self.servable(item_id)
        if info.kind == "video" and not info.moments:
            raise NotServable(f"Item {item_id} is a video without pictures: it has no thumbnail.")
        if info.kind not in ("image", "video"):
            raise NotServable(f"Item {item_id} is {info.kind}, not an image: it has no thumbnail.")
        stat = os.stat(real)
        if info.kind == "video":
            # The keyframe whose shot holds `at`: thumbnails of one shot share a cache entry.
            starts = [start for start, _ in info.moments]
            at = max([s for s in starts if s <= at + 1e-6] or starts[:1]) if at is not None else starts[0]
        key = (item_id, size, stat.st_size, stat.st_mtime_ns, at)
        cached = self._thumbs.get(key)
        if cached is not None:
            return cached
        if info.kind == "video":
            from mmsearch.media.video import frame_at

            image = frame_at(real, at or 0.0, side=size)
        else:
            from mmsearch.media.images import decode_image

            with open(real, "rb") as f:
                data = f.read()
            image = decode_image(
                data, path=real, max_pixels=self.config.max_image_pixels, min_side=size
            ).image
        image.thumbnail((size, size))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        thumb = out.getvalue()
        self._thumbs.put(key, thumb)
        return thumb

    def audio_preview(self, item_id: int, start: float, seconds: float) -> bytes:
        """`seconds` of a recording from `start`, as a 16-bit mono WAV at 22.05 kHz.

        Raises:
            NotIndexedError: as `servable`, or the item is not a recording.
            MediaError: the recording cannot be decoded.
        """
        info, real = self.servable(item_id)
        if info.kind not in ("audio", "video") or (info.kind == "video" and not info.sample_rate):
            raise NotServable(f"Item {item_id} is {info.kind}, not a recording: it has no preview.")
        import numpy as np
        import soundfile

        from mmsearch.media.audio import read_audio

        rate = 22050
        seconds = min(seconds, self.config.preview_seconds)
        skip, want = round(start * rate), max(1, round(seconds * rate))
        parts, seen = [], 0
        for block in read_audio(real, rate=rate, block_seconds=10.0, max_seconds=start + seconds):
            lo = max(0, skip - seen)
            if lo < len(block):
                parts.append(block[lo:])
            seen += len(block)
        signal = np.concatenate(parts)[:want] if parts else np.zeros(0, np.float32)
        if len(signal) == 0:
            raise MediaError(real, f"the recording is shorter than {start:g} s")
        out = io.BytesIO()
        soundfile.write(out, np.clip(signal, -1, 1), rate, format="WAV", subtype="PCM_16")
        return out.getvalue()
