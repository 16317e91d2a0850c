"""Single-query latency of the vector index at 10k, 100k and 1M codes: exact vs automatic.

Codes are a clustered Gaussian mixture (not uniform noise, which no index
can shortcut): 2,000 clusters in d = 64, queries drawn from the same
mixture and held out of the index. Recall@10 is measured against the
exact index in the same run.

    python -m bench.query_scale [--sizes 10000,100000,1000000] [--queries 500]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from search.vector_index import build_index, choose_index_type


def mixture(n: int, d: int, clusters: int, rng: np.random.Generator,
            centers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if centers is None:
        centers = rng.normal(size=(clusters, d)).astype(np.float32)
    labels = rng.integers(0, len(centers), n)
    spread = rng.uniform(0.3, 0.8, len(centers)).astype(np.float32)
    x = centers[labels] + rng.normal(size=(n, d)).astype(np.float32) * spread[labels, None]
    return x.astype(np.float32), centers


def latencies(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None], k)
        times.append(time.perf_counter() - t)
        found.append(ids[0])
    return np.array(times) * 1000, np.array(found)


def index_bytes(index) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "i.faiss")
        index.save(path)
        return os.path.getsize(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"d = {args.dim}, {args.queries} single queries, k = 10, {os.cpu_count()} cores")
    print(f"{'n':>9} {'index':<34}{'p50 ms':>8}{'p99 ms':>8}{'recall@10':>10}{'B/img':>7}"
          f"{'build s':>8}{'speed-up':>9}")
    for n in (int(s) for s in args.sizes.split(",")):
        codes, centers = mixture(n, args.dim, 2000, rng)
        queries, _ = mixture(args.queries, args.dim, 2000, rng, centers)
        ids = np.arange(n, dtype=np.int64)
        t = time.time()
        exact = build_index(ids, codes, args.dim, choice="flat")
        exact_build = time.time() - t
        exact_ms, truth = latencies(exact, queries)
        rows = [("exact", exact, exact_ms, 1.0, exact_build)]
        if choose_index_type(n) != "flat":
            t = time.time()
            auto = build_index(ids, codes, args.dim, choice="auto")
            build = time.time() - t
            auto_ms, found = latencies(auto, queries)
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
            rows.append(("auto", auto, auto_ms, recall, build))
        else:
            rows.append(("auto (= exact below the limit)", exact, exact_ms, 1.0, exact_build))
        for name, index, ms, recall, build in rows:
            speed = np.median(exact_ms) / np.median(ms)
            print(f"{n:>9} {name + ': ' + index.faiss_class:<34}{np.median(ms):8.3f}"
                  f"{np.percentile(ms, 99):8.3f}{recall:10.3f}{index_bytes(index) / n:7.0f}"
                  f"{build:8.1f}{speed:8.1f}x", flush=True)


if __name__ == "__main__":
    main()
