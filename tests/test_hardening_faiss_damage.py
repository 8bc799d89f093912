"""A vector file damaged in place, with its size and modification time kept (a bad sector, a
bit flip, a tool that restores times): the next open notices it and rebuilds that space from the
catalog, so searches never answer from damaged vectors."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from mmsearch import Library


def swap_vectors_in_place(path: Path, a: int, b: int) -> None:
    """Swap the bytes of the vectors with ids `a` and `b` inside the FAISS file (an exact index:
    the floats are stored as they are); size and times kept."""
    stat = path.stat()
    index = faiss.read_index(str(path))
    data = bytearray(path.read_bytes())
    rows = [index.reconstruct(int(i)).astype(np.float32).tobytes() for i in (a, b)]
    where = [data.find(row) for row in rows]
    assert -1 not in where and where[0] != where[1]
    size = len(rows[0])
    data[where[0] : where[0] + size], data[where[1] : where[1] + size] = rows[1], rows[0]
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


@pytest.mark.parametrize("readonly", [True, False])
def test_a_vector_file_damaged_in_place_is_rebuilt_not_believed(
    tmp_path: Path, media: Path, readonly: bool, caplog: pytest.LogCaptureFixture
) -> None:
    index = tmp_path / "idx"
    red, blue = media / "red.png", media / "photos" / "blue.jpg"
    with Library.open(index, model="hash-test") as lib:
        lib.index([media])
        assert lib.search(image=[str(red)], k=1)[0].path == str(red)
    visual = index / "visual.faiss"
    with Library.open(index, readonly=True) as lib:
        catalog = lib._catalog  # the test reaches below the API to find the rows to damage
        items = {p: catalog.item_by_path(str(p)).id for p in (red, blue)}
        vid = {p: catalog.item_vector_ids([items[p]], "visual")[items[p]][0] for p in (red, blue)}
    swap_vectors_in_place(visual, vid[red], vid[blue])

    with caplog.at_level(logging.WARNING), Library.open(index, readonly=readonly) as lib:
        hits = lib.search(image=[str(red)], k=2)
    assert hits[0].path == str(red)  # the damaged file would have answered blue.jpg first
    assert any("visual" in r.getMessage() and "checksum" in r.getMessage() for r in caplog.records)
    if not readonly:  # a writer saves the rebuilt file: the next open finds it sound
        entry = json.loads((index / "manifest.json").read_text())["spaces"]["visual"]
        assert entry["xxh3"] and entry["size"] == visual.stat().st_size
        with Library.open(index, readonly=True) as lib:
            assert lib.search(image=[str(red)], k=1)[0].path == str(red)
