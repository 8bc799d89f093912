"""The catalog's connections: one SQLite connection per thread, write transactions, the schema
version and the meta table. The catalog's table groups (`catalog.Catalog`) build on it."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mmsearch.errors import IndexFormatError, ReadOnlyIndexError
from mmsearch.store.catalog_errors import sqlite_message, translate_errors
from mmsearch.store.catalog_schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


def _import_sqlite_utils() -> Any:
    """sqlite_utils without pandas: sqlite_utils imports pandas whenever it is installed (for one
    column type, pd.Timestamp, that the catalog never stores), which costs ~0.2-0.5 s of every
    cold search. The block lasts only for this import; a later `import pandas` works as usual."""
    import sys

    if "sqlite_utils" in sys.modules:  # imported already: no window where pandas is blocked
        return sys.modules["sqlite_utils"]
    blocked = "pandas" not in sys.modules
    if blocked:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail
    try:
        import sqlite_utils
    finally:
        if blocked and sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
    return sqlite_utils


class ReadDatabase:
    """A read-only connection with the part of `sqlite_utils.Database` that reading uses.

    A search opens the catalog read-only and only reads it; importing sqlite_utils for that
    was ~25 ms of a ~360 ms cold search (ARCHITECTURE.md, "The CLI's cold path"). Writable
    catalogs (creating, migrating, indexing) use sqlite_utils itself."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> sqlite3.Cursor:
        was_in_transaction = self.conn.in_transaction
        try:
            return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)
        except Exception:
            # A refused write (the doctor's FTS check) leaves the transaction sqlite3 opened for
            # it, which would pin every later read to this snapshot: end it, as sqlite_utils does.
            if not was_in_transaction and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        """Rows as dicts of column name to value."""
        cursor = self.execute(sql, params)
        keys = [d[0] for d in cursor.description]
        return (dict(zip(keys, row)) for row in cursor)

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def close(self) -> None:
        self.conn.close()


class CatalogConnection:
    """The connections to a catalog database, shared by its table groups (see `Catalog`)."""

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        self._connections: list[sqlite_utils.Database | ReadDatabase] = []
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
                if "locked" not in sqlite_message(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    # -- connections --------------------------------------------------------------------------

    @property
    def db(self) -> Any:
        """This thread's connection: a `sqlite_utils.Database`, or a `ReadDatabase` when the
        catalog is open read-only."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = self._connect()
            db = ReadDatabase(conn) if self.readonly else _import_sqlite_utils().Database(conn)
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


    def _rows_for_ids(
        self, sql: str, ids: Sequence[int], params: Sequence[Any] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql` (whose `{marks}` is filled with one `?` per id, after `params`) for
        many ids, in batches under SQLite's bound-parameter limit."""
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            yield from self.db.execute(sql.format(marks=",".join("?" * len(part))), [*params, *part])
