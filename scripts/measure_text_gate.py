"""Can something cheaper than the text detector's glance tell which photos to read? (issue 19)

Reading text in images costs every photo one glance: RapidOCR's detector on a 256 px copy
(`mmsearch/encoders/ocr.py`). A pre-gate would run before it and pass only photos that may
hold text. This script measures candidates against the glance itself (the teacher: the glance
at 256 px, probability >= 0.5), in one process on one thread, CPU time per photo:

  detector-S    the same detector on a smaller copy (longest side S), any pixel >= 0.1
  cell-probe    a logistic regression (degree-2 features) on 9 cheap statistics of 16 px cells
                of the grey 256 px copy (morphological gradient, thin-stroke top/black-hat,
                edge transitions across and down, local contrast); the photo's score is its
                best cell. Its threshold is the lowest score of a text image of the fitting set.
  features      (with --features) a logistic regression on the offline default's own pooled
                `visual` vector of the photo (free at index time: the model computes it anyway),
                thresholded like the cell probe.
  cnn           (with --cnn-epochs N) a 30k-parameter CNN on the grey 256 px copy, one logit per
                16 px cell, trained (torch, one thread) to reproduce where the glance's map is
                >= 0.5; the photo's score is its best cell, thresholded like the cell probe.

Data. Fitting (only images whose licence allows training shipped weights): coco_mini photos
whose Flickr licence is CC BY / CC BY-SA / no known copyright / US government (license_id 4,
5, 7, 8), cropped and flipped at random, and generated backgrounds; with and without generated
text (pseudo-words in the DejaVu / Liberation fonts: boards, captions, pages). Checking
(held-out, evaluation use only): imagenet_sample and the non-commercial coco_mini photos as they
are and with a word pasted on in PIL's default font (as scripts/eval_read_text.py does), the
neardup queries, and generated pages in the default font.

A gate is good when it passes almost every text image the glance would read (recall against
the glance on the checking set) and few plain photos, for much less than the glance's CPU.

Usage:
    .venv/bin/python scripts/measure_text_gate.py [--data ../shared/data] [--seed 11]
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmsearch.encoders.ocr import GLANCE_MIN_PROBABILITY, GLANCE_SIDE, TextReader, _rgb, _shrunk
from mmsearch.media import decode_image

USABLE_LICENCES = {4, 5, 7, 8}  # COCO's CC BY, CC BY-SA, no known copyright, US government
MODEL_SIDE = 260  # the offline default's image model decodes photos to this shorter side
CELL = 16


def model_copy(image: Image.Image) -> np.ndarray:
    """The picture as the pipeline has it: a JPEG decoded for the image model."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=88)
    return _rgb(
        decode_image(buffer.getvalue(), path="x.jpg", max_pixels=10**9, min_side=MODEL_SIDE).image
    )


# ---- generated images -------------------------------------------------------------------------


def pseudo_word(rng: random.Random) -> str:
    word = "".join(
        rng.choice("aeiou" if i % 2 else "bcdfghklmnprstvwz") for i in range(rng.randint(2, 11))
    )
    pick = rng.random()
    return (
        word.upper()
        if pick < 0.3
        else word.capitalize()
        if pick < 0.7
        else word
        if pick < 0.9
        else str(rng.randint(1, 9999))
    )


def phrase(rng: random.Random, words: int = 0) -> str:
    return " ".join(pseudo_word(rng) for _ in range(words or rng.randint(1, 3)))


