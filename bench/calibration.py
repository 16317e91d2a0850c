"""The copy threshold's calibration, re-run on trained models: what it decides on a
collection full of copies and on one without any, side by side.

The calibration (``indexer.validation.copy_calibration``) runs once, at the end of
``lookalike train``, on a sample of the training folder; it needs the model and the
images, not the training. So a change to its rule can be measured here in seconds on
models trained before, instead of retraining each (3–5 minutes a model on 2 cores):

- **copies**: ``bench/copies.py``'s models (default recipe, seeds 0–2 when there) on
  their training folder, where every photo has nine edited copies: the threshold it
  finds, and the pair F1 of ``lookalike duplicates``' grouping there on the 220 held-out
  copies (as ``bench/duplicates.py`` scores it). The bar: ≥ 0.90 (#24).
- **no copies**: ``bench/train_time.py``'s model on 2,000 of its 10k distinct
  photo-like JPEGs: the threshold, and the share of those images the grouping puts in a
  group; each is a false group. The bar: none ("cannot tell" is a right answer here).

The sample here is a seeded permutation of the folder; training puts its held-out images
first, so a threshold can differ from the one a checkpoint stores by the sample's noise
(on the copies folder seed 2's model has two modes, near 0.70 and near 0.84; BENCHMARKS.md).
A model that cannot tell is scored as ``lookalike duplicates`` groups then: identical
codes only. Train the models first:

    python -m bench.copies --skip-plain --variant "seed 1:--seed 1" --variant "seed 2:--seed 2"
    python -m bench.train_time
    python -m bench.calibration
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.copies import OUT as COPIES
from bench.duplicates import codes_of, copy_codes, labelled, pair_scores
from bench.train_time import DATA as TRAIN_TIME_DATA
from bench.train_time import PHOTOS
from indexer.encoding import TorchEncoder
from indexer.images import load_image
from indexer.validation import COLLECTION_SAMPLE, copy_calibration
from search.duplicates import complete_linkage_groups, model_threshold

COPIES_MODELS = ("data-Lookalike__default_", "data-seed_1", "data-seed_2")


def sample(paths: list[Path], size: int,
           count: int = COLLECTION_SAMPLE) -> tuple[torch.Tensor, list[Path]]:
    picked = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))[:count]]
    return torch.from_numpy(np.stack([load_image(p, size) for p in picked])), picked


def calibrated(encoder: TorchEncoder, images: torch.Tensor) -> tuple[dict, str]:
    seed = encoder.checkpoint.facts["train_config"]["seed"] + 2  # as lookalike train seeds it
    facts = copy_calibration(encoder.model, images, torch.device("cpu"), seed)
    shown = {k: facts.get(k) for k in ("threshold", "copy_recall", "holding_copies",
                                       "look_alike_rate")}
    return facts, "  ".join(f"{k} {v}" for k, v in shown.items())


def with_copies() -> None:
    paths = sorted((COPIES / "db").rglob("*.jpg"))
    q_paths, q_labels = labelled(COPIES / "queries")
    for name in COPIES_MODELS:
        checkpoint = COPIES / name / "model.pt"
        if not checkpoint.exists():
            print(f"copies  {name}: no model (python -m bench.copies first)")
            continue
        encoder = TorchEncoder.from_path(checkpoint, "cpu")
        facts, shown = calibrated(encoder, sample(paths, encoder.image_size)[0])
        threshold = model_threshold(facts["threshold"], facts["separable"])
        f1 = pair_scores(complete_linkage_groups(codes_of(encoder, q_paths), threshold),
                         q_labels)["f1"]
        print(f"copies  {name:<26} {shown}  held-out pair F1 {f1:.3f}", flush=True)


def without_copies() -> None:
    checkpoint = TRAIN_TIME_DATA / "model.pt"
    if not checkpoint.exists():
        print("no copies: no model (python -m bench.train_time first)")
        return
    encoder = TorchEncoder.from_path(checkpoint, "cpu")
    images, paths = sample(sorted(PHOTOS.rglob("*.jpg")), encoder.image_size)
    facts, shown = calibrated(encoder, images)
    threshold = model_threshold(facts["threshold"], facts["separable"])
    grouped = sum(map(len, complete_linkage_groups(copy_codes(encoder, images.numpy()),
                                                   threshold)))
    print(f"no copies  {len(paths)} photo-like JPEGs  {shown}  images in groups "
          f"{grouped} ({grouped / len(paths):.1%})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    with_copies()
    without_copies()


if __name__ == "__main__":
    main()
