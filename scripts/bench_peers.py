"""mmsearch against rclip and a naive torch loop on one OpenCLIP checkpoint, interleaved.

Everything runs on the same random-weight OpenCLIP ViT-B-32-256 checkpoint (the architecture
rclip 3.3.0 ships) and the same photos (coco_mini + imagenet_sample from ../shared/data, 409):

- mmsearch with `open_clip:ViT-B-32-256@CHECKPOINT` (its ONNX export is made before timing);
- rclip 3.3.0 from the registry, in its own virtual environment (indexes/bench/rclip-venv),
  unmodified: the ONNX files it would download for ViT-B-32-256 are exported from the same
  checkpoint into the folder named by `RCLIP_DATADIR`, and checked against open_clip first;
- a naive torch loop: open_clip's model and transform, one photo after another, batches of 32.

Each measurement is a whole process (wall time, peak RSS from wait4), and the tools take turns
inside every round, so a busy machine slows all of them alike; the ratios are what count.

Usage:
    .venv/bin/python scripts/bench_peers.py [--rounds 3] [--index-rounds 1] [--limit 409]
        [--no-naive] [--fast-mode] [--breakdown | --phases] [--baseline REV]

mmsearch is the code of this tree (or of PYTHONPATH's, when set). With --baseline, the code of
git revision REV (a temporary worktree) runs the same cold searches too, taking turns with this
tree and rclip in every round; with --phases, both trees are timed phase by phase.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import (  # scripts are not a package
    DATA,
    ROOT,
    baseline_tree,
    measured,
    print_phase_table,
    print_phases,
    run,
)

WORK = ROOT / "indexes" / "bench"
ARCH = "ViT-B-32-256"
PATCH = 32  # ARCH's patch side: a 256-pixel image is 8 x 8 patches + 1 class token
RCLIP_VERSION = "3.3.0"
RCLIP_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # where rclip looks for its ONNX files
QUERIES = [
    "a dog running on the beach", "a red double decker bus", "people eating pizza",
    "a cat sleeping on a sofa", "snow covered mountains", "an airplane on the runway",
]


# --------------------------------------------------------------------------------------------
# Setup: checkpoint, rclip and its model files, the photo folder


def ensure_checkpoint() -> Path:
    path = WORK / "vitb32-256.pt"
    if not path.is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from openclip_helpers import make_random_checkpoint

        make_random_checkpoint(ARCH, path, seed=0)
    return path


def ensure_rclip() -> Path:
    """rclip's console script, installed from the registry into a venv of its own."""
    venv = WORK / "rclip-venv"
    exe = venv / "bin" / "rclip"
    if not exe.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"rclip=={RCLIP_VERSION}"],
                       check=True)
    return exe


def export_rclip_models(checkpoint: Path, datadir: Path) -> None:
    """The ONNX files rclip would download, made from our checkpoint and checked."""
    target = datadir / RCLIP_SUBDIR
    if (target / "textual.onnx").is_file() and (target / "visual.onnx").is_file():
        return
    import open_clip
    import open_clip.tokenizer
    import torch

    from mmsearch.encoders.openclip_export import FIDELITY, FullTextTower, export_onnx, least_cosine
    from mmsearch.encoders.openclip_torch import ImageTower

    model, _, transform = open_clip.create_model_and_transforms(ARCH, pretrained=str(checkpoint))
    model.eval()
    tokenizer = open_clip.get_tokenizer(ARCH)
    tokens = tokenizer(QUERIES)
    photos = list_photos(6)
    from PIL import Image

    pixels = torch.stack([transform(Image.open(p)) for p in photos])
    target.mkdir(parents=True, exist_ok=True)
    # rclip feeds "input" and reads the first output; its text input is the full 77 tokens.
    export_onnx(FullTextTower(model), tokens, target / "textual.onnx", "input", {0: "batch"})
    export_onnx(ImageTower(model, patches=False), pixels, target / "visual.onnx", "input", {0: "batch"})
    tok_dir = datadir / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    shutil.copyfile(open_clip.tokenizer.default_bpe(), tok_dir / "bpe_simple_vocab_16e6.txt.gz")
    import onnxruntime as ort

    with torch.inference_mode():
        want_t, want_i = model.encode_text(tokens).numpy(), model.encode_image(pixels).numpy()
    got_t = ort.InferenceSession(str(target / "textual.onnx")).run(None, {"input": tokens.numpy()})[0]
    got_i = ort.InferenceSession(str(target / "visual.onnx")).run(None, {"input": pixels.numpy()})[0]
    cos = min(least_cosine(got_t, want_t), least_cosine(got_i, want_i))
    if cos < FIDELITY:
        raise SystemExit(f"rclip's ONNX export differs from open_clip (cosine {cos})")
    print(f"rclip model files exported from the checkpoint (least cosine {cos:.6f})")


