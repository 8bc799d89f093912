"""`import mmsearch` and `mmsearch --help` must stay light: no torch, faiss, textual, onnxruntime
or audio decoders."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "torch", "faiss", "textual", "onnxruntime", "open_clip", "transformers",
    "av", "soundfile", "soxr", "faster_whisper", "ctranslate2",
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


def test_openclip_encoder_module_loads_no_torch() -> None:
    # The OpenCLIP encoder runs exported towers on CPU: its module and the tokenizer stay light.
    code = "import mmsearch.encoders.openclip, mmsearch.encoders.clip_tokenizer"
    assert loaded_heavy_modules(code) == []
