"""The offline default model through the public API: the right file comes back first.

Loads the real models (MiniLM, EfficientNet-Lite2 via onnxruntime); photos are scikit-image's
bundled samples, the documents are written here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmsearch import Library

skimage_data = pytest.importorskip("skimage.data")
pytestmark = pytest.mark.models

PHOTOS = {"chelsea": "cat.jpg", "coffee": "coffee.png", "rocket": "launch.webp", "astronaut": "portrait.jpg"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("offline")
    media = root / "media"
    media.mkdir()
    for name, file in PHOTOS.items():
        Image.fromarray(getattr(skimage_data, name)()).save(media / file)
    (media / "bread.md").write_text(
        "Sourdough: mix flour, water and salt with the starter, let the dough rise, bake the loaf."
    )
    (media / "astronomy.txt").write_text(
        "Through the telescope we saw the craters of the moon and faint galaxies in deep space."
    )
    with Library.open(root / "index", model="offline-default") as lib:
        report = lib.index([media])
        assert (report.added, report.failed) == (6, 0)
        yield lib, media


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a cat", "cat.jpg"),
        ("a cup of coffee", "coffee.png"),
        ("a rocket launch", "launch.webp"),
        ("how do I bake bread", "bread.md"),
        ("looking at stars and planets", "astronomy.txt"),
    ],
)
def test_text_query_ranks_the_right_file_first(library, query: str, expected: str) -> None:
    lib, _ = library
    hits = lib.search(query, k=3)
    assert Path(hits[0].path).name == expected
    assert hits[0].score > 0.3


def test_a_cropped_resized_copy_finds_its_original(library, tmp_path: Path) -> None:
    lib, media = library
    original = Image.open(media / "cat.jpg")
    w, h = original.size
    probe = tmp_path / "crop.jpg"
    original.crop((w // 10, h // 10, w, h)).resize((w // 2, h // 2)).save(probe, quality=70)
    hits = lib.search(image=probe, k=2)
    assert Path(hits[0].path).name == "cat.jpg"


def test_the_cut_off_hides_unrelated_matches(library) -> None:
    lib, _ = library
    hits = lib.search("an invoice for plumbing repairs")
    assert len(hits) < 6  # never "everything"


def test_a_text_search_opens_only_the_text_model(library) -> None:
    """A cold text search in a fresh process runs MiniLM alone, in numpy: the image and audio
    models stay closed, onnxruntime is not even imported, and neither is the audio package's
    scipy (together they cost a cold search ~2 s)."""
    lib, _ = library
    lib.search("a warm-up query")  # the once-per-model check of the numpy MiniLM (opens onnxruntime)
    code = (
        "import sys\nfrom mmsearch import Library\n"
        f"lib = Library.open({str(lib.path)!r}, readonly=True)\n"
        "hit = lib.search('a cup of coffee', k=1)[0]\n"
        "encoder = lib.encoder()\n"
        "print('FIRST=' + hit.path.rsplit('/', 1)[-1])\n"
        "print('IMAGE_OPEN=' + str(encoder._image.session.is_open))\n"
        "print('AUDIO_OPEN=' + str(encoder.audio.tagger.session.is_open))\n"
        "print('SCIPY=' + str('scipy' in sys.modules))\n"
        "print('ONNXRUNTIME=' + str('onnxruntime' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["FIRST=coffee.png", "IMAGE_OPEN=False", "AUDIO_OPEN=False",
                                  "SCIPY=False", "ONNXRUNTIME=False"]


def test_a_cold_cli_search_loads_only_what_a_text_query_needs(library) -> None:
    """`mmsearch search TEXT` as its own process: the same hit, no image decoder (PIL), no
    ignore-rule parser (pathspec), numpy with one BLAS thread and nothing inherited by children,
    and the cycle collector off, with what was alive frozen, so teardown skips it (together
    ~0.2 s of a 0.6 s search; ARCHITECTURE.md, "The CLI's cold path")."""
    lib, _ = library
    lib.search("a warm-up query")
    code = (
        "import atexit, gc, os, runpy, sys\n"
        "def report():\n"
        "    from threadpoolctl import threadpool_info\n"
        "    blas = [p['num_threads'] for p in threadpool_info() if 'numpy' in p['filepath']]\n"
        "    print('LOADED=' + ','.join(m for m in ('PIL', 'pathspec', 'onnxruntime') if m in sys.modules))\n"
        "    print('BLAS=' + ','.join(map(str, blas)))\n"
        "    print('ENV=' + str('OPENBLAS_NUM_THREADS' in os.environ))\n"
        "    print('GC=' + str(gc.isenabled()) + ',' + str(gc.get_freeze_count() > 0))\n"
        "atexit.register(report)\n"
        f"sys.argv = ['mmsearch', 'search', 'a cup of coffee', '-k', '1', '--index', {str(lib.path)!r}]\n"
        "runpy.run_module('mmsearch', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split("\t")[1:] == ["image", str(lib.path.parent / "media" / "coffee.png")]
    assert lines[1:] == ["LOADED=", "BLAS=1", "ENV=False", "GC=False,True"]


def test_a_search_in_process_keeps_the_callers_collector(library) -> None:
    """The same command inside another program (here click's test runner) leaves its garbage
    collector and its BLAS threads alone."""
    import gc

    from click.testing import CliRunner

    from mmsearch.cli import app

    lib, _ = library
    result = CliRunner().invoke(app, ["search", "a cup of coffee", "-k", "1", "--index", str(lib.path)])
    assert result.exit_code == 0, result.output
    assert "coffee.png" in result.output
    assert gc.isenabled()


def test_warming_opens_every_network(library) -> None:
    """What the TUI and the HTTP service do while they start: no query then waits for a model."""
    lib, _ = library
    code = (
        f"from mmsearch import Library\nlib = Library.open({str(lib.path)!r}, readonly=True)\n"
        "encoder = lib.encoder()\nencoder.warm()\n"
        "print(encoder._text.session.is_open, encoder._image.session.is_open, "
        "encoder.audio.tagger.session.is_open)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
