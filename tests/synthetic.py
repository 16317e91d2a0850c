"""Small synthetic image classes for tests: shapes, colours, textures.

Each class differs in colour *and* structure, so a tiny autoencoder
trained for a few seconds separates them, while random position, size
and noise keep every image distinct.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("red-circles", "green-squares", "blue-stripes")


def make_image(cls: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    bg = tuple(int(v) for v in rng.integers(200, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    jitter = lambda base: tuple(int(np.clip(b + rng.integers(-30, 31), 0, 255)) for b in base)
    if cls == "red-circles":
        r = int(rng.integers(size // 5, size // 3))
        cx, cy = rng.integers(r, size - r, 2)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=jitter((220, 30, 30)))
    elif cls == "green-squares":
        s = int(rng.integers(size // 3, size // 2))
        x, y = rng.integers(0, size - s, 2)
        draw.rectangle([x, y, x + s, y + s], fill=jitter((30, 180, 40)))
    elif cls == "blue-stripes":
        period = int(rng.integers(6, 10))
        offset = int(rng.integers(0, period))
        colour = jitter((30, 40, 210))
        for x in range(-period + offset, size, period):
            draw.rectangle([x, 0, x + period // 2, size], fill=colour)
    else:
        raise ValueError(cls)
    noise = rng.normal(0, 6, (size, size, 3))
    arr = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def make_collection(root: Path, per_class: int = 20, size: int = 48, seed: int = 0,
                    fmt: str = "png") -> dict[str, list[Path]]:
    """Write ROOT/<class>/<n>.<fmt>; returns the paths per class."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for cls in CLASSES:
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        out[cls] = []
        for i in range(per_class):
            path = folder / f"{cls}-{i:03d}.{fmt}"
            make_image(cls, rng, size).save(path)
            out[cls].append(path)
    return out


def make_bad_files(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """Three corrupt images, a text file named .jpg and a zero-byte file."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_jpeg.read_bytes()
    bad = {
        "truncated": folder / "truncated.jpg",
        "garbage-png": folder / "garbage.png",
        "broken-header": folder / "broken.gif",
        "text": folder / "notes.jpg",
        "empty": folder / "empty.png",
    }
    bad["truncated"].write_bytes(data[: len(data) // 3])
    bad["garbage-png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    bad["broken-header"].write_bytes(b"GIF89a\x00\x01")
    bad["text"].write_text("this is not a picture, just some notes\n")
    bad["empty"].write_bytes(b"")
    return bad


def distinct_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8: each image its own background and three random shapes."""
    rng = np.random.default_rng(seed)
    colour = lambda: tuple(int(v) for v in rng.integers(0, 256, 3))
    out = []
    for _ in range(n):
        img = Image.new("RGB", (size, size), colour())
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, size - 8, 2))
            w, h = (int(v) for v in rng.integers(6, size // 2, 2))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h],
                                                                     fill=colour())
        out.append(np.asarray(img))
    return np.stack(out)
