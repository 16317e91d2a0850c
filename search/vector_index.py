"""The FAISS vector index: ids are catalog primary keys, via ``IndexIDMap2``.

Codes are L2-normalised and compared by inner product, i.e. cosine
similarity, which ranks autoencoder codes better than raw L2. The index
is a derived artefact: the catalog keeps each raw code, so the index can
always be rebuilt from it.
"""
from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np

from .files import replace_atomically


def imported_on_first_use(name: str) -> ModuleType:
    """Module *name*, loaded when one of its attributes is first read (importlib's
    LazyLoader). FAISS takes 0.15 s to import; commands that open the data dir but search
    nothing (`lookalike stats`, `--help`) never pay it. The first read is not thread-safe
    on Python 3.11 (CPython gh-114763): the web app, whose requests are threads, imports
    FAISS outright (``web.backend``), which loads it before any request."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


faiss = imported_on_first_use("faiss")

METRIC = "cosine"  # the only one: reported by `lookalike stats` and /api/stats
INDEX_TYPES = ("auto", "flat", "ivf", "ivfpq")
# Below this many vectors exact search is fast enough (≈1 ms at 100k, d = 64)
# and perfect; above it an IVF index is ~10–40× faster at recall@10 ≥ 0.95.
EXACT_LIMIT = 200_000
# From here IVF's full float codes (4·d bytes each, plus the id) outgrow a box's RAM
# (10M × d 64: 2.6 GB); IVF-PQ keeps d/4 bytes of each, and the search engine re-ranks
# its shortlist with the catalog's full codes (bench/scale.py).
COMPRESSED_LIMIT = 2_000_000
# The shortlist IVF-PQ returns per result wanted, for the re-ranking: at 10M codes,
# 10 gave recall@10 0.882 and 30 gave 0.982, still 52-80× exact (bench/scale.py codes).
REFINE_FACTOR = 30
ADD_EF_SEARCH = 16  # FAISS's default: the HNSW search that picks an added code's list


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """FAISS's OpenMP threads (torch's too, where they share one runtime) set to *n* while the
    block runs, then put back: a team size is the calling thread's, and a command run in
    process (the tests' CliRunner, a web request) must not leave it changed for what follows."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndexError(RuntimeError):
    """The index file is missing, unreadable, or does not fit the model."""


def normalise(codes: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; zero rows stay zero instead of becoming NaN."""
    codes = np.ascontiguousarray(codes, dtype=np.float32)
    norms = np.linalg.norm(codes, axis=1, keepdims=True)
    return codes / np.maximum(norms, 1e-12)


def nearest(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, rows) of each query's *k* most similar rows of *base* by inner product,
    exact: FAISS keeps only the k best of each row, where a full similarity matrix of
    4,096 queries by 20,000 codes and its argsort took 1.3 GB."""
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


class VectorIndex:
    """A FAISS index of normalised codes, searched by inner product (cosine similarity)."""

    metric = METRIC

    def __init__(self, index: faiss.Index):
        self.index = index

    @classmethod
    def create(cls, dim: int) -> "VectorIndex":
        """An exact index: a flat index behind ``IndexIDMap2`` for catalog ids."""
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def create_ivf(cls, train_codes: np.ndarray,
                   nlist: int | None = None, seed: int = 0) -> "VectorIndex":
        """An inverted-file index trained on a sample of *train_codes*.

        Sized per FAISS's "Guidelines to choose an index": nlist ≈ 4·√N
        lists, k-means on at most 64·nlist sampled codes. IVF keeps the
        catalog ids itself and supports ``remove_ids``, so incremental
        deletions and moves work as with the flat index.
        """
        n, dim = train_codes.shape
        nlist = nlist or int(2 ** np.ceil(np.log2(max(4 * np.sqrt(n), 16))))
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = train_codes[rng.choice(n, min(n, 64 * nlist), replace=False)]
        index = cls(ivf)
        ivf.train(index._prepare(sample))
        ivf.nprobe = default_nprobe(nlist)
        return index

    @classmethod
    def create_ivfpq(cls, train_codes: np.ndarray,
                     nlist: int | None = None, seed: int = 0) -> "VectorIndex":
        """IVF with product-quantised codes (Jégou et al. 2011): d/4 bytes a code.

        Its scores are approximate; callers re-rank a shortlist with exact
        codes (``approximate``). Many lists are probed through an HNSW
        coarse quantizer (FAISS's "IVF65536_HNSW32" recipe), so assigning
        10M codes to their lists does not take a flat scan of every centroid each.
        """
        n, dim = train_codes.shape
        # Half IVF's lists, k-means on 32 codes a list in 10 rounds: training 10M codes
        # takes minutes on 2 cores, not an hour; the re-ranking makes up the recall.
        nlist = nlist or int(2 ** np.ceil(np.log2(max(2 * np.sqrt(n), 16))))
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_subquantizers(dim), 8,
                               faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 10
        rng = np.random.default_rng(seed)
        sample = train_codes[rng.choice(n, min(n, max(32 * nlist, 65_536)), replace=False)]
        index = cls(ivf)
        ivf.train(index._prepare(sample))
        ivf.nprobe = min(nlist, max(16, nlist // 128))
        faiss.downcast_index(ivf.quantizer).hnsw.efSearch = max(64, 2 * ivf.nprobe)
        return index

    @property
    def approximate(self) -> bool:
        """Whether scores are approximate (product-quantised), so a shortlist needs re-ranking."""
        return isinstance(self.index, faiss.IndexIVFPQ)

    def exact_scores(self, query: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The scores :meth:`search` would give *codes* if it compared them exactly."""
        return self._prepare(codes) @ self._prepare(query)[0]

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_ivf(self) -> bool:
        return isinstance(self.index, faiss.IndexIVF)

    @property
    def index_type(self) -> str:
        return "ivfpq" if self.approximate else "ivf" if self.is_ivf else "flat"

    @property
    def faiss_class(self) -> str:
        """FAISS class of the searching index, e.g. ``IndexFlatIP`` or ``IndexIVFFlat``."""
        if self.approximate:
            return (f"IndexIVFPQ(nlist={self.index.nlist}, nprobe={self.index.nprobe}, "
                    f"{self.index.pq.M} bytes/code, refined by the catalog's codes)")
        if self.is_ivf:
            return f"{type(self.index).__name__}(nlist={self.index.nlist}, nprobe={self.index.nprobe})"
        return type(faiss.downcast_index(self.index.index)).__name__

    def facts(self) -> dict:
        """What `lookalike stats` and /api/stats say of the index."""
        return {"index_type": self.faiss_class, "index_vectors": self.ntotal,
                "metric": self.metric}

    def _prepare(self, codes: np.ndarray) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.dim:
            raise ValueError(f"codes must have shape (n, {self.dim}), got {codes.shape}")
        return normalise(codes)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if not self.approximate:
            self.index.add_with_ids(self._prepare(codes), ids)
            return
        # A code goes to its one nearest list: a narrow HNSW search finds it, ~5× faster
        # than the wide one a query's nprobe lists need.
        hnsw = faiss.downcast_index(self.index.quantizer).hnsw
        searching, hnsw.efSearch = hnsw.efSearch, ADD_EF_SEARCH
        try:
            self.index.add_with_ids(self._prepare(codes), ids)
        finally:
            hnsw.efSearch = searching

    def remove(self, ids) -> int:
        ids = np.ascontiguousarray(list(ids), dtype=np.int64)
        if not len(ids):
            return 0
        return int(self.index.remove_ids(ids))

    def ids(self) -> np.ndarray:
        """Every id in the index (the IDMap's table, or the IVF lists' ids)."""
        if not self.is_ivf:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        lists = self.index.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(self.index.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the *k* nearest, best first; ``-1`` padding is dropped by callers.

        Scores are cosine similarities, in [−1, 1].
        """
        k = max(1, min(int(k), max(self.ntotal, 1)))
        return self.index.search(self._prepare(codes), k)

    def save(self, path: str | Path) -> None:
        """Write atomically (``search.files``): readers never load half an index."""
        replace_atomically(path, lambda tmp: faiss.write_index(self.index, tmp), "index")


def pq_split(dim: int, wanted: int) -> int:
    """The most sub-vectors, at most *wanted*, that a product quantiser can cut a *dim*-long
    code into: FAISS wants a divisor of *dim*."""
    m = max(1, min(wanted, dim))
    while dim % m:
        m -= 1
    return m


def pq_subquantizers(dim: int) -> int:
    """The index's PQ: sub-vectors of about 4 dimensions each, one byte apiece."""
    return pq_split(dim, dim // 4)


def default_nprobe(nlist: int) -> int:
    """Lists probed per query: 1/64 of them (at least 8), enough for recall@10 ≥ 0.95
    on clustered codes in bench/query_scale.py."""
    return int(min(nlist, max(8, nlist // 64)))


def choose_index_type(n: int, requested: str = "auto") -> str:
    """``flat`` (exact) below :data:`EXACT_LIMIT` vectors, ``ivf`` up to
    :data:`COMPRESSED_LIMIT`, ``ivfpq`` above, unless requested."""
    if requested not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {INDEX_TYPES}, not {requested!r}")
    if requested != "auto":
        return requested
    return "flat" if n < EXACT_LIMIT else "ivf" if n < COMPRESSED_LIMIT else "ivfpq"


# Fewest codes each kind is trained on: below, an exact index serves (PQ's 256 centroids
# per sub-vector need that many codes at the very least; FAISS advises 39 times more).
TRAINING_MINIMUM = {"ivf": 16, "ivfpq": 256}


def build_index(ids: np.ndarray, codes: np.ndarray, dim: int,
                choice: str = "auto") -> VectorIndex:
    """A new index of the type *choice* asks for (auto: by ``len(ids)``), holding them all."""
    kind = choose_index_type(len(ids), choice)
    if kind == "ivfpq" and len(ids) >= TRAINING_MINIMUM[kind]:
        index = VectorIndex.create_ivfpq(codes)
    elif kind in TRAINING_MINIMUM and len(ids) >= TRAINING_MINIMUM["ivf"]:
        index = VectorIndex.create_ivf(codes)
    else:
        index = VectorIndex.create(dim)
    index.add(ids, codes)
    return index


def load_index(path: str | Path, mmap: bool = False) -> VectorIndex:
    """Read an index written by :meth:`VectorIndex.save`; *mmap* maps it read-only."""
    path = Path(path)
    if not path.is_file():
        raise VectorIndexError(f"no vector index at {path}")
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise VectorIndexError(f"cannot read vector index {path}: {exc}") from exc
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise VectorIndexError(f"{path} does not compare codes by cosine similarity: not an "
                               "index Lookalike wrote")
    return VectorIndex(index)
