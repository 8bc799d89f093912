"""The preview pane: the selected hit drawn as what it is (image, sound, document).

What it shows is read in a worker (`load_details`: the item's record, a sound's waveform, a
document's passage); `Preview.show` only draws it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mmsearch.media.kinds import AUDIO, IMAGE, TEXT, VIDEO
from mmsearch.present import clock, human_size, short_path, time_range
from mmsearch.results import Hit, ItemInfo
from mmsearch.tui.widgets import KIND_ICONS

WAVE_COLUMNS = 48
WAVE_MAX_SECONDS = 600.0
"""Longer recordings show the waveform of their first ten minutes (decoding is the slow part)."""
_LEVELS = "▁▂▃▄▅▆▇█"
_PASSAGE_WORDS = 80
PICTURE_SIDE = 320
"""Pixels of the shorter side decoded for the preview: a terminal pane shows fewer."""
_MAX_DOCUMENT_BYTES = 2_000_000


@dataclass
class Details:
    """What the preview shows of one hit, read off the main thread."""

    hit: Hit
    info: ItemInfo | None = None
    peaks: list[float] = field(default_factory=list)
    passage: str = ""
    picture: Any = None
    """The decoded image (PIL) for images."""
    problem: str = ""


def peaks(path: str, columns: int = WAVE_COLUMNS) -> tuple[list[float], float]:
    """The loudest sample in each of `columns` slices of the recording (of its first ten
    minutes), 0..1, and the seconds they cover."""
    import numpy as np

    from mmsearch.media.audio import read_audio

    rate = 2000  # plenty for an outline; decoding cost is what matters
    signal = np.concatenate(list(read_audio(path, rate=rate, max_seconds=WAVE_MAX_SECONDS)))
    slices = np.array_split(np.abs(signal), columns)
    values = [float(s.max()) if s.size else 0.0 for s in slices]
    top = max(values) or 1.0
    return [v / top for v in values], signal.size / rate


def waveform(values: list[float], seconds: float, start: float | None, end: float | None) -> Text:
    """The waveform as a row of block characters; the hit's range in the recording is lit."""
    text = Text()
    for i, value in enumerate(values):
        level = _LEVELS[min(len(_LEVELS) - 1, int(value * len(_LEVELS)))]
        at = (i + 0.5) * seconds / max(len(values), 1)
        inside = start is not None and end is not None and start <= at <= max(end, start)
        text.append(level, style="bold yellow" if inside else "green")
    return text


def query_words(query: str | None) -> list[str]:
    """The words of the query's positive terms, for highlighting (negatives are not wanted)."""
    if not query:
        return []
    from mmsearch.query.parse import parse_text

    try:
        terms = parse_text(query)
    except Exception:  # noqa: BLE001 - a half-typed query: highlight its plain words
        return re.findall(r"[^\W_]{2,}", query)
    return [w for t in terms if not t.negative for w in re.findall(r"[^\W_]{2,}", t.text)]


def passage(path: str, words: list[str]) -> str:
    """The document's chunk that holds the most query words (the first when none does)."""
    from mmsearch.media.text import chunk_text, decode_text

    with open(path, "rb") as handle:
        data = handle.read(_MAX_DOCUMENT_BYTES)
    text = decode_text(data, path=path, max_bytes=_MAX_DOCUMENT_BYTES)
    chunks = chunk_text(text, _PASSAGE_WORDS) or [text]
    wanted = {w.lower() for w in words}

    def overlap(chunk: str) -> int:
        return len(wanted & {w.lower() for w in re.findall(r"[^\W_]+", chunk)})

    return max(chunks, key=overlap).strip()  # max keeps the first of equals


def _picture(path: str, max_pixels: int) -> Any:
    """The image, decoded here in the worker (EXIF orientation applied, JPEGs at reduced scale)
    rather than by the image widget while drawing, where a damaged file would break the frame."""
    from mmsearch.media.images import decode_image

    with open(path, "rb") as handle:
        data = handle.read()
    return decode_image(data, path=path, max_pixels=max_pixels, min_side=PICTURE_SIDE).image


def load_details(library: Any, hit: Hit, query: str | None) -> Details:
    """Everything the preview needs of `hit` (runs in a worker: it reads files)."""
    details = Details(hit)
    if not os.path.isfile(hit.path):
        details.problem = (
            "The file is gone (moved, deleted, or on a drive that is not mounted); "
            "index its folder again (ctrl+n) to update the index."
        )
        return details
    try:
        details.info = library.item(hit.id if hit.id is not None else hit.path)
        if hit.kind == IMAGE:
            details.picture = _picture(hit.path, library.settings.max_image_pixels)
        elif hit.kind == AUDIO:
            details.peaks, _ = peaks(hit.path)
        elif hit.kind == VIDEO and details.info.moments:
            from mmsearch.media.video import frame_at

            details.picture = frame_at(hit.path, hit.start or 0.0, side=PICTURE_SIDE)
        elif hit.kind == TEXT:
            details.passage = passage(hit.path, query_words(query))
    except Exception as exc:  # noqa: BLE001 - a file unreadable since indexing: say so in the pane
        details.problem = str(exc) or type(exc).__name__
    return details


