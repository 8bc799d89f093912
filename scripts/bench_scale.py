"""Indexing throughput on Ray vs the local pipeline, on the same photos (issue 23).

    local     `Library.index` into a fresh index on this machine (the model loaded first,
              untimed, as a warm local run has it).
    ray-1     the same photos, a fresh index, `Library.index(ray=...)` on a loopback Ray cluster
              (`ray start --head` on 127.0.0.1, started here, stopped at the end) with 1 encoding
              actor; ray-2: 2 actors. Timed from the call: connecting, the check that nodes read
              the files, each actor's model load and the driver's commits all count.

Every photo is read once before timing (page cache). Configurations are interleaved and run
--repeat times; the best rate of each counts (a shared machine disturbs some runs; every rate is
listed). Goal: ray-1 / local >= 0.85. On a 2-core machine 2 actors share the cores with the
driver, so ray-2 shows the overhead of splitting, not the scaling of a real cluster.

Photos: ../shared/data's photo sets by their manifests, in this order: flickr8k_1k, coco_mini,
imagenet_sample, neardup's queries (crops, rotations and re-encodings of imagenet photos: other
bytes, so other items) and cifar10 (32x32 photos, which decode faster; last, so only the share
past 1,318 photos is theirs): 3,318 in all. The first --photos of them (2,000 by default: 682
of cifar10's) are copied into a temporary folder. "this process's CPU"
is the driver's cost (for local runs it includes the model, which runs in this process).

    .venv/bin/python scripts/bench_scale.py [--photos 909] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from benchkit import DATA, read_manifest, timed
from ray_helpers import local_cluster, loopback_env

loopback_env()  # before Ray is imported

from mmsearch import Library
from mmsearch.config import load_settings

SETS = [  # (folder, manifest, its column of photo paths)
    ("flickr8k_1k", "manifest.csv", "path"),
    ("coco_mini", "manifest.csv", "path"),
    ("imagenet_sample", "manifest.csv", "path"),
    ("neardup", "manifest.csv", "query_path"),
    ("cifar10", "manifest.csv", "path"),
]


def photos(limit: int, into: Path) -> list[Path]:
    found: list[Path] = []
    for name, manifest, column in SETS:
        rows = read_manifest(DATA / name / manifest)
        found += [DATA / name / p for p in dict.fromkeys(row[column] for row in rows)]
    chosen = found[:limit]
    into.mkdir(parents=True)
    for n, path in enumerate(chosen):
        shutil.copyfile(path, into / f"{n:05d}{path.suffix.lower()}")
    for path in into.iterdir():  # into the page cache
        path.read_bytes()
    return chosen


def one_run(
    work: Path, media: Path, name: str, address: str | None, workers: int
) -> tuple[float, dict, float]:
    """(photos/s, seconds per stage, this process's CPU seconds per 1,000 photos)."""
    index = work / f"index-{name}"
    shutil.rmtree(index, ignore_errors=True)
    settings = load_settings(ray_workers=workers or None)
    with Library.open(index, model="offline-default", settings=settings) as lib:
        if address is None:
            lib.encoder  # noqa: B018 - the model's load is not the local pipeline's throughput
        cpu = time.process_time()
        report, seconds = timed(lambda: lib.index([media], ray=address if address else False))
        cpu = time.process_time() - cpu
    assert report.failed == 0 and report.added > 0, report.failures[:3]
    return report.added / seconds, report.stage_seconds, 1000 * cpu / report.added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        chosen = photos(args.photos, work / "photos")
        print(f"{len(chosen)} photos from {', '.join(name for name, _, _ in SETS)}; "
              f"repeat {args.repeat}")
        rates: dict[str, list[float]] = {"local": [], "ray-1": [], "ray-2": []}
        stages: dict[str, dict] = {}
        driver_cpu: dict[str, float] = {}
        with local_cluster(cpus=2) as cluster:
            for _ in range(args.repeat):
                for name, address, workers in [
                    ("local", None, 0), ("ray-1", cluster.address, 1), ("ray-2", cluster.address, 2),
                ]:
                    rate, stages[name], driver_cpu[name] = one_run(
                        work, work / "photos", name, address, workers
                    )
                    rates[name].append(rate)
                    print(f"  {name}: {rate:.1f} photos/s", flush=True)
        best = {name: max(values) for name, values in rates.items()}
        print("\nbest of each (photos/s):")
        for name, rate in best.items():
            print(f"  {name:6s} {rate:7.1f}   ({rate / best['local']:.2f}x local)")
        print(f"ray-1 / local = {best['ray-1'] / best['local']:.2f} (goal >= 0.85); "
              f"ray-2 / ray-1 = {best['ray-2'] / best['ray-1']:.2f}")
        for name, seconds in stages.items():
            split = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(seconds.items()) if v >= 0.05)
            print(f"  last {name} run, seconds per stage: {split}; this process's CPU: "
                  f"{driver_cpu[name]:.1f} s per 1,000 photos")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
