"""Decoding: every mode becomes RGB, bad files fail with a reason, never a crash."""
from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.images import (
    ImageDecodeError,
    decode_file,
    decode_many,
    load_image,
    open_image,
    prepare,
    walk_images,
)

from ..synthetic import make_bad_files

pytestmark = pytest.mark.any_catalog


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


WHITE = (255, 255, 255)


def two_halves(mode: str) -> tuple[Image.Image, tuple[int, ...], tuple[int, ...]]:
    """A 40×30 image in *mode*, its left half one colour and its right half another; and the
    RGB each half must come out as (a transparent half: white)."""
    def split(left, right, in_mode: str = mode) -> Image.Image:
        img = Image.new(in_mode, (40, 30), left)
        img.paste(right, (20, 0, 40, 30))
        return img

    red, blue = (200, 50, 20), (20, 90, 230)
    if mode == "RGB":
        return split(red, blue), red, blue
    if mode == "L":
        return split(91, 160), (91,) * 3, (160,) * 3
    if mode == "LA":
        return split((91, 255), (160, 0)), (91,) * 3, WHITE
    if mode == "P":
        img = split(0, 1)
        img.putpalette([*red, *blue])
        return img, red, blue
    if mode == "RGBA":
        return split((*red, 255), (*blue, 0)), red, WHITE
    if mode == "CMYK":  # (255 − r, 255 − g, 255 − b, 0): back to the same RGB
        return split(red, blue, "RGB").convert("CMYK"), red, blue
    if mode == "I;16":  # deep pixels scaled to 8 bits by the brightest: 30000 of 60000 → 127
        deep = np.full((30, 40), 30000, np.uint16)
        deep[:, 20:] = 60000
        return Image.fromarray(deep), (127,) * 3, WHITE
    if mode == "1":
        return split(0, 1), (0,) * 3, WHITE
    raise ValueError(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1", "RGB"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    img, left, right = two_halves(mode)
    assert img.mode == mode
    ext = "tiff" if mode == "CMYK" else "png"
    out = load_image(_save(img, tmp_path / f"x.{ext}"), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    # Each half keeps its colour (away from the seam the resize blends).
    assert np.abs(out[:, :6].astype(int) - left).max() <= 1, out[0, :6]
    assert np.abs(out[:, -6:].astype(int) - right).max() <= 1, out[0, -6:]


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    out = load_image(_save(img, tmp_path / "t.png"), 8)
    assert (out == 255).all()


@pytest.mark.parametrize("ext,kw", [("jpg", {}), ("webp", {}), ("bmp", {}), ("tiff", {}),
                                    ("gif", {})])
def test_formats(tmp_path, ext, kw):
    img = Image.new("RGB", (50, 50), (10, 200, 10))
    out = load_image(_save(img, tmp_path / f"x.{ext}", **kw), 24)
    assert out.shape == (24, 24, 3)
    assert out[..., 1].mean() > 150


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = load_image(path, 8)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_exif_orientation_applied(tmp_path):
    # A wide image tagged "rotate 90°" must come out tall: left half red → top half red.
    img = Image.new("RGB", (64, 32), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = _save(img, tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(path, 32)
    top, bottom = out[:16].astype(int), out[16:].astype(int)
    assert top[..., 0].mean() > 200 and bottom[..., 2].mean() > 200
    d = decode_file(path, 32)
    assert (d.width, d.height) == (32, 64)


def test_bad_files_fail_with_reasons(tmp_path):
    good = _save(Image.new("RGB", (64, 64), "red"), tmp_path / "good.jpg")
    bad = make_bad_files(tmp_path / "bad", good)
    reasons = {}
    for name, path in bad.items():
        with pytest.raises(ImageDecodeError) as err:
            load_image(path, 16)
        reasons[name] = str(err.value)
    assert "empty" in reasons["empty"]
    assert "not a recognised image" in reasons["text"]
    assert all(reasons.values())


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    import indexer.images as images

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1000)
    path = _save(Image.new("L", (100, 100)), tmp_path / "bomb.png")
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path, 8)


def test_bytes_input_and_empty_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), "blue").save(buf, "PNG")
    assert load_image(buf.getvalue(), 4).shape == (4, 4, 3)
    with pytest.raises(ImageDecodeError, match="empty"):
        load_image(b"", 4)


