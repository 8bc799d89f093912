"""`mmsearch tune`: captions are found where users keep them, and the adapter is turned on only
when it finds held-out captions' images better."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Library
from mmsearch.errors import QueryError
from mmsearch.learning import sign_test, tuner
from mmsearch.learning.captions import (
    csv_captions,
    embedded_caption,
    markdown_captions,
    sidecar_caption,
)

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 220, 40)}
PLACES = {"left": 2, "middle": 26, "right": 52}


def striped(path: Path, colour: tuple[int, int, int], x: int, shade: int = 0) -> Path:
    """A solid image with a dark vertical bar at `x`: the hash-test model's `semantic` vector
    knows only the colour; where the bar is shows only in its `visual` thumbnail."""
    image = Image.new("RGB", (64, 48), tuple(max(0, c - shade) for c in colour))
    for px in range(x, x + 10):
        for py in range(48):
            image.putpixel((px, py), (0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def test_alt_text_of_markdown_images_is_a_caption(tmp_path: Path) -> None:
    note = tmp_path / "notes" / "trip.md"
    note.parent.mkdir()
    note.write_text(
        "# Trip\n![a red bicycle by the lake](../pics/bike.jpg)\n"
        '![](empty.png) ![remote](https://example.com/x.jpg) ![a dog](<dog pic.png> "title")\n'
    )
    assert markdown_captions(note) == [
        (str(tmp_path / "pics" / "bike.jpg"), "a red bicycle by the lake"),
        (str(tmp_path / "notes" / "dog pic.png"), "a dog"),
    ]


def test_exif_description_xp_comment_and_sidecars_are_captions(tmp_path: Path) -> None:
    described = tmp_path / "described.jpg"
    exif = Image.Exif()
    exif[0x010E] = "children playing on a beach"
    Image.new("RGB", (8, 8)).save(described, exif=exif)
    assert embedded_caption(described) == ("children playing on a beach", "exif")

    commented = tmp_path / "commented.jpg"
    exif = Image.Exif()
    exif[0x9C9C] = "a snowy mountain".encode("utf-16-le") + b"\x00\x00"
    Image.new("RGB", (8, 8)).save(commented, exif=exif)
    assert embedded_caption(commented) == ("a snowy mountain", "exif")

    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (8, 8)).save(plain)
    assert embedded_caption(plain) is None
    (tmp_path / "plain.txt").write_text("  a cat asleep\non a sofa ")
    assert sidecar_caption(plain) == ("a cat asleep on a sofa", "sidecar")

    other = tmp_path / "other.png"
    Image.new("RGB", (8, 8)).save(other)
    (tmp_path / "other.xmp").write_text(
        '<x:xmpmeta><rdf:RDF><rdf:Description><dc:description><rdf:Alt>'
        '<rdf:li xml:lang="x-default">boats in a harbour &amp; gulls</rdf:li>'
        "</rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    assert sidecar_caption(other) == ("boats in a harbour & gulls", "xmp")


def test_a_captions_csv_is_read_relative_to_its_folder_and_bad_ones_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "caps.csv"
    good.write_text("path,caption\nimg/a.jpg,a boat\nimg/b.jpg,\n")
    assert csv_captions(good) == [(str(tmp_path / "img" / "a.jpg"), "a boat")]
    empty = tmp_path / "empty.csv"
    empty.write_text("path,caption\n")
    with pytest.raises(QueryError, match="no `path,caption` rows"):
        csv_captions(empty)
    with pytest.raises(QueryError, match="Cannot read"):
        csv_captions(tmp_path / "missing.csv")


@pytest.fixture
def striped_library(tmp_path: Path):
    """36 images, each with its own caption saying where the bar is and how dark the picture
    is (which only `visual` knows; `semantic` knows the colour)."""
    root = tmp_path / "media"
    rows = []
    for colour, rgb in COLOURS.items():
        for place, x in PLACES.items():
            for shade, tone in ((0, "bright"), (60, "plain"), (120, "dark")):
                path = striped(root / f"{colour}-{place}-{shade}.png", rgb, x, shade)
                rows.append((str(path), f"a {tone} {colour} picture with a bar on the {place}"))
    captions = tmp_path / "captions.csv"
    with open(captions, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "caption"), *rows])
    with Library.open(tmp_path / "index", model="hash-test") as lib:
        lib.index([root])
        yield lib, captions, root


def test_tune_turns_the_adapter_on_when_held_out_captions_gain(striped_library) -> None:
    lib, captions, _ = striped_library

    def bars_on_the_left_in_top3() -> int:
        hits = lib.search("a red picture with a bar on the left", k=3, min_score=-1)
        return sum("-left-" in Path(h.path).name for h in hits)

    before = bars_on_the_left_in_top3()
    report = lib.tune(captions)
    assert report.captions == 36 and report.images == 36 and report.sources == {"csv": 36}
    assert report.enabled, report.reason
    assert report.after["R@1"] > report.before["R@1"]
    assert report.after in report.tried.values()  # every setting compared is reported
    assert not report.head  # hash-test stores no regions: no head to train
    assert not (lib.path / "rerank-head.onnx").exists()
    assert (lib.path / "rerank.npz").is_file()
    assert '"held_out_after"' in (lib.path / "rerank.json").read_text()
    assert bars_on_the_left_in_top3() > before
    assert bars_on_the_left_in_top3() >= 2


def test_the_tuned_adapter_brings_in_images_the_first_stage_missed(striped_library) -> None:
    """With the reranker's N cut to 3, the first stage (which knows only the colour) hands it
    three red pictures, whatever their bar. The tuned adapter proposes the red pictures with
    the bar on the left from the whole index: one indexed after `tune` too, and none that the
    query's filters rule out."""
    lib, captions, root = striped_library
    assert lib.tune(captions).adapter
    lib.settings.rerank_top_n = 3
    query = "a red picture with a bar on the left"

    def left_in_top3(text: str) -> list[str]:
        return [Path(h.path).name for h in lib.search(text, k=3, min_score=-1) if "-left-" in Path(h.path).name]

    assert len(left_in_top3(query)) >= 2
    lib.settings.rerank = False  # the first stage alone: colour only, the bar anywhere
    assert len(left_in_top3(query)) < 2
    lib.settings.rerank = True
    striped(root / "late" / "red-left-30.png", COLOURS["red"], PLACES["left"], 30)
    lib.index([root])
    assert "red-left-30.png" in left_in_top3(query)
    assert "red-left-30.png" not in left_in_top3(query + " -folder:late")


