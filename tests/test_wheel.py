"""Packaging: the wheel a user installs with pip (not this checkout) indexes and searches.

The wheel is built from this tree, installed into a fresh virtual environment with its base
dependencies only (no torch: the `hash-test` model needs no weights), and driven through its
own `mmsearch` console script on the sample media, so a module or data file missing from the
package (presets, styles, a command module) fails here and not on a user's machine.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend comes from the test environment (no download needed).
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (built,) = out.glob("mmsearch-*.whl")
    return built


def test_the_wheel_carries_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "mmsearch").rglob("*")
        if p.is_file() and p.suffix in {".py", ".json", ".tcss", ".html", ".js", ".css", ".typed"}
        and "__pycache__" not in p.parts
    }
    assert source - names == set()
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_installed_wheel_indexes_and_searches_the_samples(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=900,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    samples = tmp_path / "samples"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(samples)],
                   check=True, capture_output=True, timeout=300)
    mmsearch = env_dir / "bin" / "mmsearch"
    index = tmp_path / "index"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # cwd outside the checkout, so nothing of this tree can be imported by accident.
        return subprocess.run([str(mmsearch), *args, "--index", str(index)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    indexed = run("index", str(samples), "--model", "hash-test")
    assert indexed.returncode == 0, indexed.stderr
    assert " added" in indexed.stdout
    where = subprocess.run([str(python), "-c", "import mmsearch; print(mmsearch.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where and str(ROOT) not in where

    cat = samples / "photos" / "chelsea-the-cat.jpg"
    found = run("search", "--image", str(cat), "-k", "1", "--plain")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split("\t")[2].strip() == str(cat)
    note = run("search", "sourdough starter", "-k", "1", "--plain", "--kind", "text")
    assert note.returncode == 0, note.stderr
    assert Path(note.stdout.split("\t")[2].strip()).name == "sourdough.md"
