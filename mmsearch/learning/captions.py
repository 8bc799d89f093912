"""Captions a collection already has for its images: Markdown alt text, sidecars, EXIF/XMP, a CSV.

Sources (`harvest_captions`):
- alt text of images embedded in the collection's Markdown notes: `![a red bicycle](bike.jpg)`;
- a sidecar `.txt` with the image's stem (`bike.jpg` -> `bike.txt`), and `.xmp` sidecars'
  `dc:description`;
- the image's own EXIF ImageDescription / XPComment, or XMP `dc:description`;
- a CSV of `path,caption` the user gives.

This module only reads files and the catalog; what is learnt from the captions is `tuner`'s.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from mmsearch.errors import QueryError
from mmsearch.media.paths import canonical_path
from mmsearch.store.catalog import Catalog

_MD_IMAGE = re.compile(r'!\[([^\]]*)\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+"[^"]*")?\s*\)')
_XMP_DESCRIPTION = re.compile(
    rb"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL | re.IGNORECASE
)
_EXIF_DESCRIPTION = 0x010E
_EXIF_XPCOMMENT = 0x9C9C
_MARKDOWN = {"md", "markdown"}


@dataclass(frozen=True)
class Caption:
    path: str
    text: str
    source: str
    """Where it came from: `markdown:<note>`, `sidecar`, `exif`, `xmp`, `csv:<file>`, `given`."""



def _clean(text: str) -> str:
    return " ".join(text.replace("\x00", " ").split())


def markdown_captions(note: Path) -> list[tuple[str, str]]:
    """(image path, alt text) of the images a Markdown note embeds; remote images skipped."""
    try:
        text = note.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for alt, bracketed, bare in _MD_IMAGE.findall(text):
        target = unquote(bracketed or bare)  # `my%20photo.jpg` names `my photo.jpg`
        if "://" in target or target.startswith("data:") or not _clean(alt):
            continue
        out.append((str((note.parent / target).resolve()), _clean(alt)))
    return out


def xmp_description(data: bytes) -> str | None:
    """The first `dc:description` of an XMP packet (sidecar file or embedded), if any."""
    found = _XMP_DESCRIPTION.search(data)
    if not found:
        return None
    import html

    text = _clean(html.unescape(found.group(1).decode("utf-8", errors="replace")))
    return text or None


def embedded_caption(path: Path) -> tuple[str, str] | None:
    """(caption, source) from an image's EXIF ImageDescription / XPComment or embedded XMP."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            description = exif.get(_EXIF_DESCRIPTION)
            if isinstance(description, bytes):
                description = description.decode("utf-8", errors="replace")
            if isinstance(description, str) and _clean(description):
                return _clean(description), "exif"
            comment = exif.get(_EXIF_XPCOMMENT)
            if isinstance(comment, (bytes, tuple, list)):
                text = bytes(comment).decode("utf-16-le", errors="replace")
                if _clean(text):
                    return _clean(text), "exif"
            xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8")
            if isinstance(xmp, bytes):
                text = xmp_description(xmp)
                if text:
                    return text, "xmp"
    except (OSError, ValueError, SyntaxError):
        return None
    return None


def sidecar_caption(path: Path) -> tuple[str, str] | None:
    """(caption, source) from `<stem>.txt` or `<stem>.xmp` (or `<name>.xmp`) beside an image."""
    for sidecar in (path.with_suffix(".txt"), path.with_suffix(".xmp"), Path(f"{path}.xmp")):
        try:
            data = sidecar.read_bytes()
        except OSError:
            continue
        if sidecar.suffix == ".txt":
            text = _clean(data.decode("utf-8", errors="replace"))[:1000]
            if text:
                return text, "sidecar"
        else:
            text = xmp_description(data)
            if text:
                return text, "xmp"
    return None


def csv_captions(path: Path) -> list[tuple[str, str]]:
    """(image path, caption) rows of a `path,caption` CSV (header optional); relative paths are
    taken from the CSV's folder.

    Raises:
        QueryError: the file cannot be read or has no such rows.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(f"Cannot read the captions file {path}: {exc}. Give a UTF-8 CSV of path,caption.") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "caption"]:
        rows = rows[1:]
    out = []
    for row in rows:
        if len(row) >= 2 and row[0].strip() and _clean(row[1]):
            out.append((str((path.parent / row[0].strip()).resolve()), _clean(row[1])))
    if not out:
        raise QueryError(f"The captions file {path} has no `path,caption` rows.")
    return out


def harvest_captions(catalog: Catalog, captions_csv: Path | None = None) -> list[Caption]:
    """Every caption the collection has for its indexed images (see the module doc)."""
    images = {
        row[0]: row[1]
        for row in catalog.db.execute("SELECT path, ext FROM items WHERE kind = 'image' AND status = 'ok'")
    }
    found: list[Caption] = []
    notes = [
        row[0]
        for row in catalog.db.execute("SELECT path, ext FROM items WHERE kind = 'text' AND status = 'ok'")
        if row[1] in _MARKDOWN
    ]
    for note in notes:
        for target, alt in markdown_captions(Path(note)):
            path = canonical_path(target)
            if path in images:
                found.append(Caption(path, alt, f"markdown:{note}"))
    for path in images:
        for get in (sidecar_caption, embedded_caption):
            got = get(Path(path))
            if got:
                found.append(Caption(path, got[0], got[1]))
    if captions_csv is not None:
        for target, text in csv_captions(captions_csv):
            path = canonical_path(target)
            if path in images:
                found.append(Caption(path, text, f"csv:{captions_csv}"))
    unique = {(c.path, c.text.lower()): c for c in found}
    return list(unique.values())
