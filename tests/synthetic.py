"""Every synthetic image the tests use: made here, never downloaded.

One collection generator, :func:`make_collection` (ROOT/<class>/<class>-NNN.png and the like),
over two families of three classes each (:func:`make_image` draws one image of any class):

* ``CLASSES`` (the default): light backgrounds; each class differs in colour *and*
  structure, so a tiny autoencoder trained for a few seconds separates them, while random
  position, size and noise keep every image distinct. The session's collection and
  trained model (tests/conftest.py) are made of these.
* ``SHAPES`` (``draw``): squares, circles and stripes in random colours and positions on
  *dark* backgrounds, so a 3-epoch model on 32×32 inputs already ranks same-class images
  together and a white image is an anomaly. The web's and the browser's libraries
  (tests/web/conftest.py, ``make_collection(..., classes=SHAPES)``) are made of these.

Also: damaged files, distinct random pictures, and hand-built PNGs (a decompression bomb).
"""
from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("red-circles", "green-squares", "blue-stripes")
SHAPES = ("square", "circle", "stripes")
# Each family's file names, as they have always been: a folder on ext4 lists in an order its
# names decide, and a test that takes the first file found must keep getting the same one.
NAMES = {CLASSES: "{cls}-{i:03d}", SHAPES: "{cls}-{seed}-{i:03d}"}


def make_image(cls: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """One synthetic image of class *cls* (one of ``CLASSES`` or ``SHAPES``)."""
    if cls in SHAPES:
        return draw(cls, rng, size)
    bg = tuple(int(v) for v in rng.integers(200, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    pen = ImageDraw.Draw(img)
    jitter = lambda base: tuple(int(np.clip(b + rng.integers(-30, 31), 0, 255)) for b in base)
    if cls == "red-circles":
        r = int(rng.integers(size // 5, size // 3))
        cx, cy = rng.integers(r, size - r, 2)
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=jitter((220, 30, 30)))
    elif cls == "green-squares":
        s = int(rng.integers(size // 3, size // 2))
        x, y = rng.integers(0, size - s, 2)
        pen.rectangle([x, y, x + s, y + s], fill=jitter((30, 180, 40)))
    elif cls == "blue-stripes":
        period = int(rng.integers(6, 10))
        offset = int(rng.integers(0, period))
        colour = jitter((30, 40, 210))
        for x in range(-period + offset, size, period):
            pen.rectangle([x, 0, x + period // 2, size], fill=colour)
    else:
        raise ValueError(cls)
    noise = rng.normal(0, 6, (size, size, 3))
    arr = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


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


# -- the web's shapes on dark backgrounds, and the collections --------------------------------

def draw(kind: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """One synthetic image of *kind* (one of ``SHAPES``), in random colours and placement."""
    background = tuple(int(v) for v in rng.integers(0, 80, 3))
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    img = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(img)
    if kind == "square":
        s = int(rng.integers(size // 3, size // 2))
        x, y = (int(v) for v in rng.integers(2, size - s - 2, 2))
        d.rectangle([x, y, x + s, y + s], fill=colour)
    elif kind == "circle":
        r = int(rng.integers(size // 6, size // 4))
        cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        width = int(rng.integers(3, 6))
        offset = int(rng.integers(0, 2 * width))
        for x in range(offset - 2 * width, size, 2 * width):
            d.rectangle([x, 0, x + width - 1, size], fill=colour)
    return img


def make_collection(root: Path, per_class: int = 20, size: int = 48, seed: int = 0,
                    fmt: str = "png", classes: tuple[str, ...] = CLASSES,
                    extra: dict[str, str] | None = None) -> dict[str, list[Path]]:
    """The one collection generator: ROOT/<class>/<name>.<fmt> (``NAMES``), *per_class* images
    of each of *classes* (``CLASSES`` or ``SHAPES``); *extra* maps a file name to a class,
    written at the top of ROOT. Returns the paths per class, extras included."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {c: [] for c in classes}
    name = NAMES.get(classes, NAMES[SHAPES])
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = root / cls / f"{name.format(cls=cls, seed=seed, i=i)}.{fmt}"
            make_image(cls, rng, size).save(path)
            written[cls].append(path)
    for name, cls in (extra or {}).items():
        path = root / name
        make_image(cls, rng, size).save(path)
        written[cls].append(path)
    return written


# -- encoded bytes --------------------------------------------------------------------------

def png_bytes(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """*img* encoded as *fmt* (PNG unless told), with Pillow's save *options*."""
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_claiming_pixels(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width×height (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    body = zlib.compress(row * 16)  # a few rows are enough: the guard trips at open
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))


def flat_png(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG of one flat colour, built a row at a time: megapixels in a few KB, cheaply."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + bytes((width * channels * bit_depth + 7) // 8)
    squeeze = zlib.compressobj(9)
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))


# XYZ (D65) → linear sRGB, as DNG's rationals (numerator, 10000).
XYZ_TO_LINEAR_SRGB = [[round(v * 10000), 10000] for v in (
    3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)]


def write_dng(path: Path, picture: Image.Image) -> Path:
    """*picture* as a camera would have recorded it: a 12-bit RGGB Bayer mosaic in a DNG (what
    LibRaw demosaics back). Written by pidng; the tests download no RAW files."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import (CalibrationIlluminant, CFAPattern, DNGVersion, Orientation,
                            PhotometricInterpretation)

    srgb = np.asarray(picture.convert("RGB"), dtype=np.float64) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    rgb = np.round(linear * 4095).astype(np.uint16)  # a sensor's linear 12 bits
    height, width = (rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2)  # whole 2×2 cells
    rgb = rgb[:height, :width]
    mosaic = np.empty((height, width), np.uint16)
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    tags = DNGTags()
    for tag, value in ((Tag.ImageWidth, width), (Tag.ImageLength, height),
                       (Tag.TileWidth, width), (Tag.TileLength, height),
                       (Tag.Orientation, Orientation.Horizontal),
                       (Tag.PhotometricInterpretation,
                        PhotometricInterpretation.Color_Filter_Array),
                       (Tag.SamplesPerPixel, 1), (Tag.BitsPerSample, 16),
                       (Tag.CFARepeatPatternDim, [2, 2]), (Tag.CFAPattern, CFAPattern.RGGB),
                       (Tag.BlackLevel, 0), (Tag.WhiteLevel, 4095),
                       (Tag.ColorMatrix1, XYZ_TO_LINEAR_SRGB),  # the "sensor" sees sRGB
                       (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
                       (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
                       (Tag.Make, "Lookalike"), (Tag.Model, "Test camera"),
                       (Tag.DNGVersion, DNGVersion.V1_4),
                       (Tag.DNGBackwardVersion, DNGVersion.V1_2)):
        tags.set(tag, value)
    writer = RAW2DNG()
    writer.options(tags, path=str(path.parent), compress=False)
    writer.convert(mosaic, filename=path.stem)
    return path.with_suffix(".dng")


def dng_bytes(picture: Image.Image) -> bytes:
    """:func:`write_dng`'s file, as bytes (an upload)."""
    with tempfile.TemporaryDirectory() as folder:
        return write_dng(Path(folder) / "upload.dng", picture).read_bytes()
