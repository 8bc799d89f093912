"""`import mmsearch` and `mmsearch --help` must stay light: no torch, faiss, textual, onnxruntime
or audio decoders."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "torch", "faiss", "textual", "onnxruntime", "open_clip", "transformers",
    "av", "soundfile", "soxr", "faster_whisper", "ctranslate2",
    "fastapi", "starlette", "uvicorn", "pymilvus", "milvus_lite",
)


def loaded_heavy_modules(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("HEAVY="))
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def test_import_mmsearch_loads_no_heavy_library() -> None:
    assert loaded_heavy_modules("import mmsearch\nmmsearch.Library") == []


def test_cli_help_loads_no_heavy_library() -> None:
    code = (
        "import sys\nfrom mmsearch.cli import app\n"
        "sys.argv = ['mmsearch', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert loaded_heavy_modules(code) == []


def test_the_tui_draws_before_the_engine_loads() -> None:
    """What `mmsearch tui` runs before its first frame loads no model or vector library, nor the
    engine itself (Library, settings, SQLite): the index is opened in a worker afterwards."""
    code = (
        "import mmsearch.cli\nfrom mmsearch.tui import make_app\nmake_app('/nonexistent')\n"
        "import sys\n"
        "assert not {'mmsearch.library', 'mmsearch.query', 'pydantic', 'sqlite_utils'} "
        "& set(sys.modules), 'the engine loaded before the first frame'"
    )
    assert [m for m in loaded_heavy_modules(code) if m != "textual"] == []


def test_reranker_and_tune_modules_load_no_heavy_library() -> None:
    # The reranker runs inside every search and tune trains with torch: torch loads only when
    # an adapter is trained, and neither module brings it in by being imported.
    code = (
        "import mmsearch.query.rerank, mmsearch.query.head, mmsearch.learning, "
        "mmsearch.encoders.regions"
    )
    assert loaded_heavy_modules(code) == []


def test_openclip_encoder_module_loads_no_torch() -> None:
    # The OpenCLIP encoder runs exported towers on CPU: its module and the tokenizer stay light.
    code = "import mmsearch.encoders.openclip, mmsearch.encoders.clip_tokenizer"
    assert loaded_heavy_modules(code) == []


def test_a_search_loads_neither_the_indexing_pipeline_nor_pandas() -> None:
    """What a cold search imports (CLI query parser, settings, Library, catalog) stays lean:
    sqlite_utils would import pandas (~0.2-0.5 s, ~75 MB) whenever it is installed, the query
    parser must not bring in the searcher, and opening an index for a search must not load
    ingest. Checked where pandas is installed, which is where it matters."""
    pytest.importorskip("pandas")
    code = (
        "import sys\nimport mmsearch.query.parse\n"
        "early = {'mmsearch.query.search', 'mmsearch.store.catalog'} & set(sys.modules)\n"
        "assert not early, f'the query parser loaded {early}'\n"
        "from mmsearch.config import load_settings\nfrom mmsearch.library import Library\n"
        "load_settings()\n"
        "print('LOADED=' + ','.join(sorted(m for m in sys.modules "
        "if m == 'pandas' or m.startswith('mmsearch.ingest'))))\n"
        "import pandas\nassert pandas.DataFrame  # a later import still works\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED=\n" in out.stdout + "\n", out.stdout


def test_package_versions_are_read_without_importlib_metadata() -> None:
    """Cache keys hold package versions (an OpenCLIP export is named by open_clip's): they are
    what `importlib.metadata` says, for every installed distribution in any spelling, and
    reading one does not import it (~15-20 ms of a cold search)."""
    code = (
        "import sys\nfrom mmsearch.encoders.onnx_cache import package_version\n"
        "v = package_version('open_clip_torch')\n"
        "print('METADATA=' + str('importlib.metadata' in sys.modules))\n"
        "import importlib.metadata as md\n"
        "names = sorted({d.metadata['Name'] for d in md.distributions()})\n"
        "spellings = [s for n in names for s in (n, n.upper(), n.replace('-', '.'))]\n"
        "wrong = [(n, package_version(n)) for n in spellings if package_version(n) != md.version(n)]\n"
        "print('WRONG=' + repr(wrong) + ' ' + str(len(names)))\n"
        "print('MISSING=' + package_version('no-such-distribution-x'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    assert lines[0] == "METADATA=False"
    assert lines[1].startswith("WRONG=[] ") and int(lines[1].split()[1]) > 20
    assert lines[2] == "MISSING=unknown"
