"""Edited-copies benchmark on real photos: find every edited copy of a photo.

The photos are the real ones that scikit-image, scikit-learn and
matplotlib ship (nothing is downloaded, no image is committed). A seeded
generator makes edited copies of each: crops down to 40 % of the area,
rotations, flips, colour shifts, grey and sepia, blur, noise, JPEG down to
quality 30, borders, pasted boxes and text, one to three edits per copy.
The edits are drawn with Pillow, not with the training augmentations.

The database is every original plus ``--db-copies`` copies of it; each
photo's ``--queries`` further copies are held out and query it. Relevant =
same source photo. Each model is trained by ``lookalike train`` on the
database folder and scored by ``lookalike eval --mode copies``, which
also scores a colour histogram (χ²), pHash and dHash in the same run.

    python -m bench.copies                   # default recipe vs λ = 0
    python -m bench.copies --variant "λ=0.1:--invariance 0.1" --skip-plain

Needs ``pip install -e '.[bench]'`` (scikit-image, scikit-learn). Work files go
to bench/out/copies/.
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

OUT = Path(__file__).resolve().parent / "out" / "copies"
TARGET_MAP, TARGET_GAIN = 0.90, 2.0


def photo_paths() -> list[Path]:
    """The real photos on disk: skimage's, sklearn's and matplotlib's (no synthetic images)."""
    import matplotlib
    import sklearn.datasets
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
             "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
             "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
             "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "text.png"]
    paths = [sk / n for n in names]
    paths += [Path(sklearn.datasets.__file__).parent / "images" / n for n in ("china.jpg", "flower.jpg")]
    paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"missing photos: {', '.join(missing)}")
    return paths


def _crop(img, r):
    area = r.uniform(0.4, 0.9)
    aspect = r.uniform(0.75, 1.33)
    w = min(1.0, (area * aspect) ** 0.5) * img.width
    h = min(1.0, (area / aspect) ** 0.5) * img.height
    x, y = r.uniform(0, img.width - w), r.uniform(0, img.height - h)
    return img.crop((int(x), int(y), int(x + w), int(y + h)))


def _sepia(img, r):
    grey = ImageOps.grayscale(img)
    return ImageOps.colorize(grey, (40, 26, 13), (255, 240, 192))


def _noise(img, r):
    a = np.asarray(img).astype(np.float32)
    a += np.random.default_rng(r.randrange(1 << 30)).normal(0, r.uniform(5, 20), a.shape)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _border(img, r):
    pad = int(min(img.size) * r.uniform(0.05, 0.15))
    return ImageOps.expand(img, pad, fill=r.choice([(0, 0, 0), (255, 255, 255), (128, 90, 60)]))


def _box(img, r):
    img = img.copy()
    w, h = img.size
    bw, bh = int(w * r.uniform(0.15, 0.35)), int(h * r.uniform(0.15, 0.35))
    x, y = r.randrange(0, w - bw), r.randrange(0, h - bh)
    ImageDraw.Draw(img).rectangle((x, y, x + bw, y + bh), fill=tuple(r.randrange(256) for _ in range(3)))
    return img