class Preview(VerticalScroll):
    """The selected hit: the image itself, or a sound's waveform, tags and transcript, or the
    document's passage with the query words highlighted."""

    def compose(self) -> ComposeResult:
        yield Static("Nothing selected.", id="preview-title")
        yield Static("", id="preview-image-slot")
        yield Static("", id="preview-body")

    def clear(self, message: str = "Nothing selected.") -> None:
        self.query_one("#preview-title", Static).update(Text(message, style="dim"))
        self.query_one("#preview-body", Static).update("")
        self._set_image(None)

    def _set_image(self, picture: Any) -> None:
        for old in self.query(".preview-image"):
            old.remove()
        if picture is None:
            return
        from textual_image.widget import Image

        self.mount(Image(picture, classes="preview-image"), after="#preview-title")

    def show(self, details: Details, query: str | None) -> None:
        hit, info = details.hit, details.info
        title = Text(f"{KIND_ICONS.get(hit.kind, '?')} {os.path.basename(hit.path)}", style="bold")
        title.append(f"\n{short_path(os.path.dirname(hit.path))}", style="dim")
        body = Text()
        if details.problem:
            body.append(details.problem, style="red")
        size = human_size(info.size if info else hit.size)
        taken = (info.taken_at if info else hit.taken_at) or ""
        if hit.kind == IMAGE:
            width, height = (info.width, info.height) if info else (hit.width, hit.height)
            dims = f"{width}×{height} · " if width and height else ""
            title.append(f"\n{dims}{size}{' · ' + taken if taken else ''}")
            self._set_image(details.picture)
        elif hit.kind == VIDEO:
            self._set_image(details.picture)
        else:
            self._set_image(None)
        if hit.kind == AUDIO:
            self._sound(body, details, size)
        elif hit.kind == VIDEO:
            self._video(body, details, size)
        elif hit.kind == TEXT:
            body.append(f"{size}\n\n")
            snippet = Text(details.passage)
            snippet.highlight_words(query_words(query), style="bold black on yellow", case_sensitive=False)
            body.append_text(snippet)
        self.query_one("#preview-title", Static).update(title)
        self.query_one("#preview-body", Static).update(body)

    @classmethod
    def _video(cls, body: Text, details: Details, size: str) -> None:
        """The shot that matched (drawn above), the film's facts, when its shots start (the
        matched one marked), then its sound as a recording's."""
        hit, info = details.hit, details.info
        if info is not None:
            facts = [f"{info.width}×{info.height}" if info.width else "no pictures"]
            if info.frame_rate:
                facts.append(f"{info.frame_rate:g} fps")
            body.append(" · ".join(facts) + "\n")
            if info.moments:
                long = (info.duration or 0) >= 3600
                body.append("shots: ", style="bold")
                for start, end in info.moments[:24]:
                    here = hit.start is not None and start <= hit.start < end
                    body.append(clock(start, hours=long) + " ", style="bold yellow" if here else "dim")
                if len(info.moments) > 24:
                    body.append(f"(+{len(info.moments) - 24})", style="dim")
                body.append("\n")
        cls._sound(body, details, size)

    @staticmethod
    def _sound(body: Text, details: Details, size: str) -> None:
        hit, info = details.hit, details.info
        duration = (info.duration if info else None) or hit.duration
        facts = [clock(duration, hours=duration >= 3600) if duration else "", size]
        if info and info.codec:
            facts.append(f"{info.codec} {info.sample_rate or '?'} Hz {info.channels or '?'} ch")
        body.append(" · ".join(f for f in facts if f) + "\n")
        if hit.start is not None:
            body.append(f"match at {time_range(hit.start, hit.end)}\n", style="yellow")
        if details.peaks and duration:
            shown = min(duration, WAVE_MAX_SECONDS)
            body.append_text(waveform(details.peaks, shown, hit.start, hit.end))
            body.append("\n")
        if info and info.tags:
            body.append("\ntags: ", style="bold")
            body.append(", ".join(f"{name} {score:.2f}" for name, score in info.tags[:6]) + "\n")
        if info and info.transcript:
            body.append("\ntranscript:\n", style="bold")
            near = [s for s in info.transcript if hit.start is None or s[1] >= hit.start - 5]
            for start, _end, said in near[:6]:
                body.append(f"{clock(start)} ", style="dim")
                body.append(said.strip() + "\n")
