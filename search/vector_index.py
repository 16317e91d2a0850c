"""The FAISS vector index: ids are catalog primary keys, via ``IndexIDMap2``.

Codes are L2-normalised and compared by inner product, i.e. cosine
similarity, which ranks autoencoder codes better than raw L2. The index
is a derived artefact: the catalog keeps each raw code, so the index can
always be rebuilt from it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import faiss
import numpy as np

METRICS = ("cosine", "l2")


class VectorIndexError(RuntimeError):
    """The index file is missing, unreadable, or does not fit the model."""


def normalise(codes: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; zero rows stay zero instead of becoming NaN."""
    codes = np.ascontiguousarray(codes, dtype=np.float32)
    norms = np.linalg.norm(codes, axis=1, keepdims=True)
    return codes / np.maximum(norms, 1e-12)


class VectorIndex:
    """A FAISS index plus the metric it was built for."""

    def __init__(self, index: faiss.Index, metric: str = "cosine"):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
        self.index = index
        self.metric = metric

    @classmethod
    def create(cls, dim: int, metric: str = "cosine") -> "VectorIndex":
        flat = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
        return cls(faiss.IndexIDMap2(flat), metric)

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self.index.index) if hasattr(self.index, "index") else self.index
        return type(inner).__name__

    def _prepare(self, codes: np.ndarray) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.dim:
            raise ValueError(f"codes must have shape (n, {self.dim}), got {codes.shape}")
        return normalise(codes) if self.metric == "cosine" else codes

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids):
            self.index.add_with_ids(self._prepare(codes), ids)

    def remove(self, ids) -> int:
        ids = np.ascontiguousarray(list(ids), dtype=np.int64)
        if not len(ids):
            return 0
        return int(self.index.remove_ids(ids))

    def ids(self) -> np.ndarray:
        """Every id in the index (from the IDMap's id table)."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the *k* nearest, best first; ``-1`` padding is dropped by callers.

        Scores are similarities (higher is closer): cosine in [−1, 1], or
        negative squared L2 distance for the l2 metric.
        """
        k = max(1, min(int(k), max(self.ntotal, 1)))
        scores, ids = self.index.search(self._prepare(codes), k)
        if self.metric == "l2":
            scores = -scores
        return scores, ids

    def save(self, path: str | Path) -> None:
        """Write atomically: a temp file in the same folder, fsync, then rename over."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
    metric = "cosine" if index.metric_type == faiss.METRIC_INNER_PRODUCT else "l2"
    return VectorIndex(index, metric)