def list_photos(limit: int) -> list[Path]:
    photos: list[Path] = []
    for folder in ("coco_mini", "imagenet_sample"):
        with open(DATA / folder / "manifest.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                photos.append(DATA / folder / row["path"])
    return sorted(set(photos))[:limit]


def photo_folder(limit: int) -> Path:
    """A folder of links to the photos (the data itself is never copied)."""
    folder = WORK / f"photos-{limit}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for i, photo in enumerate(list_photos(limit)):
            (folder / f"{i:04d}{photo.suffix.lower()}").symlink_to(photo)
    return folder


def example_images(n: int) -> list[Path]:
    """Near-duplicate photos that are not in the index (cropped, flipped, re-encoded)."""
    with open(DATA / "neardup" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [DATA / "neardup" / row["query_path"] for row in rows[:: max(1, len(rows) // n)][:n]]


# --------------------------------------------------------------------------------------------
# Running and measuring


NAIVE = r"""
import sys, numpy as np, open_clip, torch
from pathlib import Path
from PIL import Image
model, _, transform = open_clip.create_model_and_transforms(sys.argv[1], pretrained=sys.argv[2])
model.eval()
paths = sorted(Path(sys.argv[3]).iterdir())
out = []
with torch.inference_mode():
    for i in range(0, len(paths), 32):
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[i:i + 32]])
        v = model.encode_image(batch)
        out.append((v / v.norm(dim=-1, keepdim=True)).numpy())
print(len(np.concatenate(out)))
"""


# The least a cold text search costs in Python on these libraries, whatever the CLI: numpy, the
# tokenizer, the text tower on mapped weights, faiss and SQLite, with no CLI framework, settings,
# catalog layer or reranker. What mmsearch's own layers add is the difference to it.
FLOOR = r"""
import sqlite3, sys
from pathlib import Path
import numpy as np
from mmsearch.encoders.clip_tokenizer import ClipTokenizer
from mmsearch.encoders.clip_text_numpy import NumpyTextTower
export, index, query = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tokenizer = ClipTokenizer(export / "bpe_merges.txt", 77)
vector = NumpyTextTower(export)(tokenizer.trim(tokenizer([query])))
import faiss
found = faiss.read_index(str(index / "semantic.faiss")).search(vector / np.linalg.norm(vector), 10)[1]
db = sqlite3.connect(index / "catalog.db")
print(len(found[0]), db.execute("select count(*) from items").fetchone()[0])
"""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.checkpoint = ensure_checkpoint()
        self.photos = photo_folder(args.limit)
        self.count = len(list(self.photos.iterdir()))
        self.model = f"open_clip:{ARCH}@{self.checkpoint}"
        self.fast_model = f"{self.model}#int8"
        self.cache = WORK / "models"
        self.env = {**os.environ, "MMSEARCH_CACHE_DIR": str(self.cache), "PYTHONUNBUFFERED": "1"}
        self.mm = str(ROOT / ".venv" / "bin" / "mmsearch")
        self.rclip = str(ensure_rclip()) if args.rclip else ""
        self.rclip_models = WORK / "rclip-data"
        if args.rclip:
            export_rclip_models(self.checkpoint, self.rclip_models)
        self.baseline: Path | None = None  # the code tree of --baseline, when given
        self.samples: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        self.stages: dict[str, list[dict[str, float]]] = defaultdict(list)
        # One pair of indexes per photo folder: an index built over another folder (another
        # --limit) made the "no-change re-run" index a whole new folder (772 MB peak, model loaded).
        self.full_index = WORK / f"idx-full-{self.count}"
        self.fast_index = WORK / f"idx-int8-{self.count}"
        # mmsearch runs from its source tree (editable install); with PYTHONDONTWRITEBYTECODE set
        # (as here) every process would compile its modules again (~0.2-0.4 s), which an
        # installed package (pip writes .pyc files) never does. Compile them once, as pip would.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mmsearch")],
                       check=True, stdout=subprocess.DEVNULL)

    # -- the tools ------------------------------------------------------------------------

    def rclip_env(self, datadir: Path) -> dict[str, str]:
        datadir.mkdir(parents=True, exist_ok=True)
        for name in (RCLIP_SUBDIR, "tokenizer"):
            link = datadir / name
            if not link.exists():
                link.symlink_to(self.rclip_models / name)
        return {**os.environ, "RCLIP_DATADIR": str(datadir)}

    def mm_index(self, index: Path, model: str) -> tuple[float, float, str]:
        return run(measured([self.mm, "index", str(self.photos), "--index", str(index),
                             "--model", model, "--json"]), self.env)

    def record(self, what: str, tool: str, result: tuple[float, float, str]) -> None:
        self.samples[(what, tool)].append((result[0], result[1], result[3]))
        print(f"  {what:<22} {tool:<16} {result[0]:7.2f} s  {result[1]:7.0f} MB  "
              f"{result[3]:7.2f} s CPU", flush=True)

    # -- one round ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make mmsearch's exports (full and int8) and the indexes searched below."""
        for model, index in ((self.model, self.full_index), (self.fast_model, self.fast_index)):
            if not self.args.fast_mode and model == self.fast_model:
                continue
            if not (index / "catalog.db").exists():
                print(f"preparing {index.name} (exports the model once)", flush=True)
            # Also brings an index made by an interrupted run up to date: the timed re-runs
            # below must find nothing to do.
            self.mm_index(index, model)
            # Makes the export (or the int8 tower) if the index predates it: not part of timing.
            example = str(example_images(1)[0])
            run([self.mm, "search", "warm-up", "--image", example, "--index", str(index),
                 "--min-score", "-1"], self.env)
        if self.args.rclip:
            run([self.rclip, "-f", "-t", "1", "warm-up"], self.rclip_env(WORK / "rclip-idx"),
                cwd=self.photos)

    def first_indexing(self, round_no: int) -> None:
        tools = ["mmsearch", "rclip", "naive torch"]
        if self.args.fast_mode:
            tools.insert(1, "mmsearch int8")
        for tool in tools[round_no % len(tools):] + tools[: round_no % len(tools)]:
            fresh = WORK / f"first-{tool.replace(' ', '-')}"
            shutil.rmtree(fresh, ignore_errors=True)
            if tool in ("mmsearch", "mmsearch int8"):
                result = self.mm_index(fresh, self.model if tool == "mmsearch" else self.fast_model)
                self.record("first indexing", tool, result)
                self.stages[tool].append(json.loads(result[2])["stage_seconds"])
            elif tool == "rclip" and self.args.rclip:
                result = run(measured([self.rclip, "-f", "-t", "1", "x"]), self.rclip_env(fresh),
                             cwd=self.photos)
                self.record("first indexing", tool, result)
            elif tool == "naive torch" and self.args.naive:
                result = run(measured([sys.executable, "-c", NAIVE, ARCH, str(self.checkpoint),
                                       str(self.photos)]), self.env)
                self.record("first indexing", tool, result)
            shutil.rmtree(fresh, ignore_errors=True)

    def searches(self, round_no: int) -> None:
        query = QUERIES[round_no % len(QUERIES)]
        example = str(example_images(self.args.rounds)[round_no % self.args.rounds])
        rclip_env = self.rclip_env(WORK / "rclip-idx") if self.args.rclip else {}
        # --min-score -1: random weights score below any calibrated cut-off, and rclip lists its
        # top 10 whatever their scores (mmsearch exits 1 when nothing passes the cut-off).
        full = ["--index", str(self.full_index), "-k", "10", "--min-score", "-1"]
        jobs = [
            ("cold text search", "mmsearch", lambda: run(measured([self.mm, "search", query, *full]), self.env)),
            ("cold image search", "mmsearch", lambda: run(measured([self.mm, "search", "--image", example, *full]), self.env)),
            ("no-change re-run", "mmsearch", lambda: self.mm_index(self.full_index, self.model)),
        ]
        if self.baseline is not None:
            # The same console script: PYTHONPATH puts the baseline's modules first.
            base_env = {**self.env, "PYTHONPATH": str(self.baseline)}
            jobs += [
                ("cold text search", "mmsearch baseline", lambda: run(measured([self.mm, "search", query, *full]), base_env)),
                ("cold image search", "mmsearch baseline", lambda: run(measured([self.mm, "search", "--image", example, *full]), base_env)),
            ]
        if self.args.floor:
            export = next((self.cache / "open_clip").glob(f"{ARCH}-*"))
            jobs.append(("cold text search", "floor (no CLI)", lambda: run(measured(
                [sys.executable, "-c", FLOOR, str(export), str(self.full_index), query]), self.env)))
        if self.args.rclip:
            jobs += [
                ("cold text search", "rclip", lambda: run(measured([self.rclip, "-n", "-f", "-t", "10", query]), rclip_env, cwd=self.photos)),
                ("cold image search", "rclip", lambda: run(measured([self.rclip, "-n", "-f", "-t", "10", example]), rclip_env, cwd=self.photos)),
                ("no-change re-run", "rclip", lambda: run(measured([self.rclip, "-f", "-t", "10", query]), rclip_env, cwd=self.photos)),
            ]
        tools = sorted({tool for _, tool, _ in jobs})
        turn = {tool: (i + round_no) % len(tools) for i, tool in enumerate(tools)}  # rotates per round
        order = sorted(jobs, key=lambda job: (job[0], turn[job[1]]))
        for what, tool, job in order:
            self.record(what, tool, job())

    # -- report ---------------------------------------------------------------------------

    def report(self) -> None:
        print(f"\n== medians over the rounds ({self.count} photos, {ARCH}, random weights; "
              f"the machine was shared with other jobs: compare ratios, not absolute times)")
        whats = sorted({what for what, _ in self.samples})
        for what in whats:
            tools = {tool: s for (w, tool), s in self.samples.items() if w == what}
            line = []
            for tool, samples in tools.items():
                wall = statistics.median(s[0] for s in samples)
                cpu = statistics.median(s[2] for s in samples)
                peak = max(s[1] for s in samples)
                rate = f", {self.count / wall:.1f} img/s" if what == "first indexing" else ""
                line.append(f"{tool} {wall:.2f} s ({peak:.0f} MB{rate}, {cpu:.2f} s CPU)")
            print(f"{what:<20} " + "; ".join(line))
            if "rclip" in tools:
                rclip_wall = statistics.median(s[0] for s in tools["rclip"])
                rclip_cpu = statistics.median(s[2] for s in tools["rclip"])
                for tool, samples in tools.items():
                    if tool != "rclip":
                        ratio = statistics.median(s[0] for s in samples) / rclip_wall
                        cpu_ratio = statistics.median(s[2] for s in samples) / rclip_cpu
                        print(f"{'':<20} {tool} / rclip time: {ratio:.2f}x "
                              f"(CPU time: {cpu_ratio:.2f}x)")

            if "mmsearch baseline" in tools:
                ratio, cpu_ratio = (
                    statistics.median(s[i] for s in tools["mmsearch"])
                    / statistics.median(s[i] for s in tools["mmsearch baseline"])
                    for i in (0, 2)
                )
                print(f"{'':<20} mmsearch / mmsearch baseline time: {ratio:.2f}x (CPU time: {cpu_ratio:.2f}x)")

        for tool, runs in self.stages.items():
            # Wall seconds on the main thread (model, writes) and summed over the reader threads
            # (decode: reading, decoding and preparing, overlapped with the model).
            names = sorted({name for run in runs for name in run})
            per_image = {n: statistics.median(r.get(n, 0.0) for r in runs) / self.count * 1000
                         for n in names}
            print(f"{'':<20} {tool} stages, ms per image: "
                  + ", ".join(f"{n} {ms:.0f}" for n, ms in per_image.items()))

    def agreement(self) -> None:
        """Top-10 agreement of the int8 index with the full-precision one, same queries."""
        from mmsearch import Library

        os.environ["MMSEARCH_CACHE_DIR"] = str(self.cache)
        texts = [*QUERIES, *[f"a photo of a {w}" for w in ("dog", "car", "boat", "bird", "pizza",
                                                          "train", "clock", "horse", "kite")]]
        images = example_images(20)
        overlaps: dict[str, list[float]] = {"text": [], "image": []}
        # Why rankings move: the full-precision score gap around rank 10 against how far int8
        # moves the score of one and the same item.
        gaps: dict[str, list[float]] = {"text": [], "image": []}
        shifts: dict[str, list[float]] = {"text": [], "image": []}
        with Library.open(self.full_index, readonly=True) as full, \
                Library.open(self.fast_index, readonly=True) as fast:
            for lib in (full, fast):  # same photos, same folder: else the paths cannot agree
                held = sum(lib.stats().items.values())
                assert lib.stats().roots == [str(self.photos.resolve())] and held == self.count, lib.path
            for kind, queries in (("text", texts), ("image", images)):
                for q in queries:
                    kwargs = {"image": q} if kind == "image" else {}
                    text = "" if kind == "image" else q
                    a = full.search(text, k=11, min_score=-1, **kwargs)
                    b = {h.path: h.score for h in fast.search(text, k=10, min_score=-1, **kwargs)}
                    overlaps[kind].append(len({h.path for h in a[:10]} & set(b)) / 10)
                    gaps[kind].append(a[9].score - a[10].score)
                    shifts[kind] += [abs(b[h.path] - h.score) for h in a[:10] if h.path in b]
        print(json.dumps({k: round(float(np.mean(v)), 3) for k, v in overlaps.items()}))
        print(f"int8 top-10 agreement with full precision: text {np.mean(overlaps['text']):.3f} "
              f"({len(texts)} queries), image examples {np.mean(overlaps['image']):.3f} "
              f"({len(images)} queries)")
        for kind in ("text", "image"):
            print(f"  {kind}: full-precision score gap between hits 10 and 11, median "
                  f"{np.median(gaps[kind]):.5f}; int8's change of one item's score, median "
                  f"{np.median(shifts[kind]):.5f}, p90 {np.percentile(shifts[kind], 90):.5f}")


def breakdown(bench: Bench, photos: int = 64) -> None:
    """Where indexing time goes per image, in this process: decode + prepare on one thread, then
    the image tower alone at several batch sizes (full and int8)."""
    from mmsearch.encoders import load_encoder, resolve_model
    from mmsearch.media.images import decode_image

    paths = sorted(bench.photos.iterdir())[:photos]
    for name in (bench.model, bench.fast_model):
        encoder = load_encoder(resolve_model(name), cache_dir=bench.cache)
        start = time.perf_counter()
        prepared = [
            encoder.prepare_image(decode_image(p.read_bytes(), path=str(p), max_pixels=10**9,
                                               min_side=encoder.input_size).image)
            for p in paths
        ]
        decode_ms = (time.perf_counter() - start) / len(paths) * 1000
        line = [f"decode+prepare {decode_ms:.1f} ms/img (1 thread)"]
        for batch in (8, 16, 32):
            encoder.embed_images(prepared[:batch])  # opens the tower, warms it
            start = time.perf_counter()
            for i in range(0, len(prepared), batch):
                encoder.embed_images(prepared[i : i + batch])
            line.append(f"model batch {batch}: {(time.perf_counter() - start) / len(paths) * 1000:.0f} ms/img")
        print(f"{'int8' if name.endswith('#int8') else 'full'}: " + "; ".join(line), flush=True)
        tower = "image-int8.onnx" if name.endswith("#int8") else "image.onnx"
        op_profile(Path(encoder.export_dir) / tower, encoder._preprocess.normalise(np.stack(prepared[:8])))


def op_profile(model: Path, pixels: np.ndarray, runs: int = 3) -> None:
    """Where the image tower's time goes, by operator (onnxruntime's profiler, 8 images a run),
    and the matrix products' arithmetic rate: ~2 FLOPs per weight per token."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(WORK / "ort-profile")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, {"pixels": pixels})
    trace = Path(session.end_profiling())
    by_op: dict[str, float] = defaultdict(float)
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1000 / runs / len(pixels)
    trace.unlink()
    total = sum(by_op.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:6]
    print(f"  {model.name}: operators {total:.0f} ms/img: "
          + ", ".join(f"{op} {ms / total:.0%}" for op, ms in top))
    graph = onnx.load(str(model), load_external_data=False).graph
    weights = sum(int(np.prod(t.dims)) for t in graph.initializer if len(t.dims) == 2)
    tokens = (pixels.shape[2] // PATCH) ** 2 + 1
    products = sum(ms for op, ms in by_op.items() if "MatMul" in op or op == "Gemm")
    if products:
        print(f"  matrix products: {products:.0f} ms/img for ~{2 * weights * tokens / 1e9:.1f} GFLOP "
              f"= {2 * weights * tokens / products / 1e6:.0f} GFLOP/s on 2 threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the search measurements")
    parser.add_argument("--index-rounds", type=int, default=1, help="rounds of first indexing")
    parser.add_argument("--limit", type=int, default=409, help="photos to index")
    parser.add_argument("--no-rclip", dest="rclip", action="store_false")
    parser.add_argument("--no-naive", dest="naive", action="store_false")
    parser.add_argument("--fast-mode", action="store_true", help="also measure the int8 mode")
    parser.add_argument("--floor", action="store_true",
                        help="also time the least a cold text search costs in Python (no CLI)")
    parser.add_argument("--breakdown", action="store_true",
                        help="only: per-image decode and model time at batch 8/16/32, and an operator profile")
    parser.add_argument("--baseline", metavar="REV", help="also time the cold searches with this git revision")
    parser.add_argument("--phases", action="store_true",
                        help="only: a cold text search phase by phase (after preparing the index)")
    args = parser.parse_args()
    bench = Bench(args)
    if args.breakdown:
        breakdown(bench)
        return
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        if args.baseline:
            with baseline_tree(args.baseline, Path(tmp) / "baseline") as tree:
                bench.baseline = tree
                measure(bench, args)
        else:
            measure(bench, args)


def measure(bench: Bench, args: argparse.Namespace) -> None:
    bench.prepare()
    if args.phases:
        if bench.baseline is None:
            print_phases(bench.full_index, QUERIES[0], bench.env)
        else:
            this = Path(bench.env.get("PYTHONPATH") or ROOT).resolve()
            trees = {"this tree": this, f"baseline {args.baseline}": bench.baseline}
            print_phase_table(trees, bench.full_index, QUERIES[0], bench.env, args.rounds)
        return
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}: searches", flush=True)
        bench.searches(round_no)
    for round_no in range(args.index_rounds):
        print(f"round {round_no + 1}: first indexing", flush=True)
        bench.first_indexing(round_no)
    bench.report()
    if args.fast_mode:
        bench.agreement()


if __name__ == "__main__":
    main()
