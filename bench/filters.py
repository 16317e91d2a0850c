"""What filtering search results costs in recall: folder filters of shrinking size.

Search filters (``folder``, ``date_from``, ``date_to``; ``search.engine.SearchEngine.
search_code``): a filter keeping at most FILTERED_DEPTH images is searched exactly among
their stored codes; a wider one is applied to FAISS's candidates (4× k, then 4× again, up
to FILTERED_DEPTH), which may then miss some of the true k nearest. This measures recall@10 against an exact filtered
search, through the real engine and catalog: 100k random 64-d codes in a SQLite catalog,
folders holding 10 %, 1 %, 0.1 % and 0.01 % of them, with the flat index and with IVF.

    python -m bench.filters          # ~1 minute on 2 cores
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime

import numpy as np
from sqlalchemy import insert

from search.catalog import ImageRecord, ModelRecord
from search.engine import FILTERED_DEPTH, SearchEngine
from search.library import Filters
from search.store import Store
from search.vector_index import VectorIndex, normalise

SHARES = {"thirty": 0.3, "ten": 0.1, "one": 0.01, "tenth": 0.001, "hundredth": 0.0001}


def catalog(store: Store, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A row for each code, each in one folder by SHARES (the rest in 'rest'); the folder
    of each row."""
    n = len(codes)
    folder = np.full(n, "rest", dtype=object)
    order = rng.permutation(n)
    start = 0
    for name, share in SHARES.items():
        count = max(1, int(n * share))
        folder[order[start:start + count]] = name
        start += count
    now = datetime(2026, 1, 1)
    with store.sessions() as s, s.begin():
        s.execute(insert(ModelRecord), [dict(id=1, kind="ae", config={}, checkpoint_path="m",
                                             checkpoint_sha256="x", latent_dim=64)])
        s.execute(insert(ImageRecord), [dict(
            id=i + 1, path=f"/lib/{folder[i]}/{i}.png", sha256=f"{i:064x}", size=1, mtime=0.0,
            width=1, height=1, model_id=1, code=codes[i].tobytes(), reconstruction_error=0.0,
            indexed_at=now)
            for i in range(n)])
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    codes = normalise(rng.normal(size=(args.n, 64)).astype(np.float32))
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(tmp)
        folder = catalog(store, codes, rng)
        queries = normalise(rng.normal(size=(args.queries, 64)).astype(np.float32))
        print(f"{args.n:,} codes, {args.queries} queries, k = 10, candidates up to "
              f"{FILTERED_DEPTH:,}\n")
        print("| index | folder share | images in it | recall@10 | found per query | ms per query |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for kind in ("flat", "ivf"):
            index = VectorIndex.create_ivf(codes) if kind == "ivf" else VectorIndex.create(64)
            index.add(ids, codes)
            engine = SearchEngine(store, encoder=None)
            for name, share in [(None, 1.0), *SHARES.items()]:  # None: no filter, the baseline
                members = np.flatnonzero(folder == name) if name else np.arange(args.n)
                recall, found, started = [], [], time.perf_counter()
                for q in queries:
                    hits = engine.search_code(q, 10, index=index, filters=Filters(
                        folder=f"/lib/{name}" if name else None))
                    truth = members[np.argsort(-(codes[members] @ q))[:10]] + 1
                    recall.append(len({h.id for h in hits} & set(truth)) / len(truth))
                    found.append(len(hits))
                ms = (time.perf_counter() - started) / len(queries) * 1000
                print(f"| {kind} | {share:.2%} | {len(members):,} | {np.mean(recall):.3f} | "
                      f"{np.mean(found):.1f} | {ms:.1f} |")
        store.close()


if __name__ == "__main__":
    main()
