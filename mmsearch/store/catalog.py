"""The SQLite catalog, source of truth of an index: items, their vectors, extracted text (FTS5).

Vectors live here too (as float32 blobs) so every vector index can be rebuilt without
re-encoding, and so one SQLite transaction commits an item together with its vectors: an
interrupted run leaves either both or neither.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np


def _import_sqlite_utils() -> Any:
    """sqlite_utils without pandas: sqlite_utils imports pandas whenever it is installed (for one
    column type, pd.Timestamp, that the catalog never stores), which costs ~0.2-0.5 s of every
    cold search. The block lasts only for this import; a later `import pandas` works as usual."""
    import sys

    blocked = "pandas" not in sys.modules
    if blocked:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail
    try:
        import sqlite_utils
    finally:
        if blocked and sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

from mmsearch.encoders.ocr import ReadWord
from mmsearch.encoders.regions import RegionCodes
from mmsearch.errors import (
    DiskFullError,
    IndexBusyError,
    IndexDamagedError,
    IndexFormatError,
    ReadOnlyIndexError,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6
BUSY_TIMEOUT_MS = 10_000

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


def _create_v1(db: sqlite_utils.Database) -> None:
    db["items"].create(
        {
            "id": int,
            "path": str,
            "root": str,
            "folder": str,
            "name": str,
            "ext": str,
            "kind": str,
            "size": int,
            "mtime_ns": int,
            "hash": str,
            "width": int,
            "height": int,
            "duration": float,
            "taken_at": str,
            "status": str,
            "error": str,
            "indexed_at": float,
        },
        pk="id",
        not_null=["path", "kind", "status"],
    )
    db["items"].create_index(["path"], unique=True)
    db["items"].create_index(["hash"])
    db["items"].create_index(["folder"])
    # AUTOINCREMENT so a vector id is never reused: FAISS indexes key on it.
    db.execute(
        """CREATE TABLE vectors (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
               space TEXT NOT NULL,
               chunk INTEGER NOT NULL DEFAULT 0,
               vector BLOB NOT NULL)"""
    )
    db["vectors"].create_index(["item_id"])
    db["vectors"].create_index(["space", "id"])
    db["texts"].create({"item_id": int, "words": str, "content": str}, pk="item_id")
    db["texts"].enable_fts(["words", "content"], create_triggers=True, tokenize="porter")
    db["roots"].create({"path": str, "added_at": float}, pk="path")
    db["meta"].create({"key": str, "value": str}, pk="key")


def _v1_to_v2(db: sqlite_utils.Database) -> None:
    """Roots can be offline (a drive unmounted), exclusions stick, and roots are normalised
    (older versions stored `/a/b/../c` as typed, which made every run re-add its files)."""
    db.execute("ALTER TABLE roots ADD COLUMN missing_since REAL")
    db["excludes"].create({"pattern": str, "added_at": float}, pk="pattern")
    for (root,) in db.execute("SELECT path FROM roots").fetchall():
        clean = os.path.normpath(root)
        if clean != root:
            db.execute("DELETE FROM roots WHERE path = ?", [root])
            db.execute(
                "INSERT OR IGNORE INTO roots(path, added_at) VALUES (?, ?)", [clean, time.time()]
            )


def _v2_to_v3(db: sqlite_utils.Database) -> None:
    """Audio: clip facts on items, time ranges on vectors, sound tags and transcripts (both
    searchable by keyword)."""
    for column, kind in (("sample_rate", "INTEGER"), ("channels", "INTEGER"), ("codec", "TEXT")):
        db.execute(f"ALTER TABLE items ADD COLUMN {column} {kind}")
    db.execute("ALTER TABLE vectors ADD COLUMN t_start REAL")
    db.execute("ALTER TABLE vectors ADD COLUMN t_end REAL")
    # What made a vector when that changes its score scale (e.g. "audio-bridge"); NULL otherwise.
    db.execute("ALTER TABLE vectors ADD COLUMN source TEXT")
    db.execute(
        "CREATE TABLE tags (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE, "
        "label TEXT NOT NULL, score REAL NOT NULL)"
    )
    db.execute("CREATE INDEX tags_item ON tags(item_id)")
    db.execute(
        "CREATE TABLE transcripts (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE "
        "CASCADE, t_start REAL NOT NULL, t_end REAL NOT NULL, text TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX transcripts_item ON transcripts(item_id)")
    db["texts"].disable_fts()
    db.execute("ALTER TABLE texts ADD COLUMN tags TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE texts ADD COLUMN speech TEXT NOT NULL DEFAULT ''")
    db["texts"].enable_fts(
        ["words", "content", "tags", "speech"], create_triggers=True, tokenize="porter", replace=True
    )


def _v3_to_v4(db: sqlite_utils.Database) -> None:
    """Text read in images (OCR): lines with their boxes, and their words searchable by keyword."""
    db.execute(
        "CREATE TABLE read_words (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE "
        "CASCADE, text TEXT NOT NULL, x0 REAL, y0 REAL, x1 REAL, y1 REAL, confidence REAL)"
    )
    db.execute("CREATE INDEX read_words_item ON read_words(item_id)")
    # Text read in images often runs words together ("multimodalsearch"): a trigram index of it
    # finds a word inside such a run. Kept by write_item; a trigger drops removed items.
    db.execute("CREATE VIRTUAL TABLE seen_trigrams USING fts5(seen, tokenize='trigram')")
    db.execute(
        "CREATE TRIGGER seen_trigrams_forget AFTER DELETE ON items BEGIN "
        "DELETE FROM seen_trigrams WHERE rowid = old.id; END"
    )
    db["texts"].disable_fts()
    db.execute("ALTER TABLE texts ADD COLUMN seen TEXT NOT NULL DEFAULT ''")
    db["texts"].enable_fts(
        ["words", "content", "tags", "speech", "seen"],
        create_triggers=True,
        tokenize="porter",
        replace=True,
    )


# -- region features (reranker) ------------------------------------------------------------


def _v4_to_v5(db: sqlite_utils.Database) -> None:
    """What each region of an image shows (`encoders/regions.py`), for the reranker. Items
    indexed before have none: the reranker leaves them where the first stage put them."""
    db.execute(
        "CREATE TABLE regions (item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE "
        "CASCADE, format TEXT NOT NULL, count INTEGER NOT NULL, width INTEGER NOT NULL, "
        "data BLOB NOT NULL)"
    )


def write_regions(db: sqlite_utils.Database, item_id: int, codes: RegionCodes | None) -> None:
    """Store (or clear, with None) an item's regions; call inside the item's transaction."""
    db.execute("DELETE FROM regions WHERE item_id = ?", [item_id])
    if codes is not None:
        db.execute(
            "INSERT INTO regions(item_id, format, count, width, data) VALUES (?, ?, ?, ?, ?)",
            [item_id, codes.format, codes.count, codes.width, codes.data],
        )


# -- end of region features ------------------------------------------------------------------


def _v5_to_v6(db: sqlite_utils.Database) -> None:
    """Videos: frame rate and display rotation (size, length, date and codecs use the columns
    images and recordings have)."""
    db.execute("ALTER TABLE items ADD COLUMN frame_rate REAL")
    db.execute("ALTER TABLE items ADD COLUMN rotation INTEGER")
    # Per keyframe, what its regions show (as `regions` for an image), for the reranker.
    db.execute(
        "CREATE TABLE frame_regions (item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE "
        "CASCADE, frame INTEGER NOT NULL, format TEXT NOT NULL, count INTEGER NOT NULL, "
        "width INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (item_id, frame))"
    )


# MIGRATIONS[n] brings a catalog from schema version n to n + 1.
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    0: _create_v1,
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
}


@dataclass(frozen=True)
class RootRow:
    """An indexed folder; `missing_since` is set while it is offline (unmounted, renamed)."""

    path: str
    missing_since: float | None


def _sqlite_message(exc: sqlite3.Error) -> str:
    return str(exc).lower()


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """SQLite's errors as mmsearch's typed ones, each naming the catalog and what to do."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        message = _sqlite_message(exc)
        if "locked" in message or "busy" in message:
            raise IndexBusyError(
                f"The index at {path.parent} is busy (another process holds the catalog); "
                "try again when it has finished."
            ) from exc
        if "disk is full" in message or "disk i/o" in message and _disk_full(path):
            raise DiskFullError(
                f"The disk holding {path.parent} is full; nothing committed was lost. Free some "
                "space and run the same command again to resume."
            ) from exc
        if "readonly" in message or "read-only" in message:
            raise ReadOnlyIndexError(
                f"The index at {path.parent} is read-only (read-only media, or opened for "
                "searching only); it can be searched but not changed."
            ) from exc
        if "unable to open" in message:
            raise IndexDamagedError(
                f"The catalog {path} cannot be opened ({exc}); check the folder's permissions "
                "and that its drive is mounted."
            ) from exc
        raise IndexDamagedError(f"The catalog {path} failed: {exc}. {_RECOVER}") from exc
    except sqlite3.DatabaseError as exc:  # malformed pages, "file is not a database"
        raise IndexDamagedError(f"The catalog {path} is damaged ({exc}). {_RECOVER}") from exc


