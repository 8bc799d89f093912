"""Load test of `mmsearch serve`: concurrent clients run mixed text and image searches for a fixed
time while an indexing job adds a folder of images; then every image must find itself first.

Starts a real server (uvicorn, the chosen model) on a free loopback port over a fresh index of
`--initial` (COCO photos by default), copies `--add` (2,000 CIFAR-10 images by default) into a
folder the server may index, starts the job through the API and lets `--clients` threads search
for `--seconds`. Prints requests/s, p50/p99 per request kind, errors, the job's duration, and the
consistency check (each indexed image searched by its own path must come first; an exact copy of
it that ties at cosine 1 is counted apart).

Usage:
    .venv/bin/python scripts/load_service.py [--clients 16] [--seconds 60]
        [--initial ../shared/data/coco_mini] [--add ../shared/data/cifar10] [--model offline-default]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from mmsearch import Library
from mmsearch.config import Settings
from mmsearch.media.kinds import IMAGE, kind_of

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEXTS = [
    "a dog running on the grass", "an airplane in the sky", "a plate of food", "a red car",
    "people on a beach", "a cat sleeping", "a ship on the water", "a horse in a field",
    "a city street at night", "a bird on a branch", "a truck on the road", "a frog",
    "two people playing tennis", "a bowl of fruit", "snow on the mountains", "a deer in the forest",
]


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and kind_of(str(p)) == IMAGE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []

    def add(self, kind: str, ms: float, error: str | None) -> None:
        with self.lock:
            self.times.setdefault(kind, []).append(ms)
            if error:
                self.errors.append(f"{kind}: {error}")


def client_loop(base: str, initial: list[Path], ids: list[int], until: float, seed: int, rec: Recorder) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() < until:
            pick = rng.random()
            began = time.perf_counter()
            try:
                if pick < 0.5:
                    kind = "text"
                    r = http.post("/search", json={"text": rng.choice(TEXTS), "k": 10})
                elif pick < 0.8:
                    kind = "image-by-id"
                    r = http.post("/search", json={"image_ids": [rng.choice(ids)], "k": 10})
                else:
                    kind = "image-upload"
                    path = rng.choice(initial)
                    with path.open("rb") as f:
                        r = http.post("/search/upload", data={"query": '{"k": 10}'},
                                      files={"images": (path.name, f, "image/jpeg")})
                error = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                kind, error = locals().get("kind", "?"), f"{type(exc).__name__}: {exc}"
            rec.add(kind, (time.perf_counter() - began) * 1000, error)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def digest(path: str) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--initial", type=Path, default=DATA / "coco_mini")
    parser.add_argument("--add", type=Path, default=DATA / "cifar10")
    parser.add_argument("--model", default="offline-default")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="load-service-"))
    media, index = work / "media", work / "index"
    shutil.copytree(args.initial, media / "initial", ignore=shutil.ignore_patterns("*.csv", "*.txt"))
    initial = images_under(media / "initial")
    settings = Settings(model=args.model)
    began = time.perf_counter()
    with Library.open(index, model=args.model, settings=settings) as lib:
        lib.index([media])
    print(f"initial index: {len(initial)} images in {time.perf_counter() - began:.1f} s", flush=True)
    shutil.copytree(args.add, media / "added", ignore=shutil.ignore_patterns("*.csv", "*.txt"))
    added = images_under(media / "added")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "serve", "--index", str(index), "--port", str(port),
         "--folder", str(media)],
        env={**os.environ, "MMSEARCH_HOME": str(work / "home")},
    )
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if http.get("/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not become ready")
                time.sleep(0.2)
            ids = [http.post("/search", json={"images": [str(p)], "k": 1}).json()["hits"][0]["id"]
                   for p in initial[:50]]
            job = http.post("/index/jobs", json={"folders": [str(media / "added")]}).json()
            job_started = time.monotonic()
            rec = Recorder()
            until = time.monotonic() + args.seconds
            threads = [threading.Thread(target=client_loop, args=(base, initial, ids, until, n, rec))
                       for n in range(args.clients)]
            load_began = time.monotonic()
            for t in threads:
                t.start()
            job_seconds = None
            while any(t.is_alive() for t in threads):
                if job_seconds is None and http.get(f"/index/jobs/{job['id']}").json()["state"] != "running":
                    job_seconds = time.monotonic() - job_started
                time.sleep(0.5)
            load_seconds = time.monotonic() - load_began
            while (state := http.get(f"/index/jobs/{job['id']}").json())["state"] == "running":
                time.sleep(0.5)
            job_seconds = job_seconds or time.monotonic() - job_started

            total = sum(len(v) for v in rec.times.values())
            every = [ms for v in rec.times.values() for ms in v]
            print(f"\n{args.clients} clients for {load_seconds:.1f} s while the job ran "
                  f"({state['state']}, added {state['report'] and state['report']['added']} "
                  f"images in {job_seconds:.1f} s)")
            print(f"requests: {total}, {total / load_seconds:.1f}/s, errors: {len(rec.errors)}")
            print("| request | count | p50 ms | p99 ms |\n|---|---|---|---|")
            for kind, values in sorted(rec.times.items()):
                print(f"| {kind} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 0.99):.1f} |")
            print(f"| all | {total} | {statistics.median(every):.1f} | {percentile(every, 0.99):.1f} |")
            for error in rec.errors[:10]:
                print("  error:", error)

            # Consistency: every image, searched by its own path, comes first.
            stats = http.get("/stats").json()
            wrong, tied = [], 0
            for path in [*initial, *added]:
                hits = http.post("/search", json={"images": [str(path)], "k": 2}).json()["hits"]
                if hits and hits[0]["path"] == str(path):
                    continue
                if hits and hits[0]["score"] >= 0.99999 and digest(hits[0]["path"]) == digest(str(path)):
                    tied += 1  # an exact copy of the file, equally first
                    continue
                wrong.append(str(path))
            print(f"\nafterwards: catalog holds {stats['items']} (expected {len(initial) + len(added)} images); "
                  f"{len(initial) + len(added) - len(wrong)} of {len(initial) + len(added)} images found "
                  f"first by themselves ({tied} of them tied with an identical copy); wrong: {wrong[:5]}")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
