"""The map's layout (search.map): how long it takes, and how well the 2-D places keep each
image's neighbours, for the product's methods and the peers they were chosen over.

For each data dir given (its own codes, as indexed: e.g. ``bench/map_page.py``'s
100,000 Fashion-MNIST images and a fresh ``lookalike demo``'s 400), each method lays out
every code, timed, and is scored by kNN recall@10 of the 2-D layout against the codes:
of each image's 10 nearest images by cosine of the codes, how many are among its 10
nearest on the map, over up to 2,000 seeded query images; a random placement is the floor.

Methods: ``umap`` and ``pca`` are ``search.map.fit``, what the map does (UMAP fitted on at
most 100,000 codes, the rest placed among their nearest fitted neighbours); ``umap-all``
is umap-learn fitted on every code, and ``tsne`` openTSNE (``pip install openTSNE``;
not a dependency): measured for the choice.

    python -m bench.map_layout DATA_DIR [DATA_DIR ...] [--methods umap,pca,umap-all,tsne]

Targets (issue #27): 100k images laid out in ≤ 60 s on 2 cores; neighbourhood
preservation reported per method; the default is the best one that meets the time.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from search.map import fit
from search.store import Store
from search.vector_index import normalise

K = 10
QUERIES = 2_000


def umap_all(codes: np.ndarray) -> np.ndarray:
    import umap

    return umap.UMAP(n_components=2).fit_transform(normalise(codes)).astype(np.float32)


def tsne(codes: np.ndarray) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(metric="cosine", n_jobs=2, random_state=0).fit(
        normalise(codes)), dtype=np.float32)


def layout(method: str, codes: np.ndarray) -> np.ndarray:
    if method in ("umap", "pca"):
        return fit(np.arange(len(codes)), codes, "bench", 0, method).xy
    return {"umap-all": umap_all, "tsne": tsne}[method](codes)


def knn_recall(codes: np.ndarray, xy: np.ndarray, queries: np.ndarray, k: int = K) -> float:
    """Mean share of each query's k nearest codes (cosine) among its k nearest on the map."""
    unit = normalise(codes)
    by_code = faiss.IndexFlatIP(unit.shape[1])
    by_code.add(unit)
    by_place = faiss.IndexFlatL2(2)
    by_place.add(np.ascontiguousarray(xy, np.float32))
    _, near_codes = by_code.search(unit[queries], k + 1)
    _, near_map = by_place.search(np.ascontiguousarray(xy[queries], np.float32), k + 1)
    return float(np.mean([len((set(a) - {q}) & (set(b) - {q})) / k
                          for q, a, b in zip(queries, near_codes, near_map)]))


def codes_of(data_dir: Path) -> np.ndarray:
    store = Store.open(data_dir)
    try:
        sha = store.index_model()
        ids = sorted(store.catalog_ids())
        found = store.codes_of(ids, sha)
        return np.stack([found[i] for i in ids])
    finally:
        store.close()


def measure(data_dir: Path, methods: list[str]) -> dict:
    codes = codes_of(data_dir)
    rng = np.random.default_rng(0)
    queries = np.sort(rng.choice(len(codes), min(QUERIES, len(codes)), replace=False))
    floor = rng.normal(size=(len(codes), 2)).astype(np.float32)
    found = {"data_dir": str(data_dir), "images": len(codes),
             "random": {"recall": round(knn_recall(codes, floor, queries), 4)}}
    for method in methods:
        started = time.perf_counter()
        xy = layout(method, codes)
        seconds = time.perf_counter() - started
        found[method] = {"seconds": round(seconds, 2),
                         "recall": round(knn_recall(codes, xy, queries), 4)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", type=Path, nargs="+")
    parser.add_argument("--methods", default="umap,pca",
                        help="Comma-separated: umap, pca (the product's), umap-all, tsne.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    results = [measure(d, methods) for d in args.data_dirs]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['images']:,} images of {r['data_dir']}: " + "; ".join(
            f"{m} {r[m]['seconds']} s, recall@10 {r[m]['recall']}" for m in methods)
            + f"; random recall@10 {r['random']['recall']}")


if __name__ == "__main__":
    main()
