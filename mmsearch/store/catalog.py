"""The SQLite catalog, source of truth of an index: items, their vectors, extracted text (FTS5).

Vectors live here too (as float32 blobs) so every vector index can be rebuilt without
re-encoding, and so one SQLite transaction commits an item together with its vectors: an
interrupted run leaves either both or neither.
"""

from __future__ import annotations

from mmsearch.store.catalog_items import ItemTables
from mmsearch.store.catalog_roots import RootTables
from mmsearch.store.catalog_text import TextTables
from mmsearch.store.catalog_vectors import VectorTables


class Catalog(ItemTables, VectorTables, TextTables, RootTables):
    """Typed access to the catalog database.

    Safe to share between threads: each thread gets its own SQLite connection (WAL lets readers
    run beside the one writer), and writes take SQLite's write lock up front (`BEGIN IMMEDIATE`)
    so two writers wait for each other instead of failing with "database is locked".
    A read-only catalog (`readonly=True`) never writes, not even a journal file.

    Its table groups are the bases: items (`catalog_items`), vectors and regions
    (`catalog_vectors`), text (`catalog_text`), roots and counts (`catalog_roots`), all on one
    set of connections (`catalog_connection`).
    """
