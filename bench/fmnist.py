"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (MIT licence).

Install offline with ``apt-get install -y dataset-fashion-mnist``; nothing is
downloaded at run time.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def load(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N×28×28, labels uint8 N) for ``train`` (60k) or ``test`` (10k)."""
    prefix = "train" if split == "train" else "t10k"
    images_gz = ROOT / f"{prefix}-images-idx3-ubyte.gz"
    if not images_gz.exists():
        raise SystemExit(f"{images_gz} not found: apt-get install -y dataset-fashion-mnist")
    with gzip.open(images_gz) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(ROOT / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def export_folder(out: Path, split: str = "train", per_class: int | None = None,
                  offset: int = 0) -> int:
    """Write PNGs as OUT/<class>/<split>-<index>.png (ImageFolder layout); returns the count."""
    images, labels = load(split)
    written = 0
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(labels == c)[offset:]
        if per_class is not None:
            idx = idx[:per_class]
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in idx:
            target = folder / f"{split}-{i:05d}.png"
            if not target.exists():
                Image.fromarray(images[i], "L").save(target, optimize=True)
            written += 1
    return written


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--split", default="train", choices=["train", "test"])
    ap.add_argument("--per-class", type=int)
    args = ap.parse_args()
    print(export_folder(args.out, args.split, args.per_class))
