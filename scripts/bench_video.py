"""Video indexing speed, in seconds of video per second of wall time ("x real time"), and memory
across a long film; `scripts/bench_index.py --only video` runs it (or run this file).

    (V1) a folder of 720p H.264 + AAC clips (coco_mini/imagenet_sample photos as 5 s shots with a
         slow zoom, an ESC-50 clip under every other shot; generated untimed) indexed end to end
         into a fresh index, the model loaded first. Goal: >= 20x real time on these 2 cores.
         Beside it, each step alone on the same clips (1 thread): decoding and choosing the
         keyframes (`keyframes`), decoding the soundtrack (`read_audio`), the image side on the
         keyframes (prepare + embed), the audio side on the decoded soundtracks; and the run's
         own split of time (ingest's stages).
    (V2) a long 720p film (--long-minutes, default 30), which ingest streams (keyframes and
         sound from the file, never the whole film), indexed end to end in a fresh process that
         samples its RSS every 50 ms, and the same for a film a tenth as long: goal, the long
         film's peak is no more than 10 % above the short one's (flat: memory that grew with
         the film would be ten times the signal's share).

Usage:
    .venv/bin/python scripts/bench_video.py [--clips 8] [--clip-seconds 60] [--long-minutes 30]
        [--model offline-default] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import DATA, ROOT, read_manifest, rss_now_mib
from videokit import soundtrack, write_long_video, write_video

from mmsearch import Library
from mmsearch.media.audio import decode_audio, read_audio
from mmsearch.media.video import keyframes

RATE = 16_000


def encoder_of(lib: Library) -> Any:
    return lib.encoder()


def photos(count: int) -> list[Image.Image]:
    paths = sorted({row["path"] for row in read_manifest(DATA / "coco_mini" / "manifest.csv")})
    return [Image.open(DATA / "coco_mini" / p).convert("RGB") for p in paths[:count]]


def esc50_sounds(count: int) -> list[np.ndarray]:
    rows = read_manifest(DATA / "esc50" / "manifest.csv")[:count]
    return [decode_audio(str(DATA / "esc50" / r["path"]), rate=RATE)[0] for r in rows]


def make_clips(folder: Path, clips: int, seconds: float, shot: float) -> float:
    folder.mkdir(parents=True)
    pictures = photos(clips * int(seconds // shot))
    sounds = esc50_sounds(16)
    per_clip = int(seconds // shot)
    for n in range(clips):
        shots = [(pictures[(n * per_clip + i) % len(pictures)], shot) for i in range(per_clip)]
        parts = [(sounds[(n + i) % len(sounds)] if i % 2 == 0 else None, shot) for i in range(per_clip)]
        write_video(folder / f"clip-{n:02d}.mp4", shots, size=(1280, 720), sound=soundtrack(parts, RATE),
                    rate=RATE, seed=n, preset="ultrafast")
    return clips * per_clip * shot


def step_rates(lib: Library, folder: Path, seconds: float) -> dict[str, float]:
    """Each step alone over the clips, one thread: x real time."""
    encoder = encoder_of(lib)
    files = sorted(str(p) for p in folder.glob("*.mp4"))
    t = time.perf_counter()
    frames = [k for f in files for k in keyframes(f, side=encoder.input_size)]
    decode_frames = time.perf_counter() - t
    t = time.perf_counter()
    waves = [np.concatenate(list(read_audio(f, rate=encoder.audio.sample_rate))) for f in files]
    decode_sound = time.perf_counter() - t
    t = time.perf_counter()
    for start in range(0, len(frames), 32):
        encoder.embed_images([encoder.prepare_image(k.image) for k in frames[start : start + 32]])
    image = time.perf_counter() - t
    t = time.perf_counter()
    for wave in waves:
        encoder.audio.embed_recording([wave])
    audio = time.perf_counter() - t
    return {
        "keyframes (decode + choose)": seconds / decode_frames,
        "soundtrack decode": seconds / decode_sound,
        "image side on keyframes": seconds / image,
        "audio side on soundtracks": seconds / audio,
        "keyframes per minute": len(frames) / (seconds / 60),
    }


def long_child(spec: dict[str, Any]) -> None:
    """In a fresh process: index the long film while sampling RSS; print the samples."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    with Library.open(spec["index"], model=spec["model"]) as lib:
        encoder_of(lib).warm()  # the model's load is not the film's memory

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.perf_counter(), rss_now_mib()))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.perf_counter()
        sampler.start()
        report = lib.index(spec["folder"])
        stop.set()
        sampler.join()
        took = time.perf_counter() - started
    print(json.dumps({"seconds": took, "samples": samples, "stages": report.stage_seconds,
                      "failed": report.failed}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--long-minutes", type=float, default=30.0)
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child")
    args = parser.parse_args(argv)
    if args.child:
        long_child(json.loads(args.child))
        return
    numbers: dict[str, Any] = {"cores": os.cpu_count(), "model": args.model}
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-video-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        seconds = make_clips(work / "clips", args.clips, args.clip_seconds, 5.0)
        print(f"(made {args.clips} clips, {seconds:.0f} s of 720p video, in {time.perf_counter() - t:.0f} s)", flush=True)
        with Library.open(work / "index", model=args.model) as lib:
            t = time.perf_counter()
            encoder_of(lib).warm()  # the model's load is not the film's memory
            load = time.perf_counter() - t
            t = time.perf_counter()
            report = lib.index(work / "clips")
            took = time.perf_counter() - t
            steps = step_rates(lib, work / "clips", seconds)
        rate = seconds / took
        numbers.update(clips_seconds=seconds, clips_wall_s=took, clips_x_real_time=rate, model_load_s=load,
                       steps=steps, stages=report.stage_seconds)
        print(f"\n(V1) {args.clips} clips x {args.clip_seconds:.0f} s, 1280x720 H.264 + AAC, model {args.model}")
        print(f"    end to end: {took:.1f} s for {seconds:.0f} s of video = {rate:.1f}x real time "
              f"(goal >= 20x) {'PASS' if rate >= 20 else 'FAIL'}; model load {load:.1f} s, not counted")
        for name, value in steps.items():
            unit = "" if "per minute" in name else "x real time"
            print(f"    alone, 1 thread: {name:28} {value:7.1f} {unit}")
        print("    the run's stages (s, reader threads' decode summed over threads): " +
              ", ".join(f"{k} {v:.1f}" for k, v in sorted(report.stage_seconds.items())))

        # Flat memory: the peak RSS of a fresh process indexing the long film, against the same
        # for a film a tenth as long (same model, same content). A pipeline that held the film,
        # its frames or its samples would grow with the length; one-time model buffers do not.
        peaks = {}
        sounds = esc50_sounds(24)
        short_minutes = max(args.long_minutes / 10, 2.5)  # past 2 minutes: streamed, like the long one
        for minutes in (short_minutes, args.long_minutes):
            t = time.perf_counter()
            length = minutes * 60
            track = soundtrack([(x, 5.0) for x in sounds] * int(length // (5.0 * len(sounds)) + 1), RATE)
            folder = work / f"long-{minutes:g}"
            folder.mkdir()
            write_long_video(folder / "film.mp4", photos(6), length, sound=track)
            size = (folder / "film.mp4").stat().st_size / 2**20
            print(f"\n(made a {minutes:g}-minute 720p film, {size:.0f} MB, in {time.perf_counter() - t:.0f} s)", flush=True)
            spec = {"index": str(work / f"index-{minutes:g}"), "model": args.model, "folder": str(folder)}
            child = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                   text=True, check=False, cwd=ROOT)
            if child.returncode != 0:
                raise SystemExit(f"the indexing child failed:\n{child.stderr[-3000:]}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            peaks[minutes] = max(r for _, r in result["samples"])
            rate = length / result["seconds"]
            print(f"(V2) {minutes:g}-minute film, streamed: {result['seconds']:.0f} s = {rate:.1f}x real time, "
                  f"peak RSS {peaks[minutes]:.0f} MiB; stages (s): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in sorted(result["stages"].items()) if v >= 0.05))
            numbers[f"film_{minutes:g}min"] = {"x_real_time": rate, "peak_rss_mib": peaks[minutes],
                                               "stages": result["stages"]}
        short, long = peaks[short_minutes], peaks[args.long_minutes]
        print(f"    peak RSS {args.long_minutes:g} min / {short_minutes:g} min = {long / short:.2f}x "
              f"(goal <= 1.10x: flat) {'PASS' if long <= 1.10 * short else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