def test_decode_many_parallel_keeps_order_and_counts_failures(tmp_path):
    paths = []
    for i in range(40):
        paths.append(_save(Image.new("RGB", (20, 20), (i * 6, 0, 0)), tmp_path / f"{i:02d}.png"))
    (tmp_path / "zz.png").write_bytes(b"nope")
    paths.append(tmp_path / "zz.png")
    results = list(decode_many(paths, 8, workers=2, chunksize=4))
    assert [r.path for r in results] == paths
    assert [r.pixels is None for r in results].count(True) == 1
    assert results[-1].error
    assert int(results[10].pixels[..., 0].mean()) == 60


def test_walk_finds_images_recursively_and_skips_hidden(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for p in ["a/x.JPG", "a/b/y.png", "z.webp", ".hidden/h.png", "a/readme.txt", ".dot.png"]:
        (tmp_path / p).write_bytes(b"x")
    names = sorted(p.name for p in walk_images(tmp_path))
    assert names == ["x.JPG", "y.png", "z.webp"]
    with pytest.raises(FileNotFoundError):
        walk_images(tmp_path / "missing")


@pytest.mark.parametrize("shape", [(28, 28), (37, 100), (480, 640), (64, 64)])
def test_grayscale_input_equals_its_rgb_copy(shape):
    """Grayscale images take a one-band shortcut; the model must see the same pixels."""
    gray = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    as_gray = Image.fromarray(gray, "L")
    as_rgb = as_gray.convert("RGB")
    for size in (32, 64):
        assert np.array_equal(prepare(as_gray, size), prepare(as_rgb, size))


def test_inspect_sees_the_header_before_decoding_and_may_stop_it():
    """The web's memory budget looks at size and mode before any pixel is decoded."""
    out = io.BytesIO()
    Image.new("RGB", (300, 200), "red").save(out, "PNG")
    seen = []

    def refuse(img):
        seen.append((img.size, img.mode, bool(img.tile)))  # tiles: pixels still to decode
        raise RuntimeError("over budget")

    with pytest.raises(RuntimeError, match="over budget"):
        open_image(out.getvalue(), inspect=refuse)
    assert seen == [((300, 200), "RGB", True)]
    img, size = open_image(out.getvalue(), inspect=seen.append)
    assert size == (300, 200) and img.getpixel((0, 0)) == (255, 0, 0)


class _CountedPaths(Sequence):
    """A work list that counts the paths decode_many has taken from it so far."""

    def __init__(self, paths: list[Path]):
        self.paths, self.taken = paths, 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        got = self.paths[i]
        self.taken += len(got) if isinstance(i, slice) else 1
        return got


def test_decode_many_takes_only_a_bounded_window_ahead_of_a_slow_consumer(tmp_path):
    """Executor.map would take (and decode) the whole list before the first result."""
    paths = [_save(Image.new("RGB", (8, 8), (i % 256, 0, 0)), tmp_path / f"{i:03d}.png")
             for i in range(400)]
    work = _CountedPaths(paths)
    ahead = []
    for i, d in enumerate(decode_many(work, 8, workers=2, chunksize=4)):
        assert d.path == paths[i] and d.pixels is not None
        ahead.append(work.taken - (i + 1))
        if i % 50 == 0:
            time.sleep(0.05)  # the model is slower than the decoders
    assert work.taken == len(paths)
    assert max(ahead) <= (2 * 2 + 1) * 4  # two chunks per worker, plus the one handed over
