"""The catalog's vectors (float32 blobs, with their time ranges and sources) and region
features: what the vector stores are rebuilt from, and what the reranker reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.encoders.regions import RegionCodes
from mmsearch.store.catalog_connection import CatalogConnection

if TYPE_CHECKING:
    import sqlite_utils


def write_regions(db: sqlite_utils.Database, item_id: int, codes: RegionCodes | None) -> None:
    """Store (or clear, with None) an item's regions; call inside the item's transaction."""
    db.execute("DELETE FROM regions WHERE item_id = ?", [item_id])
    if codes is not None:
        db.execute(
            "INSERT INTO regions(item_id, format, count, width, data) VALUES (?, ?, ?, ?, ?)",
            [item_id, codes.format, codes.count, codes.width, codes.data],
        )



class VectorTables(CatalogConnection):
    """Vectors and regions: reading them for vector indexes, search and reranking."""

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

    def frame_regions(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], RegionCodes]:
        """(video item id, keyframe number) -> that keyframe's regions; keys without are left out."""
        wanted = set(keys)
        sql = (
            "SELECT item_id, frame, format, count, width, data FROM frame_regions WHERE item_id "
            "IN ({marks})"
        )
        return {
            (row[0], row[1]): RegionCodes(row[2], int(row[3]), int(row[4]), bytes(row[5]))
            for row in self._rows_for_ids(sql, sorted({item for item, _ in wanted}))
            if (row[0], row[1]) in wanted
        }

    def source_rows(self, item_ids: Sequence[int], space: str, source: str) -> dict[int, list[tuple[int, np.ndarray]]]:
        """video item id -> (vector id, vector) of its rows of one space and source, in time
        order: the n-th `frame` row of `semantic` is keyframe n (as `frame_regions` numbers them)."""
        out: dict[int, list[tuple[int, np.ndarray]]] = {}
        sql = (
            "SELECT item_id, id, vector FROM vectors WHERE space = ? AND source = ? AND item_id "
            "IN ({marks}) ORDER BY item_id, t_start, chunk"
        )
        for item, vid, blob in self._rows_for_ids(sql, item_ids, [space, source]):
            out.setdefault(int(item), []).append((int(vid), np.frombuffer(blob, dtype=np.float32)))
        return out

    def write_frame_regions(
        self, item_id: int, codes: Sequence[RegionCodes | None], first: int = 0
    ) -> None:
        """Replace a video's keyframes' regions from keyframe number `first` on (a later part
        of a film keeps the earlier parts'); joins the caller's transaction, if any."""
        with self.write():
            self.db.execute(
                "DELETE FROM frame_regions WHERE item_id = ? AND frame >= ?", [item_id, first]
            )
            self.db.conn.executemany(
                "INSERT INTO frame_regions(item_id, frame, format, count, width, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(item_id, n, c.format, c.count, c.width, c.data)
                 for n, c in enumerate(codes, first) if c is not None],
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

    def item_timed_vectors(
        self, item_ids: Sequence[int], space: str
    ) -> dict[int, list[tuple[np.ndarray, str | None, float, float]]]:
        """item id -> its vectors in a space that have a time range (windows of recordings
        and videos), each with its source and (start, end) seconds, in time order."""
        out: dict[int, list[tuple[np.ndarray, str | None, float, float]]] = {}
        sql = (
            "SELECT item_id, vector, source, t_start, t_end FROM vectors WHERE space = ? "
            "AND item_id IN ({marks}) AND t_start IS NOT NULL ORDER BY item_id, t_start"
        )
        for item, blob, source, t0, t1 in self._rows_for_ids(sql, item_ids, [space]):
            out.setdefault(item, []).append(
                (np.frombuffer(blob, dtype=np.float32), source, float(t0), float(t1))
            )
        return out

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

