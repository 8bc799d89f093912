"""The public Python API end to end, on real SQLite and FAISS files, with the deterministic model."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import COLOURS, make_image

from mmsearch import (
    IndexNotFoundError,
    Library,
    MediaError,
    MmsearchError,
    ModelMismatchError,
    NotIndexedError,
    QueryError,
    UnknownModelError,
)
from mmsearch.config import Settings

MODEL = "hash-test"


def open_lib(tmp_path: Path, **settings: object) -> Library:
    return Library.open(tmp_path / "index", model=MODEL, settings=Settings(**settings))


def names(hits: list) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_text_query_finds_the_matching_image_and_document_first(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        report = lib.index([media])
        assert (report.added, report.failed, report.encoded) == (6, 1, 6)
        assert names(lib.search("red"))[0] == "red.png"
        assert names(lib.search("blue"))[0] == "blue.jpg"
        hits = lib.search("bake bread with flour")
        assert names(hits)[0] == "bread.md"
        assert hits[0].kind == "text"
        assert 0 < hits[0].score <= 1.0


def test_example_image_finds_its_near_duplicate_first(tmp_path: Path, media: Path) -> None:
    probe = make_image(tmp_path / "probe" / "copy.png", COLOURS["green"], size=(96, 72), stripe=45)
    with open_lib(tmp_path) as lib:
        lib.index([media])
        hits = lib.search(image=probe)
        assert names(hits)[0] == "green.webp"
        assert all(h.kind == "image" for h in hits)
        # An indexed image is its own best match, with cosine 1.
        own = lib.search(image=media / "red.png", k=1)
        assert names(own) == ["red.png"] and own[0].score == pytest.approx(1.0, abs=1e-5)


def test_text_and_image_together_are_fused(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        hits = lib.search("blue", image=media / "photos" / "blue.jpg")
        assert names(hits)[0] == "blue.jpg"
        assert {"semantic", "visual"} <= set(hits[0].scores)


def test_file_name_words_raise_a_match(tmp_path: Path, media: Path) -> None:
    make_image(media / "zebra-crossing.png", COLOURS["red"])
    with open_lib(tmp_path) as lib:
        lib.index([media])
        hits = {Path(h.path).name: h for h in lib.search("zebra", min_score=-1)}
        named = hits["zebra-crossing.png"]
        assert named.scores["keyword"] == 1.0
        cosine = named.scores["semantic"]
        assert named.score == pytest.approx(cosine + 0.5 * (1 - cosine), abs=1e-5)
        # same colour, same cosine, but no name match: ranks below
        assert hits["red.png"].score < named.score and "keyword" not in hits["red.png"].scores


def test_rerun_without_changes_encodes_nothing(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        again = lib.index([media])
        assert again.encoded == 0
        assert (again.added, again.updated, again.removed) == (0, 0, 0)
        assert again.unchanged == 7  # the corrupt file is remembered too, not retried
        files = sorted((tmp_path / "index").glob("*.faiss")) + [tmp_path / "index" / "manifest.json"]
        stamps = [f.stat().st_mtime_ns for f in files]
        lib.index([media])
        assert [f.stat().st_mtime_ns for f in files] == stamps  # nothing rewritten


def test_changed_moved_and_deleted_files_are_detected(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        # changed: red becomes yellow-ish
        make_image(media / "red.png", COLOURS["yellow"], size=(70, 50))
        # moved and renamed: same bytes, new place
        (media / "archive").mkdir()
        shutil.move(media / "photos" / "blue.jpg", media / "archive" / "sky.jpg")
        # deleted
        (media / "notes" / "garden.txt").unlink()
        report = lib.index([media])
        assert (report.updated, report.moved, report.removed, report.encoded) == (1, 1, 1, 1)
        assert names(lib.search("blue"))[0] == "sky.jpg"
        assert "garden.txt" not in names(lib.search("plant tomatoes basil garden"))
        # Its name still says red (a keyword match), but its content no longer looks red.
        red = [h for h in lib.search("red", min_score=-1, k=20) if h.path.endswith("red.png")]
        assert red and red[0].scores["keyword"] == 1.0 and red[0].scores["semantic"] < 0.2
        assert names(lib.search("yellow"))[0] in ("red.png", "yellow.bmp")


def test_a_second_folder_can_be_added_later_and_rescanned_without_arguments(
    tmp_path: Path, media: Path
) -> None:
    other = tmp_path / "other"
    make_image(other / "purple.png", (130, 40, 160))
    make_image(other / "orange.png", (245, 140, 20))
    with open_lib(tmp_path) as lib:
        lib.index([media])
        lib.index([other])
        assert names(lib.search("purple"))[0] == "purple.png"
        assert names(lib.search("red"))[0] == "red.png"
        (other / "purple.png").unlink()
        report = lib.index()  # every known folder
        assert report.removed == 1 and report.encoded == 0
        assert set(lib.stats().roots) == {str(media), str(other)}


def test_filters_restrict_kind_folder_and_extension(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        assert {h.kind for h in lib.search("bread red blue", kinds=["text"], min_score=-1)} == {"text"}
        in_photos = lib.search("red blue green", folders=[media / "photos"], min_score=-1)
        assert in_photos and all("/photos/" in h.path for h in in_photos)
        assert names(lib.search("blue green", extensions=["webp"], min_score=-1)) == ["green.webp"]


def test_cut_off_and_k_limit_results(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        assert lib.search("zebra crossing at midnight") == []  # nothing relevant: nothing shown
        assert len(lib.search("red", k=2, min_score=-1)) == 2
        assert len(lib.search("red", min_score=-1)) == 6  # every indexed item, no more


def test_weighted_and_negative_terms_move_results(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        assert names(lib.search('2:red blue', min_score=-1))[0] == "red.png"
        assert names(lib.search('red 2:blue', min_score=-1))[0] == "blue.jpg"
        assert names(lib.search('red blue -red', min_score=-1))[0] == "blue.jpg"
        with pytest.raises(QueryError, match="only negative"):
            lib.search("-red")


def test_bad_files_are_recorded_with_their_reason_and_lose_nothing(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        errors = {Path(e.path).name: e.reason for e in lib.errors()}
        assert list(errors) == ["broken.jpg"]
        # A good file that turns bad keeps nothing stale and is reported.
        (media / "red.png").write_bytes(b"")
        (media / "empty.txt").write_bytes(b"")
        report = lib.index([media])
        assert report.failed == 2
        errors = {Path(e.path).name: e.reason for e in lib.errors()}
        assert set(errors) == {"broken.jpg", "red.png", "empty.txt"}
        assert "red.png" not in names(lib.search("red", min_score=-1, k=20))  # now an error
        assert names(lib.search("blue"))[0] == "blue.jpg"


def test_remove_forgets_files_and_folders(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        assert lib.remove(media / "red.png") == 1
        assert "red.png" not in names(lib.search("red", min_score=-1))
        assert lib.remove(media / "notes") == 2
        assert {h.kind for h in lib.search("bread garden", min_score=-1)} == {"image"}
        with pytest.raises(NotIndexedError, match="not in the index"):
            lib.remove(media / "nope.png")
        assert (media / "red.png").exists()  # files themselves are untouched


def test_stats_report_counts_model_and_spaces(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        stats = lib.stats()
    assert stats.model == MODEL
    assert stats.items == {"image": 4, "text": 2}
    assert stats.failed == 1
    assert stats.spaces["visual"]["count"] == 4
    assert stats.spaces["semantic"]["count"] >= 6
    assert stats.catalog_bytes > 0 and stats.index_bytes > 0


def test_the_model_is_fixed_at_creation(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
    with pytest.raises(ModelMismatchError, match="hash-test"):
        Library.open(tmp_path / "index", model="offline-default")
    with Library.open(tmp_path / "index") as lib:  # no model named: use the recorded one
        assert lib.spec.name == MODEL


def test_unknown_model_lists_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="offline-default"):
        Library.open(tmp_path / "index", model="no-such-model")


def test_missing_index_and_missing_folder_are_clear_errors(tmp_path: Path) -> None:
    with open_lib(tmp_path) as lib, pytest.raises(MmsearchError, match="No folders to index"):
        lib.index()
    with pytest.raises(IndexNotFoundError, match="mmsearch index"):
        Library.open(tmp_path / "nothing", create=False)
    with open_lib(tmp_path) as lib, pytest.raises(MediaError, match="no such file or folder"):
        lib.index([tmp_path / "does-not-exist"])


def test_vector_files_lost_or_damaged_are_rebuilt_from_the_catalog(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
    (tmp_path / "index" / "semantic.faiss").unlink()
    (tmp_path / "index" / "visual.faiss").write_bytes(b"garbage")
    with open_lib(tmp_path) as lib:
        assert names(lib.search("red"))[0] == "red.png"
        assert names(lib.search(image=media / "photos" / "blue.jpg"))[0] == "blue.jpg"


def test_large_collections_switch_to_an_approximate_index_with_the_same_answers(
    tmp_path: Path,
) -> None:
    root = tmp_path / "many"
    for i in range(60):
        colour = list(COLOURS.values())[i % 4]
        make_image(root / f"img{i:03d}.png", colour, stripe=i % 50)
    with open_lib(tmp_path, exact_search_below=20) as lib:
        lib.index([root])
        assert lib.stats().spaces["visual"]["factory"].startswith("IVF")
        for i in (0, 17, 42):
            assert names(lib.search(image=root / f"img{i:03d}.png", k=1)) == [f"img{i:03d}.png"]


def test_a_vector_file_changed_behind_the_index_is_caught_by_its_checksum(
    tmp_path: Path, media: Path
) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
    visual = tmp_path / "index" / "visual.faiss"
    data = bytearray(visual.read_bytes())
    data[-100] ^= 0xFF  # same size, different content, newer mtime
    visual.write_bytes(bytes(data))
    with open_lib(tmp_path) as lib:
        assert names(lib.search(image=media / "photos" / "blue.jpg", k=1)) == ["blue.jpg"]
        assert lib._spaces.rebuilt == ["visual"]


def test_cancelling_a_run_keeps_what_was_encoded_and_the_next_run_goes_on(
    tmp_path: Path, media: Path
) -> None:
    import threading

    from mmsearch import IndexCancelled

    many = tmp_path / "many"
    for i in range(40):
        make_image(many / f"img{i:02}.png", COLOURS["red"], stripe=i)
    cancel = threading.Event()

    def stop_after_some(progress) -> None:
        if progress.phase == "encode" and progress.done == 10:
            cancel.set()

    with open_lib(tmp_path, batch_size=4) as lib:
        with pytest.raises(IndexCancelled, match="kept and searchable"):
            lib.index([many], progress=stop_after_some, cancel=cancel)
        kept = lib.stats().items.get("image", 0)
        assert 10 <= kept < 40  # the files seen before the cancel were committed, not dropped
        assert len(lib.search(image=many / "img00.png", k=40)) == kept
        report = lib.index([many])
        assert report.added == 40 - kept and report.removed == 0


def test_hits_carry_an_id_that_looks_the_item_up(tmp_path: Path, media: Path) -> None:
    with open_lib(tmp_path) as lib:
        lib.index([media])
        hit = lib.search("red", k=1)[0]
        info = lib.item(hit.id)
        assert info.path == hit.path and info.id == hit.id
        assert lib.item(hit.path).id == hit.id
        with pytest.raises(NotIndexedError, match="id 999999"):
            lib.item(999999)


def test_a_preset_with_other_settings_is_named_with_what_differs(
    tmp_path: Path, media: Path
) -> None:
    """An index made when a preset had other options: the error says which, not "built with
    'X', not 'X'"."""
    with open_lib(tmp_path) as lib:
        lib.index([media])
    catalog = sqlite3.connect(tmp_path / "index" / "catalog.db")
    (stored,) = catalog.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
    spec = json.loads(stored)
    spec["options"]["dim"] = spec["options"].get("dim", 0) + 1
    with catalog:
        catalog.execute("UPDATE meta SET value = ? WHERE key = 'model'", (json.dumps(spec),))
    catalog.close()
    wanted = r"other settings of model 'hash-test' \(options dim differ"
    with pytest.raises(ModelMismatchError, match=wanted):
        Library.open(tmp_path / "index", model=MODEL)
