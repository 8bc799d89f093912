"""Tests for mmsearch.media: discovering files, decoding images and text, chunking, name words."""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from mmsearch.errors import MediaError
from mmsearch.media import (
    IMAGE,
    TEXT,
    FoundFile,
    Unreadable,
    chunk_text,
    decode_image,
    decode_text,
    discover,
    kind_of,
    name_words,
)
from mmsearch.media import images as images_module

MAX_PIXELS = 200_000_000
RED = (220, 30, 30)
GREEN = (30, 170, 50)
BLUE = (30, 60, 220)
WHITE = (255, 255, 255)


# --------------------------------------------------------------------------- helpers


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(colour, size=(64, 48), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def close_to(pixel, colour, tolerance=12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, colour))


def decode(data: bytes, path: str = "/photos/x.jpg", **kwargs):
    kwargs.setdefault("max_pixels", MAX_PIXELS)
    return decode_image(data, path=path, **kwargs)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, colour_type: int = 2) -> bytes:
    """A valid PNG header claiming a size, with a tiny IDAT: how a decompression bomb looks."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def can_save(fmt: str) -> bool:
    try:
        encode(solid(RED, (16, 16)), fmt)
    except (KeyError, OSError, ValueError):
        return False
    return True


def heif_bytes(image: Image.Image, **options) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is not installed")
    pillow_heif.register_heif_opener()
    if not can_save("HEIF"):
        pytest.skip("this pillow-heif has no HEIF encoder")
    return encode(image, "HEIF", **options)


def avif_bytes(image: Image.Image) -> bytes:
    if not features.check("avif") or not can_save("AVIF"):
        pytest.skip("this Pillow cannot encode AVIF")
    return encode(image, "AVIF")


# --------------------------------------------------------------------------- kinds


def test_kind_of_by_extension_case_insensitive():
    assert kind_of("/a/B.JPG") == IMAGE
    assert kind_of("x.HeIc") == IMAGE
    assert kind_of("notes.md") == TEXT
    assert kind_of(Path("readme.TXT")) == TEXT
    assert kind_of("movie.MP4") == "video"
    assert kind_of("clip.mov") == "video"
    assert kind_of("app.ts") is None  # TypeScript far more often than MPEG-TS in a home folder
    assert kind_of("data.csv") is None
    assert kind_of("no_extension") is None
    assert kind_of(".jpg") is None  # a hidden file called ".jpg" has no extension


# --------------------------------------------------------------------------- images: formats


@pytest.mark.parametrize(
    ("fmt", "name", "tolerance"),
    [
        ("JPEG", "a.jpg", 12),
        ("PNG", "a.png", 0),
        ("WEBP", "a.webp", 12),
        ("GIF", "a.gif", 12),
        ("BMP", "a.bmp", 0),
        ("TIFF", "a.tiff", 0),
        ("HEIF", "a.heic", 16),
        ("AVIF", "a.avif", 16),
    ],
)
def test_every_format_decodes_to_rgb(fmt, name, tolerance):
    image = solid(RED, (64, 48))
    if fmt == "HEIF":
        data = heif_bytes(image)
    elif fmt == "AVIF":
        data = avif_bytes(image)
    else:
        data = encode(image, fmt)
    decoded = decode(data, path=f"/p/{name}")
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.image.size == (64, 48)
    assert close_to(decoded.image.getpixel((32, 24)), RED, tolerance)
    assert decoded.taken_at is None


def test_extension_is_not_trusted():
    # A PNG named .jpg decodes fine: the content decides.
    decoded = decode(encode(solid(GREEN), "PNG"), path="/p/really_a_png.jpg")
    assert decoded.image.getpixel((1, 1)) == GREEN


def test_exif_rotated_jpeg_swaps_width_and_height_and_reads_date():
    image = Image.new("RGB", (80, 40), RED)
    image.paste(BLUE, (40, 0, 80, 40))  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    exif.get_ifd(0x8769)[0x9003] = "2019:07:14 10:20:30"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0x9011] = "+02:00"  # OffsetTimeOriginal
    decoded = decode(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert (decoded.width, decoded.height) == (40, 80)
    assert decoded.image.size == (40, 80)
    # Rotated clockwise, the left (red) half of the stored picture is now at the top.
    assert close_to(decoded.image.getpixel((20, 10)), RED, 20)
    assert close_to(decoded.image.getpixel((20, 70)), BLUE, 20)
    assert decoded.taken_at == "2019-07-14T10:20:30+02:00"


def test_heif_orientation_is_applied_once():
    image = Image.new("RGB", (80, 40), RED)
    image.paste(BLUE, (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = heif_bytes(image, exif=exif.tobytes())
    decoded = decode(data, path="/p/r.heic")
    assert (decoded.width, decoded.height) == (40, 80)
    assert close_to(decoded.image.getpixel((20, 10)), RED, 20)
    assert close_to(decoded.image.getpixel((20, 70)), BLUE, 20)


def test_near_square_jpeg_reduced_still_reports_rotated_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (2000, 1993), RED), "JPEG", exif=exif.tobytes())
    decoded = decode(data, min_side=224)  # drafted to 250x250: size alone shows no rotation
    assert (decoded.width, decoded.height) == (1993, 2000)


def test_exif_datetime_fallback_and_garbage_dates():
    exif = Image.Exif()
    exif[0x0132] = "2020:01:02 03:04:05"  # DateTime only
    assert decode(encode(solid(RED), "JPEG", exif=exif.tobytes())).taken_at == "2020-01-02T03:04:05"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    assert decode(encode(solid(RED), "JPEG", exif=exif.tobytes())).taken_at is None


def test_transparent_png_becomes_white_where_transparent():
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.paste((30, 170, 50, 255), (20, 0, 40, 20))
    decoded = decode(encode(image, "PNG"), path="/p/t.png")
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((5, 10)) == WHITE
    assert decoded.image.getpixel((30, 10)) == GREEN


def test_half_transparent_pixels_blend_with_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    pixel = decode(encode(image, "PNG"), path="/p/t.png").image.getpixel((1, 1))
    assert all(120 <= c <= 135 for c in pixel)


def test_palette_with_transparency_and_la_become_white():
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 0, 220, 30, 30] + [0] * 762)
    palette.paste(1, (5, 0, 10, 10))
    data = encode(palette, "PNG", transparency=0)
    decoded = decode(data, path="/p/p.png")
    assert decoded.image.getpixel((2, 2)) == WHITE
    assert decoded.image.getpixel((7, 2)) == RED

    la = Image.new("LA", (4, 4), (0, 0))
    assert decode(encode(la, "PNG"), path="/p/la.png").image.getpixel((0, 0)) == WHITE


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "a.gif"), ("WEBP", "a.webp"), ("PNG", "a.png")])
def test_animation_gives_the_first_frame(fmt, name):
    frames = [solid(RED, (32, 32)), solid(BLUE, (32, 32)), solid(GREEN, (32, 32))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3
    decoded = decode(data, path=f"/p/{name}")
    assert close_to(decoded.image.getpixel((16, 16)), RED, 12)


def test_gif_with_transparent_background_becomes_white():
    frame = Image.new("P", (10, 10), 0)
    frame.putpalette([0, 0, 0, 30, 60, 220] + [0] * 762)
    frame.paste(1, (0, 0, 5, 10))
    decoded = decode(encode(frame, "GIF", transparency=0), path="/p/t.gif")
    assert decoded.image.getpixel((2, 5)) == BLUE
    assert decoded.image.getpixel((8, 5)) == WHITE


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    array = np.full((8, 8), 32768, dtype=np.uint16)
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    decoded = decode(encode(image, "PNG"), path="/p/deep.png")
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((1, 1)) == (128, 128, 128)


def test_float_tiff_is_stretched_to_the_full_range():
    array = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    decoded = decode(encode(Image.fromarray(array), "TIFF"), path="/p/f.tif")
    assert decoded.image.getpixel((0, 0)) == (0, 0, 0)
    assert decoded.image.getpixel((7, 7)) == (255, 255, 255)


def test_cmyk_jpeg_and_greyscale_become_rgb():
    cmyk = decode(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    assert cmyk.image.mode == "RGB"
    assert close_to(cmyk.image.getpixel((8, 8)), (255, 0, 0), 20)
    grey = decode(encode(Image.new("L", (16, 16), 90), "PNG"), path="/p/g.png")
    assert grey.image.getpixel((3, 3)) == (90, 90, 90)
    bilevel = decode(encode(Image.new("1", (16, 16), 1), "BMP"), path="/p/b.bmp")
    assert bilevel.image.getpixel((3, 3)) == WHITE


# --------------------------------------------------------------------------- images: reduction


def test_big_jpeg_with_min_side_is_reduced_but_not_below_min_side():
    image = Image.new("RGB", (4000, 3000), RED)
    data = encode(image, "JPEG", quality=80)
    decoded = decode(data, min_side=224)
    assert (decoded.width, decoded.height) == (4000, 3000)  # the original size is reported
    assert min(decoded.image.size) >= 224
    assert decoded.image.size[0] <= 1000  # decoded at 1/8 (500x375), not 4000x3000
    assert close_to(decoded.image.getpixel((100, 100)), RED, 12)
    full = decode(data)
    assert full.image.size == (4000, 3000)


def test_rotated_jpeg_with_min_side_keeps_the_shorter_side():
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode(Image.new("RGB", (2400, 1600), BLUE), "JPEG", exif=exif.tobytes())
    decoded = decode(data, min_side=300)
    assert (decoded.width, decoded.height) == (1600, 2400)
    width, height = decoded.image.size
    assert height > width >= 300


def test_other_formats_are_reduced_too_with_min_side():
    data = encode(Image.new("RGB", (1000, 800), GREEN), "PNG")
    decoded = decode(data, path="/p/big.png", min_side=100)
    assert (decoded.width, decoded.height) == (1000, 800)
    assert 100 <= min(decoded.image.size) < 200


def test_small_image_with_min_side_is_left_alone():
    decoded = decode(encode(solid(RED, (50, 40)), "JPEG"), min_side=224)
    assert decoded.image.size == (50, 40)


# --------------------------------------------------------------------------- images: bad input


def test_png_header_claiming_a_huge_size_is_a_decompression_bomb():
    data = png_header_only(100_000, 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(MediaError) as caught:
            decode(data, path="/p/bomb.png")
    assert caught.value.path == "/p/bomb.png"
    assert "/p/bomb.png" in str(caught.value)
    assert "decompression bomb" in caught.value.reason
    assert "10000000000 pixels" in caught.value.reason


def test_real_image_above_a_small_max_pixels_is_refused():
    data = encode(solid(RED, (2000, 2000)), "PNG")
    with pytest.raises(MediaError, match="4000000 pixels, above the 1000000 limit"):
        decode(data, path="/p/large.png", max_pixels=1_000_000)


def test_our_limit_not_pils_decides(monkeypatch):
    # 95 Mpx: over PIL's default warning threshold (89 Mpx), under our limit. No warning, and
    # the failure is the truncated data, not PIL's limit. Greyscale keeps the buffer at 95 MB.
    data = png_header_only(10_000, 9_500, colour_type=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MediaError, match="truncated or corrupt PNG"):
            decode(data, path="/p/tall.png")


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "t.jpg"), ("PNG", "t.png"), ("WEBP", "t.webp")])
def test_truncated_image_is_an_error(fmt, name):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    data = encode(noise, fmt)
    with pytest.raises(MediaError, match="truncated or corrupt") as caught:
        decode(data[: len(data) // 2], path=f"/p/{name}")
    assert caught.value.path == f"/p/{name}"


def test_jpeg_cut_inside_its_header_is_called_corrupt_not_non_image():
    data = encode(solid(RED), "JPEG")
    with pytest.raises(MediaError, match="truncated or corrupt JPEG"):
        decode(data[:40])


def test_text_named_jpg_is_not_an_image():
    with pytest.raises(MediaError) as caught:
        decode(b"Dear diary, today I took no photos at all.\n", path="/p/diary.jpg")
    assert caught.value.reason == "not an image although named .jpg"
    assert caught.value.path == "/p/diary.jpg"


def test_zero_bytes_is_an_empty_file():
    with pytest.raises(MediaError, match="empty file"):
        decode(b"", path="/p/empty.png")


def test_missing_heif_support_says_what_to_install(monkeypatch):
    monkeypatch.setattr(images_module, "_heif_available", False)
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32
    reason = images_module._unidentified_reason(data, "/p/x.heic")
    assert "install pillow-heif" in reason


def test_decoding_from_many_threads_at_once():
    formats = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
    jobs = []
    for i in range(50):
        colour = (i * 5 % 256, 255 - i * 5 % 256, (i * 37) % 256)
        fmt = formats[i % len(formats)]
        size = (300 + i, 200 + i)
        options = {"quality": 95} if fmt == "JPEG" else {}
        jobs.append((colour, size, encode(solid(colour, size), fmt, **options)))
    threads_seen = set()

    def work(job):
        colour, size, data = job
        threads_seen.add(threading.get_ident())
        decoded = decode(data, path="/p/x", min_side=64)
        return colour, size, decoded

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, jobs))
    for colour, size, decoded in results:
        assert (decoded.width, decoded.height) == size
        assert min(decoded.image.size) >= 64
        # GIF's palette quantises colours: allow a generous tolerance.
        assert close_to(decoded.image.getpixel((10, 10)), colour, 40)


# --------------------------------------------------------------------------- discover


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def found_paths(results) -> list[str]:
    return [r.path for r in results if isinstance(r, FoundFile)]


def problems(results) -> list[Unreadable]:
    return [r for r in results if isinstance(r, Unreadable)]


def test_discover_yields_supported_files_with_stat_in_sorted_order(tmp_path):
    touch(tmp_path / "b.jpg", b"12345")
    touch(tmp_path / "a.TXT", b"hello")
    touch(tmp_path / "sub" / "c.png")
    touch(tmp_path / "empty.md", b"")
    touch(tmp_path / "program.exe")
    touch(tmp_path / "report.pdf")
    touch(tmp_path / "noext")
    results = list(discover([tmp_path]))
    assert problems(results) == []
    assert found_paths(results) == [
        str(tmp_path / "a.TXT"),
        str(tmp_path / "b.jpg"),
        str(tmp_path / "empty.md"),
        str(tmp_path / "sub" / "c.png"),
    ]
    by_name = {os.path.basename(r.path): r for r in results}
    assert by_name["b.jpg"].size == 5
    assert by_name["b.jpg"].kind == IMAGE
    assert by_name["a.TXT"].kind == TEXT
    assert by_name["empty.md"].size == 0  # zero-byte files are yielded; decoding reports them
    assert by_name["b.jpg"].mtime_ns == os.stat(tmp_path / "b.jpg").st_mtime_ns
    assert list(discover([tmp_path])) == results  # deterministic


def test_discover_paths_are_absolute_and_not_resolved(tmp_path, monkeypatch):
    touch(tmp_path / "real" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    monkeypatch.chdir(tmp_path)
    assert found_paths(discover(["alias"])) == [str(tmp_path / "alias" / "a.jpg")]
    assert found_paths(discover(["./real/../real/"])) == [str(tmp_path / "real" / "a.jpg")]


def test_discover_skips_hidden_files_and_folders(tmp_path):
    touch(tmp_path / "visible.jpg")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".git" / "notes.txt")
    touch(tmp_path / ".cache" / "sub" / "x.png")
    touch(tmp_path / "@eaDir" / "visible.jpg" / "SYNOPHOTO_THUMB_XL.jpg")
    assert found_paths(discover([tmp_path])) == [str(tmp_path / "visible.jpg")]


def test_discover_single_file_root(tmp_path):
    photo = touch(tmp_path / "one.jpg", b"abc")
    assert list(discover([photo])) == [
        FoundFile(str(photo), 3, os.stat(photo).st_mtime_ns, IMAGE)
    ]
    other = touch(tmp_path / "table.csv")
    (result,) = discover([other])
    assert isinstance(result, Unreadable) and "not a supported" in result.reason


def test_discover_missing_root_raises_before_walking(tmp_path):
    touch(tmp_path / "a.jpg")
    with pytest.raises(MediaError, match="no such file or folder") as caught:
        discover([tmp_path, tmp_path / "nope"])  # raises at the call, nothing is yielded
    assert caught.value.path == str(tmp_path / "nope")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    with pytest.raises(MediaError, match="broken symlink"):
        discover([tmp_path / "dangling"])


def test_discover_symlink_loop_is_reported_once_and_the_walk_finishes(tmp_path):
    touch(tmp_path / "a" / "b" / "deep.jpg")
    touch(tmp_path / "z.jpg")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "back_up")
    os.symlink(".", tmp_path / "a" / "self")
    results = list(discover([tmp_path]))
    assert found_paths(results) == [str(tmp_path / "z.jpg"), str(tmp_path / "a" / "b" / "deep.jpg")]
    loops = problems(results)
    assert sorted(p.path for p in loops) == [
        str(tmp_path / "a" / "b" / "back_up"),
        str(tmp_path / "a" / "self"),
    ]
    assert {p.reason for p in loops} == {"symlink loop"}


def test_discover_symlink_to_itself_is_a_loop(tmp_path):
    os.symlink("me.jpg", tmp_path / "me.jpg")
    (result,) = discover([tmp_path])
    assert result == Unreadable(str(tmp_path / "me.jpg"), "symlink loop")


def test_discover_yields_a_file_reached_twice_once_under_its_real_path(tmp_path):
    touch(tmp_path / "real" / "photo.jpg")
    os.symlink(tmp_path / "real" / "photo.jpg", tmp_path / "a_link.jpg")  # sorts first
    os.symlink(tmp_path / "real", tmp_path / "a_folder_link")
    results = list(discover([tmp_path]))
    assert problems(results) == []
    assert found_paths(results) == [str(tmp_path / "real" / "photo.jpg")]


def test_discover_follows_symlinks_to_outside_folders_and_files(tmp_path):
    outside = tmp_path / "outside"
    touch(outside / "far.jpg")
    touch(outside / "other.txt")
    root = tmp_path / "root"
    touch(root / "here.jpg")
    os.symlink(outside, root / "linked")
    os.symlink(outside / "other.txt", root / "note.txt")
    assert found_paths(discover([root])) == [
        str(root / "here.jpg"),
        str(root / "linked" / "far.jpg"),
        str(root / "linked" / "other.txt"),
    ]


def test_discover_overlapping_roots_yield_each_file_once(tmp_path):
    touch(tmp_path / "sub" / "a.jpg")
    assert found_paths(discover([tmp_path / "sub", tmp_path])) == [str(tmp_path / "sub" / "a.jpg")]


def test_discover_reports_broken_symlinks(tmp_path):
    touch(tmp_path / "ok.jpg")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "broken.jpg")
    os.symlink(tmp_path / "missing.so", tmp_path / "library.so")  # never indexed: no report
    results = list(discover([tmp_path]))
    assert found_paths(results) == [str(tmp_path / "ok.jpg")]
    assert problems(results) == [Unreadable(str(tmp_path / "broken.jpg"), "broken symlink")]


def test_discover_reports_non_utf8_names_printably(tmp_path):
    touch(tmp_path / "fine.jpg")
    bad_file = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    bad_folder = os.path.join(os.fsencode(tmp_path), b"dir\xff")
    with open(bad_file, "wb") as f:
        f.write(b"x")
    os.mkdir(bad_folder)
    with open(os.path.join(bad_folder, b"inside.jpg"), "wb") as f:
        f.write(b"x")
    results = list(discover([tmp_path]))
    assert found_paths(results) == [str(tmp_path / "fine.jpg")]
    reported = {p.path: p.reason for p in problems(results)}
    assert reported == {
        f"{tmp_path}/caf\\xe9.jpg": "file name is not valid UTF-8; rename the file to index it",
        f"{tmp_path}/dir\\xff": "folder name is not valid UTF-8; rename the folder to index it",
    }
    for path in reported:
        path.encode("utf-8")  # printable and storable in SQLite


def test_discover_long_file_name(tmp_path):
    name = "a" * 246 + ".jpg"
    assert len(name.encode()) == 250
    touch(tmp_path / name)
    assert found_paths(discover([tmp_path])) == [str(tmp_path / name)]


def test_discover_reports_an_unlistable_folder_and_walks_the_rest(tmp_path, monkeypatch):
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "locked" / "secret.jpg")
    touch(tmp_path / "open" / "b.jpg")
    real_scandir = os.scandir
    locked = str(tmp_path / "locked")

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    results = list(discover([tmp_path]))
    assert found_paths(results) == [str(tmp_path / "a.jpg"), str(tmp_path / "open" / "b.jpg")]
    assert problems(results) == [
        Unreadable(locked, "cannot list this folder: permission denied")
    ]


def test_discover_reports_pipes_named_like_media(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    (result,) = discover([tmp_path])
    assert isinstance(result, Unreadable) and "not a regular file" in result.reason


def test_discover_deep_tree_does_not_recurse(tmp_path):
    folder = tmp_path
    for _ in range(60):  # deep enough to show the walk is iterative without slowing the suite
        folder = folder / "d"
    touch(folder / "bottom.jpg")
    assert found_paths(discover([tmp_path])) == [str(folder / "bottom.jpg")]


# --------------------------------------------------------------------------- text


def test_decode_utf8_with_and_without_bom():
    assert decode_text("héllo wörld".encode(), path="a.txt", max_bytes=1000) == "héllo wörld"
    data = b"\xef\xbb\xbf" + "héllo".encode()
    assert decode_text(data, path="a.txt", max_bytes=1000) == "héllo"


def test_decode_cp1252_keeps_its_accented_letters():
    original = "Café crème, naïve “quotes” – 5 €\r\nSecond line"
    text = decode_text(original.encode("cp1252"), path="old.txt", max_bytes=1000)
    assert text == "Café crème, naïve “quotes” – 5 €\nSecond line"


def test_decode_bytes_undefined_in_cp1252_never_crash():
    text = decode_text(b"abc \x81\x8d\x90 def", path="odd.txt", max_bytes=1000)
    assert text.startswith("abc ") and text.endswith(" def")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_decode_utf16_and_utf32_with_bom(encoding):
    original = "Grüße aus Köln\nzweite Zeile"
    data = original.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # the explicit-endian codecs write no BOM
        bom = b"\xff\xfe" if encoding.endswith("le") else b"\xfe\xff"
        data = bom + data
    assert decode_text(data, path="w.txt", max_bytes=1000) == original


def test_decode_binary_content_is_refused():
    data = encode(solid(RED), "PNG")
    with pytest.raises(MediaError, match="binary content, not text") as caught:
        decode_text(data, path="/p/image.txt", max_bytes=100_000)
    assert caught.value.path == "/p/image.txt"


def test_decode_too_large_and_empty_text():
    with pytest.raises(MediaError, match="above the 10 limit"):
        decode_text(b"x" * 11, path="big.txt", max_bytes=10)
    for data in (b"", b"  \n\t\r\n ", b"\xef\xbb\xbf"):
        with pytest.raises(MediaError, match="no text"):
            decode_text(data, path="blank.txt", max_bytes=10)


def words_of(chunks):
    return [chunk.split() for chunk in chunks]


def test_chunk_short_text_is_one_chunk_and_empty_is_none():
    assert chunk_text("  A short note.\n\nTwo paragraphs.  ", max_words=50) == [
        "A short note.\n\nTwo paragraphs."
    ]
    assert chunk_text(" \n ", max_words=50) == []


def test_chunk_bounds_and_overlap():
    text = " ".join(f"w{i}" for i in range(1000))  # no sentence breaks at all
    chunks = chunk_text(text, max_words=100, overlap=30)
    pieces = words_of(chunks)
    assert all(0 < len(p) <= 100 for p in pieces)
    for before, after in zip(pieces, pieces[1:]):
        assert before[-30:] == after[:30]
    assert pieces[0][0] == "w0" and pieces[-1][-1] == "w999"
    # Every word is covered, in order.
    covered = pieces[0] + [w for before, after in zip(pieces, pieces[1:]) for w in after[30:]]
    assert covered == text.split()


def test_chunk_prefers_paragraph_then_sentence_boundaries():
    sentence = "This is a sentence of exactly ten words in it."
    paragraph = " ".join([sentence] * 7)  # 70 words
    text = "\n\n".join([paragraph] * 4)
    chunks = chunk_text(text, max_words=100, overlap=10)
    assert chunks[0] == paragraph  # the paragraph end beats later sentence ends
    pieces = words_of(chunks)
    assert all(len(p) <= 100 for p in pieces)
    for chunk in chunks[1:-1]:
        assert chunk.endswith(".")

    sentences = " ".join(f"Sentence number {i} has a few more words." for i in range(40))
    for chunk in chunk_text(sentences, max_words=50, overlap=5)[:-1]:
        assert chunk.endswith("words.")


def test_chunk_tiny_windows_terminate():
    text = " ".join(str(i) for i in range(20))
    for max_words in (1, 2, 3):
        chunks = chunk_text(text, max_words=max_words, overlap=30)
        assert all(0 < len(c.split()) <= max_words for c in chunks)
        assert chunks[-1].split()[-1] == "19"
    with pytest.raises(ValueError):
        chunk_text(text, max_words=0)


def test_name_words():
    assert name_words("/photos/Trip 2019/IMG_2034 red-car.jpg") == "Trip 2019 IMG 2034 red car"
    assert name_words("/docs/meetingNotes/HTMLParser.v2.final.md") == (
        "meeting Notes HTML Parser v2 final"
    )
    assert name_words("/x.jpg") == "x"
    assert name_words("/a/b/Été à Paris (2).heic") == "b Été à Paris 2"