def _text(img, r):
    img = img.copy()
    text = "".join(r.choices("ABCDEFGHKLMNPRSTUVWXYZ 0123456789", k=r.randint(6, 14)))
    size = max(10, img.height // 10)
    ImageDraw.Draw(img).text((r.randrange(0, img.width // 3), r.randrange(0, img.height - size)),
                             text, fill=tuple(r.randrange(256) for _ in range(3)), font_size=size)
    return img


EDITS = {
    "crop": _crop,
    "rotate": lambda img, r: img.rotate(r.uniform(-20, 20), Image.Resampling.BILINEAR, expand=True),
    "flip": lambda img, r: ImageOps.mirror(img),
    "jitter": lambda img, r: ImageEnhance.Color(ImageEnhance.Contrast(ImageEnhance.Brightness(img)
                                                .enhance(r.uniform(0.6, 1.4))).enhance(r.uniform(0.6, 1.4)))
                                                .enhance(r.uniform(0.3, 1.7)),
    "grey": lambda img, r: ImageOps.grayscale(img).convert("RGB"),
    "sepia": _sepia,
    "blur": lambda img, r: img.filter(ImageFilter.GaussianBlur(r.uniform(1, 3) * min(img.size) / 256)),
    "noise": _noise,
    "border": _border,
    "box": _box,
    "text": _text,
}


def edited_copy(img: Image.Image, r: random.Random) -> tuple[Image.Image, list[str], int]:
    """One to three edits, then a JPEG save at a random quality (30–90)."""
    names = r.sample(sorted(EDITS), r.randint(1, 3))
    order = [n for n in EDITS if n in names]  # geometric first, overlays last
    for name in order:
        img = EDITS[name](img, r).convert("RGB")
    return img, order, r.randint(30, 90)


def build(out: Path, db_copies: int, queries: int, seed: int) -> tuple[int, int]:
    """Write db/<photo>/ and queries/<photo>/ (skipped when already there)."""
    stamp = out / f"built-{db_copies}-{queries}-{seed}"
    sources = photo_paths()
    if stamp.exists():
        return len(sources) * (1 + db_copies), len(sources) * queries
    r = random.Random(seed)
    for src in sources:
        img = Image.open(src).convert("RGB")
        name = src.stem
        (out / "db" / name).mkdir(parents=True, exist_ok=True)
        (out / "queries" / name).mkdir(parents=True, exist_ok=True)
        img.save(out / "db" / name / "original.jpg", quality=95)
        for i in range(db_copies + queries):
            copy, edits, quality = edited_copy(img, r)
            folder = "db" if i < db_copies else "queries"
            copy.save(out / folder / name / f"{i:02d}-{'-'.join(edits)}.jpg", quality=quality)
    stamp.touch()
    return len(sources) * (1 + db_copies), len(sources) * queries


def lookalike(data_dir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), *args]
    print("$ lookalike", shlex.join(cmd[3:]), flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def run_variant(name: str, train_args: list[str], out: Path, retrain: bool) -> tuple[dict, float]:
    data_dir = out / ("data-" + "".join(c if c.isalnum() else "_" for c in name))
    seconds = float("nan")
    if retrain or not (data_dir / "model.pt").exists():
        started = time.time()
        print(lookalike(data_dir, "train", str(out / "db"), *train_args), end="")
        seconds = time.time() - started
    lookalike(data_dir, "-q", "index", str(out / "db"))
    report = json.loads(lookalike(data_dir, "-q", "eval", str(out / "db"), "--queries",
                                  str(out / "queries"), "--mode", "copies", "--json"))
    return report["results"], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-copies", type=int, default=9)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME:TRAIN-ARGS, another model to train and score in the same run")
    ap.add_argument("--skip-default", action="store_true")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()

    n_db, n_q = build(OUT, args.db_copies, args.queries, args.seed)
    print(f"{len(photo_paths())} photos: database {n_db} images, {n_q} held-out queries")
    variants = [] if args.skip_default else [("Lookalike (default)", [])]
    variants += [] if args.skip_plain else [("Lookalike λ=0", ["--invariance", "0"])]
    for v in args.variant:
        name, _, rest = v.partition(":")
        variants.append((name, shlex.split(rest)))
    rows, baselines = {}, {}
    for name, train_args in variants:
        results, seconds = run_variant(name, train_args, OUT, args.retrain)
        rows[name] = (results.pop("autoencoder (cosine)"), seconds)
        baselines = results
    print(f"\n{'method':<28}{'mAP':>8}{'P@1':>8}{'P@10':>8}{'train s':>9}")
    for name, (m, seconds) in rows.items():
        print(f"{name:<28}{m['mAP']:8.4f}{m['p_at_1']:8.4f}{m['p_at_10']:8.4f}{seconds:9.0f}")
    for name, m in baselines.items():
        print(f"{name:<28}{m['mAP']:8.4f}{m['p_at_1']:8.4f}{m['p_at_10']:8.4f}")
    if "Lookalike (default)" in rows and baselines:
        ours = rows["Lookalike (default)"][0]["mAP"]
        best_hash = max(m["mAP"] for k, m in baselines.items() if "hash" in k)
        print(f"\ntarget mAP >= {TARGET_MAP}: {'met' if ours >= TARGET_MAP else 'NOT met'} ({ours:.4f})")
        print(f"target >= {TARGET_GAIN}x best perceptual hash: "
              f"{'met' if ours >= TARGET_GAIN * best_hash else 'NOT met'} ({ours / best_hash:.2f}x)")


if __name__ == "__main__":
    main()