def test_a_tuned_index_opened_again_maps_only_the_images_indexed_since(striped_library, monkeypatch) -> None:
    """`tune` stores every image through the adapter with it: a search in a new process (the
    CLI) does not read and map the whole collection again, only what was indexed after."""
    from dataclasses import replace

    import numpy as np

    from mmsearch.query.proposals import MappedImages, TunedAdapter

    lib, captions, root = striped_library
    assert lib.tune(captions).adapter
    read: list[int] = []
    original = lib._catalog.vectors_by_id

    def counting(*args, **kwargs):
        ids, vectors = original(*args, **kwargs)
        read.append(len(ids))
        return ids, vectors

    monkeypatch.setattr(lib._catalog, "vectors_by_id", counting)
    query = lib.encoder().embed_texts(["a red picture with a bar on the left"])[0]
    adapter = TunedAdapter.load(lib.path)
    assert adapter is not None
    found = adapter.images.best(adapter, lib._catalog, query, 5, None, ())
    assert len(found) == 5 and sum(read) == 0
    # The same answer as mapping every image afresh.
    fresh = replace(adapter, images=MappedImages())
    assert fresh.images.best(fresh, lib._catalog, query, 5, None, ()) == found
    assert sum(read) == 36
    read.clear()
    striped(root / "late" / "blue-right-30.png", COLOURS["blue"], PLACES["right"], 30)
    lib.index([root])
    read.clear()  # indexing reads the new vectors for its own vector indexes
    adapter.images.best(adapter, lib._catalog, query, 5, None, ())
    assert sum(read) == 1
    assert np.isin(lib._catalog.vector_ids("visual"), adapter.images.stored()["image_vector_ids"]).all()


