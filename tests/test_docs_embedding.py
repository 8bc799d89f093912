"""docs/embedding.md's curl examples, run against a real `mmsearch serve` (the offline model):
the test fails when an answer no longer matches the page. `UPDATE_DOCS=1` rewrites them."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import running_server
from test_server_models import NOTES, drawing

from mmsearch import Library
from mmsearch.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "embedding.md"
TOKEN = "s3cret"
SHOWN_HOME = "/home"
SHOWN_URL = "http://127.0.0.1:8765"
VOLATILE = {"took_ms", "started_at", "finished_at", "seconds", "stage_seconds", "phase", "done",
            "total", "current", "catalog_bytes", "index_bytes"}
"""Keys whose values change from run to run: compared by presence only."""
AUTH = '-H "Authorization: Bearer $TOKEN"'
BLOCK = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n(?:```bash\n(?P<cmd>.*?)\n```\n```(?P<lang>\w+)\n(?P<out>.*?)\n```\n<!-- end -->\n)?", re.DOTALL)


def examples(red: int) -> dict[str, str]:
    return {
        "status": f'curl -s {AUTH} "$MMSEARCH/status"',
        "search-get": f'curl -s {AUTH} "$MMSEARCH/search?q=baking+sourdough+bread&k=2"',
        "search-json": (
            f"curl -s {AUTH} -H 'Content-Type: application/json' \\\n"
            """  -d '{"terms": [{"text": "stars in the night sky", "weight": 2}, {"text": "moon", "negative": true}], "kinds": ["text"], "k": 2}' \\\n"""
            '  "$MMSEARCH/search"'
        ),
        "search-upload": f"curl -s {AUTH} -F 'query={{\"kinds\": [\"image\"], \"k\": 2}}' -F images=@copy.jpg \"$MMSEARCH/search/upload\"",
        "item": f'curl -s {AUTH} "$MMSEARCH/items/{red}"',
        "thumbnail": (
            f"curl -s {AUTH} -o thumb.jpg -w '%{{http_code}} %{{content_type}}\\n' "
            f'"$MMSEARCH/items/{red}/thumbnail?size=128"'
        ),
        "job": f"curl -s {AUTH} -H 'Content-Type: application/json' -d '{{}}' \"$MMSEARCH/index/jobs\"",
        "job-done": f'curl -s {AUTH} "$MMSEARCH/index/jobs/1"',
        "error": f'curl -s {AUTH} "$MMSEARCH/items/999999/file"',
        "no-token": 'curl -s "$MMSEARCH/search?q=bread"',
        "knn": (
            f"curl -s {AUTH} -H 'Content-Type: application/json' \\\n"
            """  -d '{"text": "a red circle", "modality": "image", "num_images": 2, "indice_name": "index"}' \\\n"""
            '  "$MMSEARCH/knn-service"'
        ),
    }


def shown(text: str, tmp: Path, base: str) -> str:
    return text.replace(base, SHOWN_URL).replace(str(tmp), SHOWN_HOME)


def same(shown_value: Any, fresh: Any) -> bool:
    """The page's value and a fresh run's agree: volatile keys by presence, floats within 0.01
    (models' arithmetic differs a little between machines), everything else exactly."""
    if isinstance(shown_value, dict) and isinstance(fresh, dict):
        return shown_value.keys() == fresh.keys() and all(
            k in VOLATILE or same(shown_value[k], fresh[k]) for k in shown_value
        )
    if isinstance(shown_value, list) and isinstance(fresh, list):
        return len(shown_value) == len(fresh) and all(map(same, shown_value, fresh))
    if isinstance(shown_value, float) or isinstance(fresh, float):
        return isinstance(fresh, (int, float)) and math.isclose(shown_value, fresh, abs_tol=0.01)
    return bool(shown_value == fresh)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("docs")
    media = tmp / "me" / "Pictures"
    for note in sorted(NOTES.glob("*.*")):
        (media / "notes").mkdir(parents=True, exist_ok=True)
        (media / "notes" / note.name).write_bytes(note.read_bytes())
    drawing(media / "circle.png", "circle", (200, 40, 40))
    drawing(media / "stripes.png", "stripes", (40, 60, 200))
    with Library.open(tmp / "index", settings=Settings()) as lib:
        lib.index([media])
        red = lib.item(media / "circle.png").id
    # a copy to upload, and new pictures for the indexing job to find
    from PIL import Image

    Image.open(media / "stripes.png").resize((120, 90)).save(tmp / "copy.jpg", quality=80)
    drawing(media / "new" / "checks.png", "checks", (30, 150, 60))
    with running_server(tmp / "index", "--folder", str(media), token=TOKEN) as base:
        yield tmp, base, red


def run(command: str, tmp: Path, base: str) -> str:
    env = {**os.environ, "MMSEARCH": base, "TOKEN": TOKEN}
    done = subprocess.run(["bash", "-c", command], cwd=tmp, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(name: str, command: str, output: str) -> str:
    try:
        body, lang = json.dumps(json.loads(output), indent=2, ensure_ascii=False), "json"
    except ValueError:
        body, lang = output.rstrip("\n"), "text"
    return f"<!-- example: {name} -->\n```bash\n{command}\n```\n```{lang}\n{body}\n```\n<!-- end -->\n"


def test_curl_examples_match_the_real_server(server) -> None:
    tmp, base, red = server
    page = DOC.read_text()
    blocks = {m.group("name"): m for m in BLOCK.finditer(page)}
    fresh: dict[str, str] = {}
    for name, command in examples(red).items():
        if name == "job-done":  # wait for the job started by the example before
            deadline = time.monotonic() + 120
            while httpx.get(f"{base}/index/jobs/1", headers={"Authorization": f"Bearer {TOKEN}"}).json()["state"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.2)
        fresh[name] = render(name, command, shown(run(command, tmp, base), tmp, base))
    if os.environ.get("UPDATE_DOCS"):
        for name, text in fresh.items():
            assert name in blocks, f"docs/embedding.md has no `<!-- example: {name} -->` marker"
        DOC.write_text(BLOCK.sub(lambda m: fresh[m.group("name")], page))
        return
    for name, text in fresh.items():
        assert name in blocks and blocks[name].group("cmd"), f"{name}: not in docs/embedding.md; run with UPDATE_DOCS=1"
        new = BLOCK.match(text)
        assert new is not None
        assert blocks[name].group("cmd") == new.group("cmd"), f"{name}: the command changed"
        if new.group("lang") == "json":
            assert same(json.loads(blocks[name].group("out")), json.loads(new.group("out"))), (
                f"{name}: the server now answers\n{new.group('out')}"
            )
        else:
            assert blocks[name].group("out") == new.group("out"), name


def test_the_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = re.search(r"```python\n(.*?)\n```", DOC.read_text(), re.DOTALL)
    assert code is not None
    home = tmp_path / "home"
    drawing(home / "Pictures" / "car.png", "circle", (200, 30, 30))
    drawing(home / "Pictures" / "street.png", "stripes", (90, 90, 90))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), "docs/embedding.md", "exec"), {})  # noqa: S102 - our own page
    with Library.open(tmp_path / "my-index", readonly=True) as lib:
        assert lib.stats().items == {"image": 2}
