"""End-to-end `lookalike index` throughput against the decode-only limit.

Makes (or reuses) 5,000 photo-like 640×480 JPEGs, trains a small model on
a few hundred of them (not timed), then measures in one run:

* decode-only: Pillow open + convert + resize to the model input, with the
  same process pool the indexer uses (``indexer.images.decode_many``);
* ``lookalike index`` on the same folder into a fresh data dir (decode,
  encode, catalog transactions, FAISS, atomic save).

    python -m bench.indexing [--count 5000] [--image-size 64] [--old TREE] [--repeats N]

With ``--old`` (a ``git worktree`` of an earlier commit), the same folder is
also indexed by that tree's ``lookalike``, interleaved with this one's, and
the reconstruction errors the two stored are compared image by image and by
the order ``lookalike anomalies`` lists them in.

Targets (#28): the job ≥ 0.80 of decode-only, the whole process ≥ 0.60.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
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


def lookalike(data_dir: Path, *args: str, tree: Path | None = None) -> str:
    """The CLI of this tree, or of *tree* (run from there, so that tree's code is imported)."""
    return subprocess.run([sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), "-q", *args],
                          check=True, stdout=subprocess.PIPE, text=True, cwd=tree).stdout


def index_once(model: Path, photos: Path, data_dir: Path, tree: Path | None) -> dict:
    """One ``lookalike index --json`` into a fresh data dir: the job's rate and the wall time."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    shutil.copy(model, data_dir / "model.pt")
    t = time.perf_counter()
    summary = json.loads(lookalike(data_dir, "index", str(photos), "--json", tree=tree))
    return {"job": summary["images_per_second"], "wall": time.perf_counter() - t,
            "encoded": summary["encoded"]}


def stored_errors(data_dir: Path) -> dict[str, float]:
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:
        return dict(db.execute("SELECT path, recon_error FROM images"))


def compare_errors(new: dict[str, float], old: dict[str, float], top: int = 100) -> str:
    paths = sorted(old)
    if sorted(new) != paths:
        return "the two runs indexed different files"
    a, b = np.array([new[p] for p in paths]), np.array([old[p] for p in paths])
    rel = np.abs(a - b) / np.abs(b)
    rank = lambda errors: [p for _, p in sorted(zip(-errors, paths))][:top]  # noqa: E731
    ours, theirs = rank(a), rank(b)
    same = len(set(ours) & set(theirs))
    agree = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), top)
    moved = sum(x != y for x, y in zip(ours, theirs))
    return (f"stored reconstruction errors, this tree vs --old: max relative difference "
            f"{rel.max():.2e} (median {np.median(rel):.2e}); identical for {int((rel == 0).sum())} "
            f"of {len(paths)}; the {top} most anomalous: {same} of {top} the same images, the "
            f"first {agree} in the same order, {moved} of {top} places holding another image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--old", type=Path, help="a worktree of an earlier commit to compare with")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds; medians shown")
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

    trees = {"this tree": None, **({"--old": args.old.resolve()} if args.old else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    decode_rates = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        n_ok = sum(d.pixels is not None for d in decode_many(paths, args.image_size))
        decode_rates.append(n_ok / (time.perf_counter() - t))
        for name, tree in trees.items():
            data_dir = OUT / f"indexing-data{'-old' if tree else ''}"
            runs[name].append(index_once(model_dir / "model.pt", photos, data_dir, tree))

    decode_rate = statistics.median(decode_rates)
    print(f"cores: {os.cpu_count()}, model input {args.image_size}x{args.image_size}, "
          f"{args.repeats} round(s), medians")
    print(f"decode-only:                {decode_rate:8.1f} img/s")
    for name, results in runs.items():
        job_rate = statistics.median(r["job"] for r in results)
        wall_rate = statistics.median(len(paths) / r["wall"] for r in results)
        print(f"{name}: lookalike index job {job_rate:8.1f} img/s, ratio {job_rate / decode_rate:.2f} "
              f"(target >= 0.80); whole process {wall_rate:8.1f} img/s, ratio "
              f"{wall_rate / decode_rate:.2f} (target >= 0.60; interpreter + torch import included)")
    if args.old:
        print(compare_errors(stored_errors(OUT / "indexing-data"),
                             stored_errors(OUT / "indexing-data-old")))


if __name__ == "__main__":
    main()
