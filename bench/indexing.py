"""End-to-end `lookalike index` throughput against the decode-only limit.

Makes (or reuses) 5,000 photo-like 640×480 JPEGs, trains a small model on
a few hundred of them (not timed), then measures in one run:

* decode-only: Pillow open + convert + resize to the model input, with the
  same process pool the indexer uses (``indexer.images.decode_many``);
* ``lookalike index`` on the same folder into a fresh data dir (decode,
  encode, catalog transactions, FAISS, atomic save).

    python -m bench.indexing [--count 5000] [--image-size 64]

Target: indexing ≥ 70% of decode-only throughput.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from indexer.images import decode_many, walk_images

OUT = Path(__file__).resolve().parent / "out"


def photo_like(rng: np.random.Generator, w: int = 640, h: int = 480) -> Image.Image:
    """Smooth gradients, blurred shapes and sensor noise: JPEG-compresses like a photo."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([c0 + c1 * xx / w + c2 * yy / h for c0, c1, c2 in rng.uniform(0, 128, (3, 3))], -1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(40, 300), y0 + rng.integers(40, 300)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
    noisy = np.asarray(img, np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"{i // 500:02d}" / f"photo-{i:05d}.jpg"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            photo_like(rng).save(path, quality=90)
    return walk_images(folder)


def lookalike(data_dir: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), "-q", *args],
                          check=True, stdout=subprocess.PIPE, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    photos = OUT / "photos"
    t = time.time()
    paths = make_photos(photos, args.count)[: args.count]
    print(f"{len(paths)} JPEGs 640x480 under {photos} ({time.time() - t:.0f} s to make/check)")

    model_dir = OUT / f"indexing-model-{args.image_size}"
    if not (model_dir / "model.pt").exists():
        subset = OUT / "photos-train"
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir(parents=True)
        for p in paths[:300]:  # copies: links leading out of the folder are not indexed (#10)
            shutil.copy(p, subset / p.name)
        lookalike(model_dir, "train", str(subset), "--epochs", "3",
                  "--image-size", str(args.image_size))

    t = time.perf_counter()
    n_ok = sum(d.pixels is not None for d in decode_many(paths, args.image_size))
    decode_s = time.perf_counter() - t
    data_dir = OUT / "indexing-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    shutil.copy(model_dir / "model.pt", data_dir / "model.pt")
    t = time.perf_counter()
    summary = json.loads(lookalike(data_dir, "index", str(photos), "--json"))
    index_s = time.perf_counter() - t

    decode_rate, wall_rate = n_ok / decode_s, len(paths) / index_s
    job_rate = summary["images_per_second"]  # the job itself: scan, hash, decode, encode, commit, save
    print(f"cores: {os.cpu_count()}, model input {args.image_size}x{args.image_size}")
    print(f"decode-only:                {decode_rate:8.1f} img/s ({decode_s:.1f} s)")
    print(f"lookalike index (job):      {job_rate:8.1f} img/s ({summary['seconds']:.1f} s)")
    print(f"lookalike index (process):  {wall_rate:8.1f} img/s ({index_s:.1f} s, "
          "interpreter + torch import included)")
    for name, rate in (("job", job_rate), ("process", wall_rate)):
        ratio = rate / decode_rate
        print(f"ratio ({name}): {ratio:.2f} (target >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'})")


if __name__ == "__main__":
    main()
