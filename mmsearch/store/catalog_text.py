"""The catalog's text: keyword search over the full-text tables, their rebuild, and the text an
item holds (sound tags, transcript, text read in an image)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmsearch.encoders.ocr import ReadWord
from mmsearch.store.catalog_connection import CatalogConnection
from mmsearch.store.catalog_schema import fill_text_grams


class TextTables(CatalogConnection):
    """Text: keyword search, the full-text indexes, an item's tags, transcript and read words."""

    def keyword_search(
        self,
        expression: str,
        limit: int,
        where: tuple[str, Sequence[Any]] | None = None,
        *,
        inside_read_text: str | None = None,
        unspaced: str | None = None,
    ) -> list[int]:
        """Items matching an FTS5 `expression` (built by `mmsearch.query.keywords`) over their
        name words and extracted text, best (BM25) first, optionally restricted by an SQL
        condition on `items i`; then, with `inside_read_text` (an expression of words of 3 or
        more letters), items whose text read in images holds those words anywhere, even run
        together with others; then, with `unspaced` (an expression of characters and character
        pairs, `query.keywords.unspaced_expression`), items whose Chinese, Japanese or Thai
        text holds them."""
        condition, params = where or ("1", [])
        rows = self.db.execute(
            "SELECT f.rowid FROM texts_fts f JOIN items i ON i.id = f.rowid "
            f"WHERE texts_fts MATCH ? AND i.status = 'ok' AND ({condition}) "
            "ORDER BY f.rank LIMIT ?",
            [expression, *params, limit],
        )
        found = [int(r[0]) for r in rows]
        # Then the tables for words inside run-together text, each only while room is left.
        for table, more_expression in (("seen_trigrams", inside_read_text), ("text_grams", unspaced)):
            if more_expression and len(found) < limit:
                more = self.db.execute(
                    f"SELECT f.rowid FROM {table} f JOIN items i ON i.id = f.rowid "
                    f"WHERE {table} MATCH ? AND i.status = 'ok' AND ({condition}) "
                    "ORDER BY f.rank LIMIT ?",
                    [more_expression, *params, limit],
                )
                known = set(found)
                found += [int(r[0]) for r in more if int(r[0]) not in known][: limit - len(found)]
        return found

    def rebuild_fts(self) -> None:
        with self.write():
            self.db.execute("INSERT INTO texts_fts(texts_fts) VALUES ('rebuild')")
            self.db.execute("DELETE FROM seen_trigrams")
            self.db.execute(
                "INSERT INTO seen_trigrams(rowid, seen) SELECT item_id, seen FROM texts "
                "WHERE seen != ''"
            )
            self.db.execute("DELETE FROM text_grams")
            fill_text_grams(self.db)

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