def test_a_captioned_photo_changed_after_tune_is_judged_by_its_new_pixels(striped_library) -> None:
    """A captioned photo's left-out vector stands for the pixels tune saw: once the file is
    changed (same path, same item), it is mapped from what it shows now."""
    from dataclasses import replace

    import numpy as np

    from mmsearch.media.paths import canonical_path
    from mmsearch.query.proposals import TunedAdapter

    lib, captions, root = striped_library
    assert lib.tune(captions).adapter
    adapter = TunedAdapter.load(lib.path)
    assert adapter is not None
    path = canonical_path(root / "red-left-0.png")
    item = lib._catalog.item_by_path(path).id
    before = adapter.images.vectors(adapter, lib._catalog, [item])[item]
    striped(Path(path), COLOURS["blue"], PLACES["right"], 120)  # overwritten in place
    lib.index([root])
    assert lib._catalog.item_by_path(path).id == item
    after = adapter.images.vectors(adapter, lib._catalog, [item])[item]
    plain = replace(adapter, own_vector_ids=np.zeros(0, np.int64)).embed(
        lib._catalog.item_vectors([item], "visual")[item]
    )[0]
    assert np.allclose(after, plain, atol=1e-3)
    assert not np.allclose(before, after, atol=1e-2)


def test_tune_with_too_few_captions_changes_nothing_and_says_why(striped_library, tmp_path: Path) -> None:
    lib, _, root = striped_library
    few = tmp_path / "few.csv"
    few.write_text(f"path,caption\n{root / 'red-left-0.png'},a red picture\n")
    report = lib.tune(few)
    assert not report.enabled
    assert "need 20" in report.reason and "--captions" in report.reason
    assert not (lib.path / "rerank.npz").exists()


def test_tune_finds_markdown_alt_text_among_the_indexed_notes(striped_library) -> None:
    lib, _, root = striped_library
    note = root / "album.md"
    note.write_text("![a green picture with a bar on the right](green-right-0.png)\n")
    lib.index([root])
    report = lib.tune()
    assert report.captions == 1 and report.sources == {"markdown": 1}
    assert not report.enabled  # one caption teaches nothing measurable


def test_the_tune_command_reports_what_it_found_and_whether_it_turned_on(striped_library) -> None:
    import json

    from click.testing import CliRunner

    from mmsearch.cli import app

    lib, captions, _ = striped_library
    folder = str(lib.path)
    lib.close()  # the command opens the index itself, as a user's shell would
    runner = CliRunner()
    shown = runner.invoke(app, ["tune", "--index", folder, "--captions", str(captions)])
    assert shown.exit_code == 0, shown.output
    assert "36 caption(s) of 36 image(s) (36 csv)." in shown.output
    assert "Turned on: held-out R@1" in shown.output
    as_json = runner.invoke(app, ["tune", "--index", folder, "--captions", str(captions), "--json"])
    assert json.loads(as_json.output)["enabled"] is True
    missing = runner.invoke(app, ["tune", "--index", folder, "--captions", "/nowhere/caps.csv"])
    assert missing.exit_code != 0 and "Cannot read the captions file" in missing.output


