"""Text read in images (OCR, with RapidOCR's PP-OCRv4 ONNX models): its words find the image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOURS, make_image
from PIL import Image, ImageDraw, ImageFont

from mmsearch import Library
from mmsearch.config import Settings

pytest.importorskip("rapidocr_onnxruntime")


def sign(path: Path, word: str, colour: tuple[int, int, int]) -> Path:
    """A 'photo' with a sign on it: a plain background and a light board with one word."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (480, 320), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 100, 440, 190), fill=(250, 250, 245))
    draw.text((60, 115), word, fill=(20, 20, 20), font=ImageFont.load_default(size=44))
    image.save(path)
    return path


def test_words_in_an_image_find_it_and_are_kept_with_their_place(tmp_path: Path) -> None:
    media = tmp_path / "media"
    sign(media / "IMG_0001.png", "Lighthouse", (90, 140, 60))
    sign(media / "IMG_0002.png", "Bakery", (60, 90, 140))
    make_image(media / "IMG_0003.png", COLOURS["red"], size=(480, 320))  # no text at all
    settings = Settings(read_text_in_images=True)
    with Library.open(tmp_path / "ix", model="hash-test", settings=settings) as lib:
        report = lib.index([media])
        assert report.failed == 0 and "read_text" in report.stage_seconds
        assert Path(lib.search("lighthouse", k=1)[0].path).name == "IMG_0001.png"
        assert Path(lib.search("bakery", k=1)[0].path).name == "IMG_0002.png"
        info = lib.item(media / "IMG_0001.png")
        assert info.read_text == ["Lighthouse"]
        assert lib.item(media / "IMG_0003.png").read_text == []
    shown = subprocess.run(
        [sys.executable, "-m", "mmsearch", "info", str(media / "IMG_0001.png"), "--index",
         str(tmp_path / "ix")],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert "reads:    Lighthouse" in shown.stdout.splitlines()


def test_reading_is_off_unless_asked(tmp_path: Path) -> None:
    media = tmp_path / "media"
    sign(media / "IMG_0001.png", "Lighthouse", (90, 140, 60))
    with Library.open(tmp_path / "ix", model="hash-test", settings=Settings()) as lib:
        report = lib.index([media])
        assert "read_text" not in report.stage_seconds
        assert lib.item(media / "IMG_0001.png").read_text == []


def test_a_word_run_together_with_others_in_the_image_still_finds_it(tmp_path: Path) -> None:
    """OCR often loses the spaces of small print ("multimodalsearch"): the word is still found."""
    from mmsearch.encoders.ocr import ReadWord
    from mmsearch.store.catalog import Catalog
    from mmsearch.store.catalog_items import ItemFacts

    catalog = Catalog(tmp_path / "catalog.db")
    facts = ItemFacts(
        str(tmp_path / "page.png"), str(tmp_path), "image", 10, 1, "h",
        read_words=(ReadWord("Localmultimodalsearch.Point it", (0, 0, 1, 0.1), 0.9),),
    )
    item, _, _ = catalog.write_item(facts, {})
    assert catalog.keyword_search('"multimodal"', 5) == []  # not a word of its own
    assert catalog.keyword_search('"multimodal"', 5, inside_read_text='"multimodal"') == [item]
    catalog.delete_items([item])  # and a removed item is gone from it too
    assert catalog.keyword_search('"multimodal"', 5, inside_read_text='"multimodal"') == []


def small_print(path: Path, word: str) -> Path:
    """A large 'photo' whose only text is one line on a board, 1/20 of its width high: the
    glance sees it, the words are read best from the full detail."""
    image = Image.new("RGB", (2400, 1600), (70, 110, 150))
    draw = ImageDraw.Draw(image)
    draw.rectangle((300, 700, 1900, 880), fill=(250, 250, 245))
    draw.text((330, 720), word, fill=(20, 20, 20), font=ImageFont.load_default(size=120))
    image.save(path, quality=92)
    return path


def test_text_seen_in_the_small_copy_is_read_from_the_full_picture(tmp_path: Path) -> None:
    """The glance looks at the copy decoded for the image model; the words come from the
    picture decoded again with its detail."""
    from mmsearch.encoders.ocr import TextReader

    big = Image.open(small_print(tmp_path / "street.jpg", "Observatory")).convert("RGB")
    small = big.resize((390, 260))
    reader = TextReader()
    asked = []

    def detail() -> Image.Image:
        asked.append(True)
        return big

    assert [w.text for w in reader.read(small, detail)] == ["Observatory"]
    assert asked == [True]
    plain = Image.new("RGB", (390, 260), (70, 110, 150))
    assert reader.read(plain, lambda: pytest.fail("a plain photo was decoded again")) == ()


def test_a_large_photo_indexed_small_is_still_read(tmp_path: Path) -> None:
    """The image model decodes a 2400 px JPEG at a fraction of its size; its words are still
    read and found."""
    media = tmp_path / "media"
    media.mkdir()
    small_print(media / "DSC_0042.jpg", "Observatory")
    make_image(media / "DSC_0043.jpg", COLOURS["red"], size=(2400, 1600))
    settings = Settings(read_text_in_images=True)
    with Library.open(tmp_path / "ix", model="offline-default", settings=settings) as lib:
        lib.index([media])
        assert lib.item(media / "DSC_0042.jpg").read_text == ["Observatory"]
        assert Path(lib.search("observatory", k=1)[0].path).name == "DSC_0042.jpg"


def test_each_reader_thread_reads_on_one_core() -> None:
    """The reader threads already keep every core busy: each of RapidOCR's sessions must run
    one thread (its per-model thread settings are silently dropped; left at its default the
    glance cost twice the CPU)."""
    from mmsearch.encoders.ocr import TextReader

    engine = TextReader()._engine()
    for session in (engine.text_det.infer.session, engine.text_rec.session.session):
        options = session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_a_plain_photo_gets_one_glance_and_is_not_read(tmp_path: Path) -> None:
    """Indexing with reading on: a photo without text costs one small detector pass and is
    never decoded again nor read; a photo with a sign is decoded again and read."""
    from mmsearch.encoders.ocr import TextReader
    from mmsearch.ingest_decode import Decoder

    media = tmp_path / "media"
    sign(media / "IMG_0001.png", "Lighthouse", (90, 140, 60))
    make_image(media / "IMG_0002.png", COLOURS["red"], size=(480, 320))
    glances: list[int] = []
    decoded_again: list[str] = []
    glance, detailed = TextReader.has_text, Decoder._detailed

    def counted_glance(self: TextReader, image: np.ndarray) -> bool:
        glances.append(max(image.shape[:2]))
        return glance(self, image)

    def counted_detail(self: Decoder, data: bytes, path: str) -> object:
        decoded_again.append(Path(path).name)
        return detailed(self, data, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextReader, "has_text", counted_glance)
        patch.setattr(Decoder, "_detailed", counted_detail)
        settings = Settings(read_text_in_images=True)
        with Library.open(tmp_path / "ix", model="hash-test", settings=settings) as lib:
            lib.index([media])
            assert lib.item(media / "IMG_0001.png").read_text == ["Lighthouse"]
            assert lib.item(media / "IMG_0002.png").read_text == []
    assert len(glances) == 2 and decoded_again == ["IMG_0001.png"]