_RECOVER = (
    "Run `mmsearch doctor` for details; restore the index folder from a backup, or move it away "
    "and index again."
)


def _disk_full(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk raises (OS writes, SQLite, FAISS's C++ writer)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left" in text or "disk is full" in text or "quota exceeded" in text


class Catalog:
    """Typed access to the catalog database.

    Safe to share between threads: each thread gets its own SQLite connection (WAL lets readers
    run beside the one writer), and writes take SQLite's write lock up front (`BEGIN IMMEDIATE`)
    so two writers wait for each other instead of failing with "database is locked".
    A read-only catalog (`readonly=True`) never writes, not even a journal file.
    """

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        self._connections: list[sqlite_utils.Database] = []
        self._connections_lock = threading.Lock()
        self._immutable = False
        with translate_errors(self.path):
            db = self.db
            if readonly:
                try:
                    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError:
                    # On read-only media SQLite cannot create the WAL index (-shm) it needs to
                    # read; nothing can write there either, so the file is immutable.
                    self.close()
                    self._immutable = True
                    self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                self._check_version()
            else:
                self._enable_wal()
                self._migrate()

    def _enable_wal(self) -> None:
        """Switch a new catalog to WAL, waiting for other processes that opened it meanwhile.

        The switch needs the file to itself. While another connection holds the write lock,
        SQLite refuses it at once instead of calling the busy handler (two connections upgrading
        their locks could wait for each other forever), so a second run creating the same index
        failed with "database is locked". Wait here instead, as long as `busy_timeout` would,
        re-reading the mode: the other run may have switched it already."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                self.db.enable_wal()
            except sqlite3.OperationalError as exc:
                if "locked" not in _sqlite_message(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    # -- connections --------------------------------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self._connect())
            with self._connections_lock:
                self._connections.append(db)
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            mode = "immutable=1" if self._immutable else "mode=ro"
            uri = f"file:{quote(str(self.path.absolute()))}?{mode}"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(self.path), check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction (nested calls join the outer one), holding SQLite's write lock
        from the start so it never has to upgrade a read lock (which cannot wait, only fail)."""
        if self.readonly:
            raise ReadOnlyIndexError(f"The catalog {self.path} is open read-only.")
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        else:
            try:
                db.conn.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _check_version(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise IndexFormatError(
                f"{self.path} was written by a newer mmsearch (catalog schema {version}, this "
                f"version reads up to {SCHEMA_VERSION}). Upgrade mmsearch to open it."
            )
        if self.readonly and version < SCHEMA_VERSION:
            raise IndexFormatError(
                f"{self.path} was written by an older mmsearch (catalog schema {version}) and "
                "must be upgraded before it can be read; run `mmsearch index` once on it."
            )

    def _migrate(self) -> None:
        self._check_version()
        while self.schema_version() < SCHEMA_VERSION:
            with self.write():
                # Re-read under the write lock: another process may have migrated meanwhile.
                version = self.schema_version()
                if version >= SCHEMA_VERSION:
                    break
                MIGRATIONS[version](self.db)
                self.set_meta("schema_version", str(version + 1))
            log.info("catalog %s migrated to schema %d", self.path, version + 1)

    def claim_meta(self, key: str, value: str) -> str:
        """Store `value` under `key` unless a value is there already; return the stored one.
        Atomic across processes, so two runs creating one index agree on what it is."""
        with self.write():
            self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", [key, value])
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return str(row[0])

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.write():
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    def generation(self) -> int:
        """A counter bumped by every committed change to vectors; vector indexes record it."""
        return int(self.get_meta("generation", "0") or 0)

    def _bump_generation(self) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def integrity_problems(self) -> list[str]:
        """SQLite's full `PRAGMA integrity_check`, plus the FTS index's own check."""
        rows = [r[0] for r in self.db.execute("PRAGMA integrity_check").fetchall()]
        problems = [r for r in rows if r != "ok"]
        try:
            self.db.execute("INSERT INTO texts_fts(texts_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            if not self.readonly:
                problems.append(f"full-text index: {exc}")
        return problems

    def rebuild_fts(self) -> None:
        with self.write():
            self.db.execute("INSERT INTO texts_fts(texts_fts) VALUES ('rebuild')")
            self.db.execute("DELETE FROM seen_trigrams")
            self.db.execute(
                "INSERT INTO seen_trigrams(rowid, seen) SELECT item_id, seen FROM texts "
                "WHERE seen != ''"
            )

    # -- roots and exclusions -----------------------------------------------------------------

    def add_roots(self, roots: Iterable[str]) -> None:
        with self.write():
            for root in roots:
                self.db.execute(
                    "INSERT OR IGNORE INTO roots(path, added_at) VALUES (?, ?)", [root, time.time()]
                )

    def roots(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM roots ORDER BY path")]

    def root_rows(self) -> list[RootRow]:
        return [
            RootRow(r[0], r[1])
            for r in self.db.execute("SELECT path, missing_since FROM roots ORDER BY path")
        ]

    def set_root_missing(self, root: str, missing: bool) -> None:
        """Mark a root offline (keeping its items) or back online."""
        with self.write():
            if missing:
                self.db.execute(
                    "UPDATE roots SET missing_since = coalesce(missing_since, ?) WHERE path = ?",
                    [time.time(), root],
                )
            else:
                self.db.execute("UPDATE roots SET missing_since = NULL WHERE path = ?", [root])

    def remove_root(self, root: str) -> None:
        with self.write():
            self.db.execute("DELETE FROM roots WHERE path = ?", [root])

    def exclusions(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT pattern FROM excludes ORDER BY pattern")]

    def add_exclusions(self, patterns: Iterable[str]) -> None:
        with self.write():
            for pattern in patterns:
                self.db.execute(
                    "INSERT OR IGNORE INTO excludes(pattern, added_at) VALUES (?, ?)",
                    [pattern, time.time()],
                )

    def remove_exclusions(self, patterns: Iterable[str]) -> int:
        removed = 0
        with self.write():
            for pattern in patterns:
                cur = self.db.execute("DELETE FROM excludes WHERE pattern = ?", [pattern])
                removed += cur.rowcount
        return removed

    def count_under(self, root: str) -> int:
        prefix = root.rstrip("/") + "/"
        row = self.db.execute(
            "SELECT count(*) FROM items WHERE path = ? OR substr(path, 1, ?) = ?",
            [root, len(prefix), prefix],
        ).fetchone()
        return int(row[0])

    # -- items --------------------------------------------------------------------------------

    def items_under(self, root: str) -> dict[str, ItemRow]:
        """Every item whose path is `root` or lies below it, keyed by path."""
        prefix = root.rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT id, path, kind, size, mtime_ns, hash, status, error FROM items "
            "WHERE path = ? OR substr(path, 1, ?) = ?",
            [root, len(prefix), prefix],
        )
        return {r[1]: ItemRow(*r) for r in rows}

    def item_by_path(self, path: str) -> ItemRow | None:
        row = self.db.execute(
            "SELECT id, path, kind, size, mtime_ns, hash, status, error FROM items WHERE path = ?",
            [path],
        ).fetchone()
        return ItemRow(*row) if row else None

    def _rows_for_ids(
        self, sql: str, ids: Sequence[int], params: Sequence[Any] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql` (whose `{marks}` is filled with one `?` per id, after `params`) for
        many ids, in batches under SQLite's bound-parameter limit."""
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            yield from self.db.execute(sql.format(marks=",".join("?" * len(part))), [*params, *part])

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
        """
        with self.write():
            item_id, old = self._upsert_item(facts, status=OK, error=None)
            added: dict[str, list[int]] = {}
            for space, rows in (vectors or {}).items():
                rows = np.ascontiguousarray(rows, dtype=np.float32)
                times = (spans or {}).get(space) or [(None, None)] * len(rows)
                made_by = (sources or {}).get(space) or [None] * len(rows)
                ids = []
                for chunk, (row, (start, end), source) in enumerate(zip(rows, times, made_by)):
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
            self.db.execute(
                "INSERT INTO texts(item_id, words, content, tags, speech, seen) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(item_id) DO UPDATE SET words = excluded.words, "
                "content = excluded.content, tags = excluded.tags, speech = excluded.speech, "
                "seen = excluded.seen",
                [
                    item_id,
                    facts.words,
                    facts.content,
                    " ".join(label for label, _ in facts.tags),
                    " ".join(text for _, _, text in facts.transcript),
                    " ".join(w.text for w in facts.read_words),
                ],
            )
            if old or any(added.values()):
                self._bump_generation()
        return item_id, old, added

    def write_error(self, facts: ItemFacts, reason: str) -> list[int]:
        """Record a file that could not be indexed; drops vectors of an older good version."""
        with self.write():
            item_id, old = self._upsert_item(facts, status=ERROR, error=reason)
            for table in ("texts", "tags", "transcripts", "read_words"):
                self.db.execute(f"DELETE FROM {table} WHERE item_id = ?", [item_id])
            self.db.execute("DELETE FROM seen_trigrams WHERE rowid = ?", [item_id])
            if old:
                self._bump_generation()
        return old

    def _upsert_item(self, facts: ItemFacts, *, status: str, error: str | None) -> tuple[int, list[int]]:
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

    # -- vectors ------------------------------------------------------------------------------

    def iter_vectors(
        self, space: str, dim: int, batch: int = 50_000, start_after: int = -1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The vectors of a space in id order, as (ids int64, vectors float32) blocks; with
        `start_after`, only those committed after that vector id (ids only grow)."""
        last = start_after
        while True:
            rows = self.db.execute(
                "SELECT id, vector FROM vectors WHERE space = ? AND id > ? ORDER BY id LIMIT ?",
                [space, last, batch],
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
            yield ids, vecs
            last = int(ids[-1])

    def item_vector_rows(
        self, item_ids: Sequence[int], space: str
    ) -> dict[int, list[tuple[np.ndarray, str | None]]]:
        """item id -> its vectors in a space, in chunk order, each with what made it (see
        `vector_owners`); items without any are left out."""
        out: dict[int, list[tuple[np.ndarray, str | None]]] = {}
        sql = (
            "SELECT item_id, vector, source FROM vectors WHERE space = ? AND item_id IN ({marks}) "
            "ORDER BY item_id, chunk"
        )
        for item, blob, source in self._rows_for_ids(sql, item_ids, [space]):
            out.setdefault(item, []).append((np.frombuffer(blob, dtype=np.float32), source))
        return out

    def item_vectors(self, item_ids: Sequence[int], space: str) -> dict[int, np.ndarray]:
        """item id -> its vectors in a space, (chunks, dim); items without any are left out."""
        return {
            item: np.stack([vector for vector, _ in rows])
            for item, rows in self.item_vector_rows(item_ids, space).items()
        }

    def item_vector_ids(self, item_ids: Sequence[int], space: str) -> dict[int, list[int]]:
        """item id -> the ids of its vectors in a space, in chunk order; items without any are
        left out."""
        out: dict[int, list[int]] = {}
        sql = "SELECT item_id, id FROM vectors WHERE space = ? AND item_id IN ({marks}) ORDER BY item_id, chunk"
        for item, vid in self._rows_for_ids(sql, item_ids, [space]):
            out.setdefault(int(item), []).append(int(vid))
        return out

    def vectors_by_id(self, vector_ids: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 vectors) of those of `vector_ids` the catalog holds (deleted ones are
        left out), for re-scoring a quantised index's candidates exactly."""
        rows = list(self._rows_for_ids("SELECT id, vector FROM vectors WHERE id IN ({marks})", vector_ids))
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
        return ids, vecs

    def item_regions(self, item_ids: Sequence[int]) -> dict[int, RegionCodes]:
        """item id -> its stored regions (see `encoders/regions.py`); items without are left out."""
        sql = "SELECT item_id, format, count, width, data FROM regions WHERE item_id IN ({marks})"
        return {
            row[0]: RegionCodes(row[1], int(row[2]), int(row[3]), bytes(row[4]))
            for row in self._rows_for_ids(sql, item_ids, [])
        }

    def item_frame_regions(self, item_ids: Sequence[int]) -> dict[int, list[RegionCodes]]:
        """item id -> its keyframes' regions in order (videos); items without are left out."""
        sql = (
            "SELECT item_id, format, count, width, data FROM frame_regions WHERE item_id IN "
            "({marks}) ORDER BY item_id, frame"
        )
        out: dict[int, list[RegionCodes]] = {}
        for row in self._rows_for_ids(sql, item_ids, []):
            out.setdefault(row[0], []).append(RegionCodes(row[1], int(row[2]), int(row[3]), bytes(row[4])))
        return out

    def write_frame_regions(self, item_id: int, codes: Sequence[RegionCodes | None]) -> None:
        """Replace a video's keyframes' regions (joins the caller's transaction, if any)."""
        with self.write():
            self.db.execute("DELETE FROM frame_regions WHERE item_id = ?", [item_id])
            self.db.conn.executemany(
                "INSERT INTO frame_regions(item_id, frame, format, count, width, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(item_id, n, c.format, c.count, c.width, c.data) for n, c in enumerate(codes) if c is not None],
            )

    def write_regions(self, item_id: int, codes: RegionCodes | None) -> None:
        """Store or clear one item's regions (joins the caller's transaction, if any)."""
        with self.write():
            write_regions(self.db, item_id, codes)

    def max_vector_id(self, space: str) -> int:
        row = self.db.execute("SELECT max(id) FROM vectors WHERE space = ?", [space]).fetchone()
        return int(row[0] or 0)

    def vector_ids(self, space: str) -> np.ndarray:
        rows = self.db.execute("SELECT id FROM vectors WHERE space = ? ORDER BY id", [space])
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def vector_spans(self, vector_ids: Sequence[int]) -> dict[int, tuple[float, float]]:
        """vector id -> (start, end) seconds, for vectors of recordings."""
        sql = "SELECT id, t_start, t_end FROM vectors WHERE id IN ({marks}) AND t_start IS NOT NULL"
        return {vid: (float(t0), float(t1)) for vid, t0, t1 in self._rows_for_ids(sql, vector_ids)}

    def audio_details(self, item_id: int) -> tuple[list[tuple[str, float]], list[tuple[float, float, str]]]:
        """A recording's sound tags (best first) and transcript segments (in order)."""
        tags = [
            (r[0], float(r[1]))
            for r in self.db.execute(
                "SELECT label, score FROM tags WHERE item_id = ? ORDER BY score DESC", [item_id]
            )
        ]
        transcript = [
            (float(r[0]), float(r[1]), r[2])
            for r in self.db.execute(
                "SELECT t_start, t_end, text FROM transcripts WHERE item_id = ? ORDER BY t_start",
                [item_id],
            )
        ]
        return tags, transcript

    def item_spans(self, item_id: int, space: str, source: str) -> list[tuple[float, float]]:
        """The time ranges of an item's vectors of one space and source, in order (a video's
        keyframes: `semantic` rows made from frames)."""
        return [
            (float(r[0]), float(r[1]))
            for r in self.db.execute(
                "SELECT t_start, t_end FROM vectors WHERE item_id = ? AND space = ? AND source = ? "
                "ORDER BY t_start",
                [item_id, space, source],
            )
        ]

    def read_words(self, item_id: int) -> list[ReadWord]:
        """The text read in an image, top to bottom."""
        return [
            ReadWord(r[0], (r[1], r[2], r[3], r[4]), r[5])
            for r in self.db.execute(
                "SELECT text, x0, y0, x1, y1, confidence FROM read_words WHERE item_id = ? "
                "ORDER BY y0, x0",
                [item_id],
            )
        ]

    def vector_count(self, space: str) -> int:
        return int(self.db.execute("SELECT count(*) FROM vectors WHERE space = ?", [space]).fetchone()[0])

    def vector_owners(self, vector_ids: Sequence[int]) -> dict[int, tuple[int, str, str | None]]:
        """vector id -> (item id, item kind, what made the vector when an encoder named it):
        what a score needs to be calibrated (`mmsearch.query.calibration.scale_key`)."""
        sql = (
            "SELECT v.id, v.item_id, i.kind, v.source FROM vectors v JOIN items i "
            "ON i.id = v.item_id WHERE v.id IN ({marks})"
        )
        return {
            vid: (iid, kind, source)
            for vid, iid, kind, source in self._rows_for_ids(sql, vector_ids)
        }

    def vector_ids_where(self, space: str, where: str, params: Sequence[Any]) -> np.ndarray:
        """Ids of the vectors of `space` whose item matches an SQL condition on `items`."""
        rows = self.db.execute(
            f"SELECT v.id FROM vectors v JOIN items i ON i.id = v.item_id "
            f"WHERE v.space = ? AND ({where})",
            [space, *params],
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    # -- text search --------------------------------------------------------------------------

    def keyword_search(
        self,
        expression: str,
        limit: int,
        where: tuple[str, Sequence[Any]] | None = None,
        *,
        inside_read_text: str | None = None,
    ) -> list[int]:
        """Items matching an FTS5 `expression` (built by `mmsearch.query.keywords`) over their
        name words and extracted text, best (BM25) first, optionally restricted by an SQL
        condition on `items i`; then, with `inside_read_text` (an expression of words of 3 or
        more letters), items whose text read in images holds those words anywhere, even run
        together with others."""
        condition, params = where or ("1", [])
        rows = self.db.execute(
            "SELECT f.rowid FROM texts_fts f JOIN items i ON i.id = f.rowid "
            f"WHERE texts_fts MATCH ? AND i.status = 'ok' AND ({condition}) "
            "ORDER BY f.rank LIMIT ?",
            [expression, *params, limit],
        )
        found = [int(r[0]) for r in rows]
        if inside_read_text and len(found) < limit:
            more = self.db.execute(
                "SELECT f.rowid FROM seen_trigrams f JOIN items i ON i.id = f.rowid "
                f"WHERE seen_trigrams MATCH ? AND i.status = 'ok' AND ({condition}) "
                "ORDER BY f.rank LIMIT ?",
                [inside_read_text, *params, limit],
            )
            known = set(found)
            found += [int(r[0]) for r in more if int(r[0]) not in known][: limit - len(found)]
        return found

    # -- reporting ----------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """{status: {kind: count}}."""
        out: dict[str, dict[str, int]] = {}
        for status, kind, n in self.db.execute(
            "SELECT status, kind, count(*) FROM items GROUP BY status, kind"
        ):
            out.setdefault(status, {})[kind] = n
        return out

    def total_bytes(self) -> int:
        row = self.db.execute("SELECT coalesce(sum(size), 0) FROM items WHERE status = 'ok'").fetchone()
        return int(row[0])

    def errors(self) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT path, error FROM items WHERE status = 'error' ORDER BY path"
            )
        ]
