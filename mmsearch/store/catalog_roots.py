"""The catalog's roots (indexed folders, online or not) and exclusions, and the counts that
report what the index holds."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from mmsearch.store.catalog_connection import CatalogConnection


@dataclass(frozen=True)
class RootRow:
    """An indexed folder; `missing_since` is set while it is offline (unmounted, renamed)."""

    path: str
    missing_since: float | None


class RootTables(CatalogConnection):
    """Roots, exclusions and reporting counts."""

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

    def partial_items(self) -> list[tuple[str, float, float | None]]:
        """Films committed in part: (path, seconds indexed, length), by path."""
        return [
            (r[0], float(r[1]), r[2])
            for r in self.db.execute(
                "SELECT path, indexed_until, duration FROM items WHERE indexed_until IS NOT NULL "
                "ORDER BY path"
            )
        ]

    def errors(self) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT path, error FROM items WHERE status = 'error' ORDER BY path"
            )
        ]
