"""The catalog's items: what it knows of each file, and the writes that keep an item, its vectors
and its text in one transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.ocr import ReadWord
from mmsearch.media.text import unspaced_grams
from mmsearch.store.catalog_connection import CatalogConnection

OK = "ok"
ERROR = "error"


@dataclass(frozen=True)
class ItemRow:
    """What the catalog knows of one file."""

    id: int
    path: str
    kind: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    error: str | None
    indexed_until: float | None = None
    """A film an interrupted run committed in part: the seconds its windows reach (None: all)."""

    @property
    def partial(self) -> bool:
        return self.indexed_until is not None


_ROW = "SELECT id, path, kind, size, mtime_ns, hash, status, error, indexed_until FROM items"


@dataclass(frozen=True)
class ItemFacts:
    """What ingest learned of a file, to be written with its vectors."""

    path: str
    root: str
    kind: str
    size: int
    mtime_ns: int
    hash: str | None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    words: str = ""
    content: str = ""
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    codec: str | None = None
    tags: tuple[tuple[str, float], ...] = ()
    transcript: tuple[tuple[float, float, str], ...] = ()
    read_words: tuple[ReadWord, ...] = ()
    """Text read in an image (OCR), line by line with where it is."""
    frame_rate: float | None = None
    """Videos: frames per second (the container's average)."""
    rotation: int | None = None
    """Videos: degrees the picture turns clockwise for display (`width`/`height` are as shown)."""
    indexed_until: float | None = None
    """A film committed in parts: the seconds its windows reach after this commit while more
    of it is to come (None: the whole file is indexed)."""
    part_start: float | None = None
    """A later part of a film: its windows join those the catalog holds (which reach this far)
    instead of replacing them; its tags and transcript join the earlier parts' too."""


class ItemTables(CatalogConnection):
    """Items: reading them, and writing them with their vectors, tags, transcripts and text."""

    def items_under(self, root: str) -> dict[str, ItemRow]:
        """Every item whose path is `root` or lies below it, keyed by path."""
        prefix = root.rstrip("/") + "/"
        rows = self.db.execute(
            f"{_ROW} WHERE path = ? OR substr(path, 1, ?) = ?",
            [root, len(prefix), prefix],
        )
        return {r[1]: ItemRow(*r) for r in rows}

    def item_by_path(self, path: str) -> ItemRow | None:
        row = self.db.execute(f"{_ROW} WHERE path = ?", [path]).fetchone()
        return ItemRow(*row) if row else None

    def items_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Full rows for the given item ids (for building search hits)."""
        out: dict[int, dict[str, Any]] = {}
        ids = list(ids)
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            part = ids[start : start + 900]
            marks = ",".join("?" * len(part))
            for row in self.db.query(f"SELECT * FROM items WHERE id IN ({marks})", part):
                out[row["id"]] = row
        return out

    def write_item(
        self,
        facts: ItemFacts,
        vectors: dict[str, np.ndarray] | None,
        spans: dict[str, list[tuple[float, float]]] | None = None,
        sources: dict[str, list[str | None]] | None = None,
    ) -> tuple[int, list[int], dict[str, list[int]]]:
        """Insert or replace one successfully encoded item with its vectors, in one transaction.

        `vectors` maps space -> (chunks, dim) array; `spans`, for recordings, space -> the
        (start, end) seconds each chunk covers; `sources`, space -> what made each chunk when
        its scores need calibrating (see `vector_owners`). Returns the item id, the ids of vectors it
        replaced (to remove from vector indexes) and the new vector ids per space.

        A later part of a film (`facts.part_start` set) keeps the vectors held and adds its own
        after them; its tags and transcript join the earlier parts' (see `_after_earlier_parts`).
        """
        with self.write():
            appending = facts.part_start is not None
            if appending:
                facts = self._after_earlier_parts(facts)
            item_id, old = self._upsert_item(facts, status=OK, error=None, keep_vectors=appending)
            held = self._chunks_held(item_id) if appending else {}
            added: dict[str, list[int]] = {}
            for space, rows in (vectors or {}).items():
                rows = np.ascontiguousarray(rows, dtype=np.float32)
                times = (spans or {}).get(space) or [(None, None)] * len(rows)
                made_by = (sources or {}).get(space) or [None] * len(rows)
                ids = []
                first = held.get(space, 0)
                for chunk, (row, (start, end), source) in enumerate(zip(rows, times, made_by), first):
                    cur = self.db.execute(
                        "INSERT INTO vectors(item_id, space, chunk, vector, t_start, t_end, source) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [item_id, space, chunk, row.tobytes(), start, end, source],
                    )
                    ids.append(int(cur.lastrowid or 0))
                added[space] = ids
            self.db.execute("DELETE FROM tags WHERE item_id = ?", [item_id])
            self.db.conn.executemany(
                "INSERT INTO tags(item_id, label, score) VALUES (?, ?, ?)",
                [(item_id, label, float(score)) for label, score in facts.tags],
            )
            self.db.execute("DELETE FROM transcripts WHERE item_id = ?", [item_id])
            self.db.conn.executemany(
                "INSERT INTO transcripts(item_id, t_start, t_end, text) VALUES (?, ?, ?, ?)",
                [(item_id, start, end, text) for start, end, text in facts.transcript],
            )
            self.db.execute("DELETE FROM read_words WHERE item_id = ?", [item_id])
            self.db.execute("DELETE FROM seen_trigrams WHERE rowid = ?", [item_id])
            if facts.read_words:
                self.db.execute(
                    "INSERT INTO seen_trigrams(rowid, seen) VALUES (?, ?)",
                    [item_id, " ".join(w.text for w in facts.read_words)],
                )
            self.db.conn.executemany(
                "INSERT INTO read_words(item_id, text, x0, y0, x1, y1, confidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(item_id, w.text, *w.box, w.confidence) for w in facts.read_words],
            )
            texts = [
                facts.words,
                facts.content,
                " ".join(label for label, _ in facts.tags),
                " ".join(text for _, _, text in facts.transcript),
                " ".join(w.text for w in facts.read_words),
            ]
            self.db.execute("DELETE FROM text_grams WHERE rowid = ?", [item_id])
            grams = unspaced_grams(" ".join(t or "" for t in texts))
            if grams:
                self.db.execute("INSERT INTO text_grams(rowid, grams) VALUES (?, ?)", [item_id, grams])
            self.db.execute(
                "INSERT INTO texts(item_id, words, content, tags, speech, seen) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(item_id) DO UPDATE SET words = excluded.words, "
                "content = excluded.content, tags = excluded.tags, speech = excluded.speech, "
                "seen = excluded.seen",
                [item_id, *texts],
            )
            if old or any(added.values()):
                self._bump_generation()
        return item_id, old, added

    def _after_earlier_parts(self, facts: ItemFacts) -> ItemFacts:
        """A later part's facts with what the earlier parts of the film hold: their transcript
        before its own, each sound label at the best score any part gave it, their words."""
        row = self.db.execute("SELECT id FROM items WHERE path = ?", [facts.path]).fetchone()
        if row is None:
            return facts
        item_id = int(row[0])
        best: dict[str, float] = {}
        for label, score in [
            *self.db.execute("SELECT label, score FROM tags WHERE item_id = ?", [item_id]),
            *facts.tags,
        ]:
            best[label] = max(float(score), best.get(label, float("-inf")))
        said = self.db.execute(
            "SELECT t_start, t_end, text FROM transcripts WHERE item_id = ? ORDER BY t_start",
            [item_id],
        ).fetchall()
        text = self.db.execute("SELECT content FROM texts WHERE item_id = ?", [item_id]).fetchone()
        content = " ".join(part for part in ((text[0] if text else ""), facts.content) if part)
        return replace(
            facts,
            tags=tuple(sorted(best.items(), key=lambda tag: -tag[1])),
            transcript=(*((float(a), float(b), t) for a, b, t in said), *facts.transcript),
            content=content,
        )

    def _chunks_held(self, item_id: int) -> dict[str, int]:
        """Space -> how many vectors the item holds there (a further part numbers on from it)."""
        return {
            space: int(n)
            for space, n in self.db.execute(
                "SELECT space, count(*) FROM vectors WHERE item_id = ? GROUP BY space", [item_id]
            )
        }

    def write_error(self, facts: ItemFacts, reason: str) -> list[int]:
        """Record a file that could not be indexed; drops vectors of an older good version."""
        with self.write():
            item_id, old = self._upsert_item(facts, status=ERROR, error=reason)
            for table in ("texts", "tags", "transcripts", "read_words"):
                self.db.execute(f"DELETE FROM {table} WHERE item_id = ?", [item_id])
            self.db.execute("DELETE FROM seen_trigrams WHERE rowid = ?", [item_id])
            self.db.execute("DELETE FROM text_grams WHERE rowid = ?", [item_id])
            if old:
                self._bump_generation()
        return old

    def _upsert_item(
        self, facts: ItemFacts, *, status: str, error: str | None, keep_vectors: bool = False
    ) -> tuple[int, list[int]]:
        path = Path(facts.path)
        values = {
            "path": facts.path,
            "root": facts.root,
            "folder": str(path.parent),
            "name": path.name,
            "ext": path.suffix.lower().lstrip("."),
            "kind": facts.kind,
            "size": facts.size,
            "mtime_ns": facts.mtime_ns,
            "hash": facts.hash,
            "width": facts.width,
            "height": facts.height,
            "taken_at": facts.taken_at,
            "duration": facts.duration,
            "sample_rate": facts.sample_rate,
            "channels": facts.channels,
            "codec": facts.codec,
            "frame_rate": facts.frame_rate,
            "rotation": facts.rotation,
            "status": status,
            "error": error,
            "indexed_until": facts.indexed_until,
            "indexed_at": time.time(),
        }
        existing = self.db.execute("SELECT id FROM items WHERE path = ?", [facts.path]).fetchone()
        if existing is None:
            cols = ",".join(values)
            cur = self.db.execute(
                f"INSERT INTO items({cols}) VALUES ({','.join('?' * len(values))})",
                list(values.values()),
            )
            return int(cur.lastrowid or 0), []
        item_id = int(existing[0])
        sets = ",".join(f"{c} = ?" for c in values)
        self.db.execute(f"UPDATE items SET {sets} WHERE id = ?", [*values.values(), item_id])
        if keep_vectors:
            return item_id, []
        old = [r[0] for r in self.db.execute("SELECT id FROM vectors WHERE item_id = ?", [item_id])]
        self.db.execute("DELETE FROM vectors WHERE item_id = ?", [item_id])
        return item_id, old

    def touch_many(self, stamps: Sequence[tuple[int, int, int]]) -> None:
        """Files whose content is unchanged but whose stat changed (`touch`, a copy back):
        (item id, size, mtime_ns) rows, re-stamped in one transaction."""
        if not stamps:
            return
        with self.write():
            self.db.conn.executemany(
                "UPDATE items SET size = ?, mtime_ns = ? WHERE id = ?",
                [(size, mtime, item) for item, size, mtime in stamps],
            )

    def move_many(self, moves: Sequence[tuple[int, str, str, int, int, str]]) -> None:
        """Files renamed or moved: keep their vectors, change their paths and file-name words.
        Rows of (item id, new path, root, size, mtime_ns, name words), in one transaction."""
        if not moves:
            return
        with self.write():
            for item_id, new_path, root, size, mtime_ns, words in moves:
                path = Path(new_path)
                self.db.execute(
                    "UPDATE items SET path = ?, root = ?, folder = ?, name = ?, ext = ?, size = ?, "
                    "mtime_ns = ? WHERE id = ?",
                    [new_path, root, str(path.parent), path.name, path.suffix.lower().lstrip("."),
                     size, mtime_ns, item_id],
                )
                self.db.execute("UPDATE texts SET words = ? WHERE item_id = ?", [words, item_id])

    def delete_items(self, item_ids: Sequence[int]) -> list[int]:
        """Delete items with their vectors and text; returns the deleted vector ids."""
        removed: list[int] = []
        if not item_ids:
            return removed
        with self.write():
            for start in range(0, len(item_ids), 900):
                part = list(item_ids[start : start + 900])
                marks = ",".join("?" * len(part))
                removed += [
                    r[0]
                    for r in self.db.execute(
                        f"SELECT id FROM vectors WHERE item_id IN ({marks})", part
                    )
                ]
                self.db.execute(f"DELETE FROM vectors WHERE item_id IN ({marks})", part)
                self.db.execute(f"DELETE FROM texts WHERE item_id IN ({marks})", part)
                self.db.execute(f"DELETE FROM items WHERE id IN ({marks})", part)
            if removed:
                self._bump_generation()
        return removed

