"""The map's layout (search.map): how long it takes for 100,000 images, and how well the
2-D places keep each image's neighbours.

Two measurements, printed, not asserted (the box is shared):

* time: ``search.map.fit`` on N synthetic codes (128-d, 50 clusters of look-alikes), and
  placing 1,000 more with the fitted transform;
* neighbours: kNN recall@10 of the 2-D layout against the codes (of each image's 10
  nearest images by cosine of the codes, how many are among its 10 nearest on the map),
  on a data dir's own codes (the demo's Fashion-MNIST sample by default), beside a random
  placement as the floor.

    python -m bench.map_layout [--n 100000] [--data-dir lookalike-data] [--methods pca,umap,tsne]

Targets (issue #27): 100k images laid out in ≤ 60 s on 2 cores; neighbourhood
preservation reported per method.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from search.map import current_layout, fit
from search.store import Store
from search.vector_index import normalise

K = 10


def synthetic_codes(n: int, dim: int = 128, clusters: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    return centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim)).astype(
        np.float32)


def pca_xy(codes: np.ndarray) -> np.ndarray:
    return fit(np.arange(len(codes)), codes, "bench", 0).xy


def umap_xy(codes: np.ndarray) -> np.ndarray:
    """UMAP (umap-learn), cosine on the codes: not a dependency, measured for the choice."""
    import umap

    return umap.UMAP(metric="cosine", random_state=0, n_jobs=1).fit_transform(
        normalise(codes)).astype(np.float32)


def tsne_xy(codes: np.ndarray) -> np.ndarray:
    """openTSNE, cosine on the codes, two threads: not a dependency either."""
    from openTSNE import TSNE

    return np.asarray(TSNE(metric="cosine", n_jobs=2, random_state=0).fit(
        normalise(codes)), dtype=np.float32)


METHODS = {"pca": pca_xy, "umap": umap_xy, "tsne": tsne_xy}


def timing(n: int, methods: list[str]) -> dict:
    codes = synthetic_codes(n + 1000)
    found = {"images": n}
    for name in methods:
        started = time.perf_counter()
        METHODS[name](codes[:n])
        found[f"{name}_seconds"] = round(time.perf_counter() - started, 3)
    layout = fit(np.arange(n), codes[:n], "bench", 0)
    started = time.perf_counter()
    layout.place(codes[n:])
    found["pca_place_1000_seconds"] = round(time.perf_counter() - started, 4)
    return found


def knn_recall(codes: np.ndarray, xy: np.ndarray, k: int = K) -> float:
    """Mean share of each point's k nearest codes (cosine) among its k nearest on the map."""
    unit = normalise(codes)
    total = 0.0
    for start in range(0, len(unit), 1024):
        block = slice(start, min(start + 1024, len(unit)))
        sims = unit[block] @ unit.T
        d2 = ((xy[block, None, :] - xy[None, :, :]) ** 2).sum(-1)
        for row, i in enumerate(range(block.start, block.stop)):
            sims[row, i], d2[row, i] = -np.inf, np.inf
        near_codes = np.argpartition(-sims, k, axis=1)[:, :k]
        near_map = np.argpartition(d2, k, axis=1)[:, :k]
        total += sum(len(set(a) & set(b)) / k for a, b in zip(near_codes, near_map))
    return total / len(unit)


def neighbours(data_dir: Path, methods: list[str]) -> dict:
    store = Store.open(data_dir)
    try:
        sha = store.index_model()
        layout = current_layout(store, sha)  # the product's map: PCA
        found = store.codes_of(layout.ids.tolist(), sha)
        codes = np.stack([found[int(i)] for i in layout.ids])
    finally:
        store.close()
    floor = np.random.default_rng(0).normal(size=layout.xy.shape).astype(np.float32)
    recall = {"random": round(knn_recall(codes, floor), 4)}
    for name in methods:
        xy = layout.xy if name == "pca" else METHODS[name](codes)
        recall[name] = round(knn_recall(codes, xy), 4)
    return {"data_dir": str(data_dir), "images": len(codes), "knn_recall_at_10": recall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=Path("lookalike-data"))
    parser.add_argument("--methods", default="pca",
                        help="Comma-separated: pca (the product's), umap, tsne (measured only; "
                             "pip install umap-learn openTSNE).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    result = {"time": timing(args.n, methods)}
    if (args.data_dir / "catalog.sqlite").exists():
        result["neighbours"] = neighbours(args.data_dir, methods)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    t = result["time"]
    print(f"layout of {t['images']:,} codes: " + ", ".join(
        f"{m} {t[m + '_seconds']} s" for m in methods)
        + f"; 1,000 more placed by the PCA map in {t['pca_place_1000_seconds']} s")
    if "neighbours" in result:
        n = result["neighbours"]
        print(f"kNN recall@10 of the 2-D map vs the codes, {n['images']} images of "
              f"{n['data_dir']}: " + ", ".join(f"{m} {v}" for m, v in
                                              n["knn_recall_at_10"].items()))


if __name__ == "__main__":
    main()
