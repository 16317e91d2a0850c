"""Near-duplicate groups on the edited-copies benchmark, and grouping 100k codes.

Quality: the copies benchmark (``bench/copies.py``: the real photos that
scikit-image, scikit-learn and matplotlib ship, each with edited copies)
and its default-recipe model (trained there by ``bench.copies`` when it is
missing). Two images are a true pair when they come from the same photo.
The threshold is calibrated on the database set (originals + copies, the
images the model was trained on) and measured on the held-out copies,
which the model never saw. pHash and dHash (imagehash, 64 bits, computed
on the full files) group by connected components at Hamming ≤ t, as peers
do, with t chosen on the held-out set itself (an oracle, their best case).

Scale: 100k random 64-d codes with planted copies (40k photos with 0-4
noisy copies each, the rest single), grouped at the default threshold;
wall time and the process's peak RSS.

    python -m bench.duplicates            # a few minutes on 2 cores with the model there
    python -m bench.duplicates --no-quality --threads 1   # grouping as the web app does it
"""
from __future__ import annotations

import argparse
import resource
import time
from itertools import combinations
from pathlib import Path

import faiss
import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bench.copies import OUT, build, lookalike
from indexer.duplicates import (DEFAULT_THRESHOLD, complete_linkage_groups, cut_components,
                                keep_apart, model_threshold, neighbour_graph)
from indexer.encoder import TorchEncoder
from indexer.images import load_image
from search.vector_index import normalise

MODEL_DIR = OUT / "data-Lookalike__default_"


def labelled(folder: Path) -> tuple[list[Path], list[str]]:
    paths = sorted(folder.rglob("*.jpg"))
    return paths, [p.parent.name for p in paths]


def pair_scores(groups: list[list[int]], labels: list[str]) -> dict[str, float]:
    """Pair precision, recall and F1 of *groups* (row indices) against same-label pairs."""
    predicted = {frozenset(p) for g in groups for p in combinations(g, 2)}
    true = {frozenset(p) for p in combinations(range(len(labels)), 2)
            if labels[min(p)] == labels[max(p)]}
    hits = len(predicted & true)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(predicted)}


def hash_groups(bits: np.ndarray, max_distance: int) -> list[list[int]]:
    """Connected components of the Hamming ≤ t graph (what hash-based dedupers do)."""
    distances = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    rows, cols = np.nonzero(distances <= max_distance)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=distances.shape)
    _, labels = connected_components(graph, directed=False)
    parts: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        parts.setdefault(int(label), []).append(row)
    return [g for g in parts.values() if len(g) > 1]


def codes_of(encoder: TorchEncoder, paths: list[Path]) -> np.ndarray:
    """The copy parts of their codes: what ``lookalike duplicates`` groups by."""
    pixels = np.stack([load_image(p, encoder.image_size) for p in paths])
    return np.concatenate([encoder.encode(pixels[i:i + 64])[:, encoder.copy_part]
                           for i in range(0, len(pixels), 64)])


def calibrate(codes: np.ndarray, labels: list[str]) -> tuple[float, dict]:
    best = (0.0, {"f1": -1.0})
    for threshold in np.round(np.arange(0.05, 0.995, 0.01), 2):
        scores = pair_scores(complete_linkage_groups(codes, float(threshold)), labels)
        if scores["f1"] > best[1]["f1"]:
            best = (float(threshold), scores)
    return best


def quality() -> None:
    build(OUT, 9, 10, 0)
    if not (MODEL_DIR / "model.pt").exists():
        print(lookalike(MODEL_DIR, "train", str(OUT / "db")), end="")
    encoder = TorchEncoder.from_path(MODEL_DIR / "model.pt", "cpu")
    db_paths, db_labels = labelled(OUT / "db")
    q_paths, q_labels = labelled(OUT / "queries")
    calibrated, on_db = calibrate(codes_of(encoder, db_paths), db_labels)
    print(f"calibration (database set, {len(db_paths)} images): best threshold {calibrated:.2f}, "
          f"pair F1 {on_db['f1']:.3f}")
    q_codes = codes_of(encoder, q_paths)
    print(f"\nheld-out copies: {len(q_paths)} images of {len(set(q_labels))} photos\n")
    print("| method | threshold | pair precision | pair recall | pair F1 |\n| --- | ---: | ---: | ---: | ---: |")
    rows = [("Lookalike, default threshold", DEFAULT_THRESHOLD),
            ("Lookalike, calibrated here", calibrated)]
    own = model_threshold(encoder.copy_threshold, encoder.separates_copies)
    rows.insert(0, ("Lookalike, the model's own threshold (its default)", own))
    for name, threshold in rows:
        s = pair_scores(complete_linkage_groups(q_codes, threshold), q_labels)
        print(f"| {name} | {threshold:.2f} | {s['precision']:.3f} | {s['recall']:.3f} | "
              f"**{s['f1']:.3f}** |")
    for name, fn in (("pHash", imagehash.phash), ("dHash", imagehash.dhash)):
        bits = np.stack([fn(Image.open(p)).hash.reshape(-1) for p in q_paths])
        t, s = max(((t, pair_scores(hash_groups(bits, t), q_labels)) for t in range(0, 33)),
                   key=lambda ts: ts[1]["f1"])
        print(f"| {name}, oracle Hamming threshold | ≤ {t} | {s['precision']:.3f} | "
              f"{s['recall']:.3f} | {s['f1']:.3f} |")


def scale(n: int, dim: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photos = rng.normal(size=(n * 2 // 5, dim)).astype(np.float32)
    copies = rng.integers(0, 5, size=len(photos))
    planted = np.repeat(photos, copies, axis=0)
    planted += 0.15 * rng.normal(size=planted.shape).astype(np.float32)
    singles = rng.normal(size=(max(n - len(photos) - len(planted), 0), dim)).astype(np.float32)
    codes = np.concatenate([photos, planted, singles])[:n]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    codes = normalise(codes)
    graph = neighbour_graph(codes, DEFAULT_THRESHOLD)
    searched = time.perf_counter()
    groups = cut_components(codes, graph, DEFAULT_THRESHOLD)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    apart = [g[:2] for g in groups[:100]]  # 100 "not duplicates" decisions
    keep_apart(codes, graph, groups, DEFAULT_THRESHOLD, apart)
    decided = time.perf_counter()
    print(f"\n{len(codes):,} codes ({dim}-d): {len(groups):,} groups in {done - started:.1f} s "
          f"(range search {searched - started:.1f} s, the cut {done - searched:.1f} s); peak RSS "
          f"{peak / 1024:.0f} MB (grew {(peak - before) / 1024:.0f} MB while grouping); "
          f"100 decisions applied in {decided - done:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000, help="Codes to group (0: skip).")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--threads", type=int, help="FAISS threads for the scale run (the web app "
                                                "uses LOOKALIKE_INFERENCE_THREADS, 1 by default).")
    args = ap.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    if not args.no_quality:
        quality()
    if args.scale:
        scale(args.scale)


if __name__ == "__main__":
    main()