def background(rng: random.Random, width: int, height: int) -> Image.Image:
    """A generated picture: a gradient, blurred noise at some scale, or coloured shapes."""
    kind = rng.random()
    noise = np.random.default_rng(rng.randint(0, 10**6))
    if kind < 0.3:
        a, b = (np.array([rng.randint(0, 255) for _ in range(3)]) for _ in range(2))
        t = (
            np.linspace(0, 1, width)[None, :, None]
            if rng.random() < 0.5
            else np.linspace(0, 1, height)[:, None, None]
        )
        pixels = np.zeros((height, width, 3)) + a * (1 - t) + b * t
    elif kind < 0.7:
        step = rng.choice([4, 8, 16, 32, 64])
        coarse = noise.uniform(0, 255, (height // step + 2, width // step + 2, 3)).astype(np.uint8)
        pixels = np.asarray(
            Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float64
        )
    else:
        image = Image.new("RGB", (width, height), tuple(rng.randint(0, 255) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(3, 30)):
            x, y = rng.randint(0, width), rng.randint(0, height)
            box = (x, y, x + rng.randint(5, width // 2), y + rng.randint(5, height // 2))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(
                box, fill=tuple(rng.randint(0, 255) for _ in range(3))
            )
        pixels = np.asarray(image, np.float64)
    if rng.random() < 0.5:
        pixels = pixels + noise.normal(0, rng.uniform(2, 20), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def crop_of(path: str, rng: random.Random) -> Image.Image:
    image = Image.open(path).convert("RGB")
    width, height = image.size
    scale = rng.uniform(0.6, 1)
    w, h = int(width * scale), int(height * scale)
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    image = image.crop((x, y, x + w, y + h))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def font(rng: random.Random, size: int, fonts: list[str]) -> Any:
    return (
        ImageFont.truetype(rng.choice(fonts), size) if fonts else ImageFont.load_default(size=size)
    )


def with_text(image: Image.Image, rng: random.Random, fonts: list[str]) -> Image.Image:
    """`image` with a few words on it: on a board, or written straight on (caption, watermark)."""
    image = image.copy()
    width, height = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    face = font(rng, max(9, int(min(width, height) * rng.uniform(0.03, 0.15))), fonts)
    text = "\n".join(phrase(rng) for _ in range(1 if rng.random() < 0.6 else rng.randint(2, 5)))
    box = draw.multiline_textbbox((0, 0), text, font=face)
    tw, th = box[2] - box[0], box[3] - box[1]
    x, y = rng.randint(0, max(0, width - tw - 20)), rng.randint(0, max(0, height - th - 20))
    if rng.random() < 0.6:
        board = tuple(rng.randint(0, 255) for _ in range(3))
        pad = rng.randint(3, 20)
        draw.rectangle((x, y, x + tw + 2 * pad, y + th + 2 * pad), fill=board)
        ink = (15, 15, 15) if sum(board) > 380 else (245, 245, 245)
        draw.multiline_text((x + pad - box[0], y + pad - box[1]), text, fill=ink, font=face)
    else:
        alpha = rng.choice([255, 255, 200, 140])
        ink = rng.choice([(255, 255, 255), (0, 0, 0), (255, 220, 0), (200, 0, 0)])
        if rng.random() < 0.5:
            draw.multiline_text(
                (x + 2 - box[0], y + 2 - box[1]), text, fill=(0, 0, 0, alpha), font=face
            )
        draw.multiline_text((x - box[0], y - box[1]), text, fill=(*ink, alpha), font=face)
    if rng.random() < 0.3:
        image = image.rotate(
            rng.uniform(-12, 12), resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)
        )
    return image


def page(rng: random.Random, fonts: list[str]) -> Image.Image:
    """A screenshot or slide: lines of words on a light or dark ground."""
    width = rng.choice([800, 1024, 1280, 1366, 1600])
    height = int(width * rng.choice([0.56, 0.62, 0.75, 1.3]))
    light = rng.random() < 0.7
    ground = tuple(rng.randint(200, 255) if light else rng.randint(0, 60) for _ in range(3))
    image = Image.new("RGB", (width, height), ground)
    draw = ImageDraw.Draw(image)
    size = rng.randint(12, 40) if rng.random() < 0.7 else rng.randint(40, 90)
    face = font(rng, size, fonts)
    y = rng.randint(10, 60)
    while y < height - size and rng.random() < 0.97:
        draw.text(
            (rng.randint(10, 80), y),
            phrase(rng, rng.randint(1, 9)),
            fill=(20, 20, 20) if light else (230, 230, 230),
            font=face,
        )
        y += int(size * rng.uniform(1.2, 2.2)) + (rng.randint(20, 200) if rng.random() < 0.1 else 0)
    return image


def build(data: Path, rng: random.Random) -> list[dict[str, Any]]:
    """(split, has generated text, name, model copy) of every image measured."""
    with open(data / "coco_mini" / "manifest.csv", newline="") as manifest:
        licences = {r["path"]: int(r["license_id"]) for r in csv.DictReader(manifest)}
    usable = sorted(
        str(data / "coco_mini" / p) for p, lic in licences.items() if lic in USABLE_LICENCES
    )
    held = sorted(
        str(data / "coco_mini" / p) for p, lic in licences.items() if lic not in USABLE_LICENCES
    )
    imagenet = sorted(glob.glob(str(data / "imagenet_sample" / "*.JPEG")))
    fonts = sorted(f for f in glob.glob("/usr/share/fonts/truetype/*/*.ttf") if "Math" not in f)
    out: list[dict[str, Any]] = []

    def add(split: str, text: bool, name: str, image: Image.Image) -> None:
        out.append({"split": split, "text": text, "name": name, "rgb": model_copy(image)})

    sizes = [(640, 480), (500, 375), (800, 600), (480, 640)]
    for i in range(240):
        add("fit", False, f"photo-{i}", crop_of(rng.choice(usable), rng))
    for i in range(160):
        add("fit", False, f"generated-{i}", background(rng, *rng.choice(sizes)))
    for i in range(240):
        base = crop_of(rng.choice(usable), rng) if rng.random() < 0.7 else background(rng, 640, 480)
        add("fit", True, f"sign-{i}", with_text(base, rng, fonts))
    for i in range(80):
        add("fit", True, f"page-{i}", page(rng, fonts))
    for path in imagenet + held + sorted(glob.glob(str(data / "neardup" / "queries" / "*.jpg"))):
        add("check", False, "plain:" + path, Image.open(path))
    for path in imagenet[:150] + held:
        add("check", True, "sign:" + path, with_text(Image.open(path).convert("RGB"), rng, []))
    for i in range(60):
        add("check", True, f"page-{i}", page(rng, []))
    return out


# ---- gates ------------------------------------------------------------------------------------


def detector_max(detector: Any, rgb: np.ndarray, side: int) -> float:
    small = np.ascontiguousarray(_shrunk(rgb, side)[:, :, ::-1])
    return float(detector.infer(detector.get_preprocess(max(small.shape[:2]))(small))[0].max())


def cell_statistics(rgb: np.ndarray) -> np.ndarray:
    """9 statistics of each 16 px cell (half overlapping) of the grey 256 px copy."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(_shrunk(rgb, GLANCE_SIDE)), cv2.COLOR_RGB2GRAY)
    k3, k5 = np.ones((3, 3), np.uint8), np.ones((5, 5), np.uint8)
    gradient = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, k3)
    stroke = np.maximum(
        cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, k5), cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, k5)
    )
    edges = (gradient > 48).astype(np.int8)
    height, width = grey.shape
    signed = grey.astype(np.int16)

    def pool(m: np.ndarray) -> np.ndarray:
        m = np.pad(m.astype(np.float32), ((0, height - m.shape[0]), (0, width - m.shape[1])))
        s = cv2.boxFilter(m, -1, (CELL, CELL), borderType=cv2.BORDER_REFLECT)
        return s[CELL // 2 :: CELL // 2, CELL // 2 :: CELL // 2]

    spread = cv2.dilate(grey, np.ones((CELL, CELL), np.uint8)).astype(np.float32) - cv2.erode(
        grey, np.ones((CELL, CELL), np.uint8)
    )
    maps = [
        pool(gradient / 255), pool(stroke / 255), pool(stroke > 40), pool(edges),
        pool(np.abs(np.diff(edges, axis=1))), pool(np.abs(np.diff(edges, axis=0))),
        pool(np.abs(np.diff(signed, axis=1)) / 255), pool(np.abs(np.diff(signed, axis=0)) / 255),
        (spread / 255)[CELL // 2 :: CELL // 2, CELL // 2 :: CELL // 2],
    ]  # fmt: skip
    return np.stack(maps, -1).reshape(-1, len(maps))


def cell_targets(detector: Any, rgb: np.ndarray) -> np.ndarray:
    """Per cell of `cell_statistics`: does the glance see text there?"""
    import cv2

    small = np.ascontiguousarray(_shrunk(rgb, GLANCE_SIDE)[:, :, ::-1])
    probability = detector.infer(detector.get_preprocess(max(small.shape[:2]))(small))[0].squeeze()
    height, width = small.shape[:2]
    p = cv2.resize(probability.astype(np.float32), (width, height))
    best = cv2.dilate(p, np.ones((CELL, CELL), np.uint8))[
        CELL // 2 :: CELL // 2, CELL // 2 :: CELL // 2
    ]
    return (best >= GLANCE_MIN_PROBABILITY).reshape(-1)


def train_cnn(greys: list[np.ndarray], targets: list[np.ndarray], epochs: int) -> Any:
    """The CNN gate, fitted on the fitting split: per 16 px cell, is the glance's map >= 0.5?"""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for cin, cout, stride in (
        (1, 8, 2),
        (8, 16, 2),
        (16, 24, 2),
        (24, 32, 1),
        (32, 32, 2),
        (32, 32, 1),
    ):
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Conv2d(32, 1, 1))
    side = GLANCE_SIDE // CELL
    x = torch.zeros(len(greys), 1, GLANCE_SIDE, GLANCE_SIDE)
    y, mask = torch.zeros(len(greys), side, side), torch.zeros(len(greys), side, side)
    for i, (grey, target) in enumerate(zip(greys, targets)):
        x[i, 0, : grey.shape[0], : grey.shape[1]] = torch.from_numpy(
            (grey.astype(np.float32) - 128) / 64
        )
        y[i, : target.shape[0], : target.shape[1]] = torch.from_numpy(target.astype(np.float32))
        mask[i, : target.shape[0], : target.shape[1]] = 1
    optimiser = torch.optim.Adam(model.parameters(), 5e-3)
    steps = epochs * -(-len(greys) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 5e-3, total_steps=steps)
    for _ in range(epochs):
        for batch in torch.randperm(len(greys)).split(32):
            xb, yb, mb = x[batch], y[batch], mask[batch]
            if torch.rand(1) < 0.5:
                xb, yb, mb = xb.flip(-1), yb.flip(-1), mb.flip(-1)
            out = model(xb)[:, 0]
            loss = (
                nn.functional.binary_cross_entropy_with_logits(
                    out, yb, weight=mb * (1 + 3 * yb), reduction="sum"
                )
                / mb.sum()
            )
            best, wanted = out.masked_fill(mb == 0, -1e4).amax((1, 2)), (yb * mb).amax((1, 2))
            loss = loss + nn.functional.binary_cross_entropy_with_logits(
                best, wanted, weight=1 + 2 * wanted
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()

    def score(rgb: np.ndarray) -> float:
        import cv2

        grey = cv2.cvtColor(np.ascontiguousarray(_shrunk(rgb, GLANCE_SIDE)), cv2.COLOR_RGB2GRAY)
        with torch.no_grad():
            return float(
                torch.sigmoid(
                    model(torch.from_numpy((grey.astype(np.float32) - 128) / 64)[None, None])
                ).max()
            )

    return score


def cell_grid(detector: Any, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grey 256 px copy, and per 16 px cell (not overlapping): does the glance see text?"""
    import cv2

    small = np.ascontiguousarray(_shrunk(rgb, GLANCE_SIDE))
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    probability = detector.infer(detector.get_preprocess(max(bgr.shape[:2]))(bgr))[0].squeeze()
    height, width = grey.shape
    p = cv2.resize(probability.astype(np.float32), (width, height))
    rows, cols = -(-height // CELL), -(-width // CELL)
    padded = np.zeros((rows * CELL, cols * CELL), np.float32)
    padded[:height, :width] = p
    return grey, padded.reshape(rows, CELL, cols, CELL).max(axis=(1, 3)) >= GLANCE_MIN_PROBABILITY


def visual_features(items: list[dict[str, Any]]) -> np.ndarray:
    """The offline default's pooled `visual` vector of each image, as indexing computes it."""
    from mmsearch.encoders.base import VISUAL
    from mmsearch.encoders.registry import load_encoder, resolve_model

    encoder = load_encoder(resolve_model("offline-default"))
    rows = []
    for start in range(0, len(items), 32):
        batch = [encoder.prepare_image(Image.fromarray(i["rgb"])) for i in items[start : start + 32]]
        rows.append(np.asarray(encoder.embed_images(batch)[VISUAL]))
    return np.concatenate(rows)


def cpu_ms(fn: Any, items: list[dict[str, Any]]) -> tuple[list[Any], float]:
    started = time.process_time()
    values = [fn(item["rgb"]) for item in items]
    return values, 1000 * (time.process_time() - started) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--cnn-epochs", type=int, default=0, help="also train and measure the CNN gate"
    )
    parser.add_argument(
        "--features", action="store_true",
        help="also measure a probe on the offline default's pooled visual vectors",
    )
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    items = build(args.data, random.Random(args.seed))
    detector = TextReader()._engine().text_det  # one onnxruntime thread, as indexing runs it
    glance, glance_ms = cpu_ms(lambda rgb: detector_max(detector, rgb, GLANCE_SIDE), items)
    seen = np.array(glance) >= GLANCE_MIN_PROBABILITY
    fit = np.array([i["split"] == "fit" for i in items])
    plain = ~fit & ~np.array([i["text"] for i in items])
    text = ~fit & seen  # the checking images the glance would read
    print(
        f"images: {fit.sum()} fitting, {(~fit).sum()} checking ({plain.sum()} plain photos, "
        f"{(~fit & ~plain).sum()} with generated text, {text.sum()} of all checking images seen by the glance)"
    )
    print(
        f"glance at {GLANCE_SIDE} px: {glance_ms:.1f} ms CPU per image; passes {seen[plain].mean():.3f} of plain photos"
    )
    print(
        "| gate | ms CPU per image | recall against the glance (check) | plain photos passed (check) |"
    )
    print("|---|---|---|---|")
    for side in (128, 160, 192, 224):
        scores, ms = cpu_ms(lambda rgb: detector_max(detector, rgb, side), items)  # noqa: B023
        passed = np.array(scores) >= 0.1
        print(
            f"| detector-{side} | {ms:.1f} | {passed[text].mean():.3f} | {passed[plain].mean():.3f} |"
        )
    cells, ms = cpu_ms(cell_statistics, items)
    targets = [cell_targets(detector, item["rgb"]) for item, f in zip(items, fit) if f]
    probe = make_pipeline(
        StandardScaler(),
        PolynomialFeatures(2),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )
    probe.fit(np.concatenate([c for c, f in zip(cells, fit) if f]), np.concatenate(targets))
    score = np.array([probe.predict_proba(c)[:, 1].max() for c in cells])
    threshold = score[fit & seen].min()
    passed = score >= threshold
    print(
        f"| cell-probe (threshold {threshold:.3f}) | {ms:.1f} + the probe | {passed[text].mean():.3f} | {passed[plain].mean():.3f} |"
    )
    if args.features:
        features = visual_features(items)
        probe = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.01, max_iter=5000, class_weight="balanced")
        )
        probe.fit(features[fit], seen[fit])
        score = probe.predict_proba(features)[:, 1]
        threshold = score[fit & seen].min()
        passed = score >= threshold
        print(
            f"| features (threshold {threshold:.3f}) | free (the model's own vector) | {passed[text].mean():.3f} | {passed[plain].mean():.3f} |"
        )
    if args.cnn_epochs:
        grids = [cell_grid(detector, item["rgb"]) for item, f in zip(items, fit) if f]
        cnn = train_cnn([g for g, _ in grids], [t for _, t in grids], args.cnn_epochs)
        scores, ms = cpu_ms(cnn, items)
        score = np.array(scores)
        threshold = score[fit & seen].min()
        passed = score >= threshold
        print(
            f"| cnn, {args.cnn_epochs} epochs (threshold {threshold:.3f}) | {ms:.1f} (torch) | {passed[text].mean():.3f} | {passed[plain].mean():.3f} |"
        )


if __name__ == "__main__":
    main()
