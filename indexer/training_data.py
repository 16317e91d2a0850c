"""Training data, from a folder to the tensors a step sees.

A folder is decoded once into one uint8 array (a seeded sample of it
when it is too large for the budget), split with a seed, and shuffled
into batches that stay uint8 on the host until a step turns them into
floats on the device: a float copy of a 20k-image collection would take
four times its bytes. Every draw comes from a seed (``indexer.train.fit``
sets them all), so a seed repeats a run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from .augment import Views
from .images import Decoded, decode_many, walk_images
from .model import to_tensor


class NotEnoughImages(RuntimeError):
    """A folder without two readable images: nothing to train on and validate with."""


@dataclass
class LoadedFolder:
    pixels: np.ndarray
    paths: list[Path]
    failures: list[Decoded]
    found: int = 0  # image files under the folder, before any sampling


def load_folder(
    folder: str | Path, size: int, workers: int | None = None, progress: bool = True,
    max_images: int | None = None, seed: int = 0,
) -> LoadedFolder:
    """Decode the images under *folder*, a seeded sample of *max_images* when there are more.

    Bad files are collected, not raised: one unreadable photo should not stop a run.
    """
    paths = walk_images(folder)
    found = len(paths)
    if not paths:
        raise NotEnoughImages(f"no images found under {folder}")
    if max_images is not None and len(paths) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), max_images, replace=False))
        paths = [paths[i] for i in keep]
    arrays, good, failures = [], [], []
    for d in tqdm(decode_many(paths, size, workers), total=len(paths), desc="decoding",
                  unit="img", disable=not progress):
        if d.pixels is None:
            failures.append(d)
        else:
            arrays.append(d.pixels)
            good.append(d.path)
    if len(arrays) < 2:
        raise NotEnoughImages(f"need at least 2 readable images under {folder}, found {len(arrays)}")
    return LoadedFolder(np.stack(arrays), good, failures, found)


def data_fingerprint(pixels: np.ndarray) -> str:
    """A hash of the exact training pixels, so a checkpoint says what it saw."""
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split with at least one image on each side (needs n ≥ 2)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    return order[n_val:], order[:n_val]


def batches_of(data: torch.Tensor, idx: np.ndarray, size: int, gen: torch.Generator | None,
               whole: bool = False) -> list[torch.Tensor]:
    """Batches of *idx* (shuffled with *gen*); *whole*: drop a short last one when others exist."""
    if gen is not None:
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
    end = len(idx) - len(idx) % size if whole and len(idx) >= size else len(idx)
    return [data[torch.from_numpy(idx[i : i + size])] for i in range(0, end, size)]


def passes(data: torch.Tensor, idx: np.ndarray, size: int, gen: torch.Generator,
           whole: bool = False) -> Iterator[torch.Tensor]:
    """Shuffled passes over *idx*, one after another, for as long as the caller takes batches.

    *whole*: every batch full, since a contrastive term needs the other
    images as negatives. A pass is shuffled when its first batch is taken,
    not ahead: the steps draw their flips and noise from the same
    generator, and a seed repeats a run only if those draws keep their order.
    """
    while True:
        yield from batches_of(data, idx, size, gen, whole)


def image_and_views(batch: torch.Tensor, views: Views, device: torch.device,
                    flips: bool = True) -> torch.Tensor:
    """Each image (*flips*: mirrored half the time) and two edited views of it, stacked:
    rows i, N + i and 2N + i show the same image. The image is what the decoder learns to
    rebuild; the views are what the invariance term pulls together."""
    x = to_tensor(batch)
    if flips:
        x = mirrored_half(x)
    triple = torch.cat([x, views(batch), views(batch)])
    return triple.to(device).contiguous(memory_format=torch.channels_last)


def mirrored_half(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The images of *x*, each mirrored left to right with chance ½."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