def test_the_ridge_adapter_maps_unseen_images_next_to_their_captions() -> None:
    """Captions that are a linear function of the image features (plus noise) are learnt from
    some images and found for others; captions paired with the wrong images teach nothing."""
    import numpy as np

    from mmsearch.encoders.base import l2_normalise
    from mmsearch.learning import fit_adapter

    rng = np.random.default_rng(0)
    images, dim, text_dim = 300, 64, 32
    visual = rng.normal(size=(images, dim)).astype(np.float32) * rng.uniform(0.5, 3, dim)
    truth = rng.normal(size=(dim, text_dim))
    owners = np.repeat(np.arange(images), 3)
    captions = l2_normalise(
        (visual[owners] / visual.std(axis=0)) @ truth + rng.normal(scale=2.0, size=(len(owners), text_dim))
    )
    train, test = owners < 200, owners >= 200

    def top1(strength: float, paired: np.ndarray) -> float:
        fit = fit_adapter(visual, captions[train], paired, strength=strength)
        mapped = l2_normalise(((visual[200:] - fit.mean) / fit.scale) @ fit.matrix + fit.bias)
        best = np.argmax(captions[test] @ mapped.T, axis=1)
        return float(np.mean(best == owners[test] - 200))

    assert top1(0.05, owners[train]) > 0.5  # chance is 0.01
    assert top1(0.05, rng.permutation(owners[train])) < 0.05


def test_each_captioned_image_gets_the_vector_a_fit_without_it_predicts() -> None:
    """The captioned images' stored vectors are leave-one-out predictions: what a fit on the
    other images makes of their features, not the captions the fit memorised (which would
    rank them above uncaptioned look-alikes for any query resembling those captions)."""
    import numpy as np

    from mmsearch.encoders.base import l2_normalise
    from mmsearch.learning import fit_adapter

    rng = np.random.default_rng(1)
    images, dim, text_dim, strength = 120, 40, 16, 0.2
    visual = rng.normal(size=(images, dim)).astype(np.float32)
    owners = np.repeat(np.arange(images), 2)
    captions = l2_normalise(
        visual[owners] @ rng.normal(size=(dim, text_dim)) + rng.normal(scale=6.0, size=(len(owners), text_dim))
    )
    fit = fit_adapter(visual, captions, owners, strength=strength)
    assert list(fit.rows) == list(range(images)) and fit.left_out.shape == (images, text_dim)
    memorised = ((visual - fit.mean) / fit.scale) @ fit.matrix + fit.bias
    for left in (0, 57, 119):
        others = owners != left
        # The same penalty in total (strength is per image), so only the left-out image differs.
        refit = fit_adapter(visual, captions[others], owners[others], strength=strength * images / (images - 1))
        predicted = ((visual[left] - refit.mean) / refit.scale) @ refit.matrix + refit.bias
        assert np.allclose(fit.left_out[left], predicted, atol=0.02 * np.abs(predicted).max())
    # The fitted map returns each captioned image's own captions (the noise included) far
    # better than its features can predict them: that part is memory, not evidence.
    own = l2_normalise(np.stack([captions[owners == n].mean(axis=0) for n in range(images)]))
    memorised_cos = np.sum(own * l2_normalise(memorised), axis=1).mean()
    left_out_cos = np.sum(own * l2_normalise(fit.left_out), axis=1).mean()
    assert memorised_cos > left_out_cos + 0.1, (memorised_cos, left_out_cos)


@pytest.mark.parametrize(
    ("gained", "lost", "p"),
    [(0, 0, 1.0), (1, 0, 0.5), (3, 1, 0.3125), (5, 0, 0.03125), (20, 8, 0.0178), (8, 20, 0.9937)],
)
def test_the_sign_test_counts_only_captions_whose_top_1_changed(gained: int, lost: int, p: float) -> None:
    unchanged = [0] * 7 + [3] * 9  # right or wrong both times: no evidence either way
    before = [4] * gained + [0] * lost + unchanged
    after = [0] * gained + [2] * lost + unchanged
    assert sign_test(before, after) == pytest.approx(p, abs=1e-4)


def test_a_gain_chance_could_explain_changes_nothing(striped_library, monkeypatch) -> None:
    """The same real gain as above, held to a bar it cannot pass: nothing is turned on or
    written, and the report says the gain could be chance."""
    lib, captions, _ = striped_library
    monkeypatch.setattr(tuner, "GATE_P", 1e-12)
    report = lib.tune(captions)
    assert not report.enabled
    assert max(got["R@1"] for got in report.tried.values()) > report.before["R@1"]
    assert "chance" in report.reason and "p = " in report.reason, report.reason
    assert not (lib.path / "rerank.npz").exists()
