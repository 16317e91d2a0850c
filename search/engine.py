"""The query engine: image in, nearest catalog images out.

It receives an encoder (anything with ``image_size``, ``encode`` and
``decode``) instead of importing one, so ``search`` never depends on the
model code.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .catalog import ImageRecord
from .library import Filters, codes_if_few, matching
from .store import Store
from .vector_index import REFINE_FACTOR, VectorIndex

MAX_K = 1000
FILTER_FACTOR = 4  # a filtered search takes this many times the candidates, again and again
FILTERED_DEPTH = 20_000  # the most candidates a filtered search looks through
REFINE_MOST = 100  # results whose IVF-PQ shortlist gets the full REFINE_FACTOR margin


class Encoder(Protocol):
    image_size: int
    dim: int

    def encode(self, pixels: np.ndarray) -> np.ndarray: ...

    def decode(self, codes: np.ndarray) -> np.ndarray: ...


class ModelMismatch(RuntimeError):
    """The index holds codes another model made: they compare with the query's as noise."""


def reencode_advice(reencode: str, or_else: str) -> str:
    """What to do about an index another model built, as every front end says it: the
    *reencode* command line, *or_else* the front end's way to name the model that built it."""
    return f"Re-encode with `{reencode}`, or {or_else}."


@dataclass(frozen=True)
class Hit:
    """One search result: what a result list shows; :meth:`SearchEngine.record` has the rest."""

    id: int
    score: float
    path: str
    reconstruction_error: float | None


class SearchEngine:
    """Owns a loaded index and reloads it when an indexer bumps the generation."""

    def __init__(self, store: Store, encoder: Encoder):
        self.store = store
        self.encoder = encoder
        self._index: VectorIndex | None = None
        self._index_generation = -1
        self._checked: VectorIndex | None = None  # the loaded index check_index passed
        self._lock = threading.Lock()

    def index(self) -> VectorIndex:
        """The current index, reloaded if the catalog says a newer one was saved."""
        generation = self.store.index_generation()
        with self._lock:
            if self._index is None or generation != self._index_generation:
                # Mapped, not read: a 10M-code index is paged in as queries touch it,
                # and processes serving the same data dir share its pages.
                self._index = self.store.load_index(mmap=True)
                self._index_generation = generation
            return self._index

    def checked_index(self) -> VectorIndex:
        """:meth:`index`, refused (ModelMismatch) when another model built it; each index
        loaded is checked once, not on every query."""
        index = self.index()
        if self._checked is not index:
            self.check_index(index)
            self._checked = index
        return index

    def check_index(self, index: VectorIndex) -> None:
        """Refuse an index this engine's encoder did not build (ModelMismatch says how).

        Another latent size fails loudly in FAISS, but the same size from a
        retrained model searches "fine" and returns nonsense, so the
        checkpoint that encoded a few of the index's rows is compared too.
        """
        if index.dim != self.encoder.dim:
            raise ModelMismatch(f"the index holds {index.dim}-dimensional codes but the model "
                                f"makes {self.encoder.dim}: it was built with another model")
        mine = getattr(self.encoder, "sha256", None)
        # Recorded with the index; an index saved before that was recorded is judged by
        # the catalog rows of a few of its ids (which a re-encode rewrites as it goes).
        recorded = self.store.index_model()
        built_by = ({recorded} if recorded
                    else self.store.checkpoints_of([int(i) for i in index.ids()[:8]]))
        if mine is not None and built_by and built_by != {mine}:
            raise ModelMismatch("the index was encoded with a different model than the one "
                                "in use, so their codes cannot be compared")

    def search_code(self, code: np.ndarray, k: int, exclude: int | None = None,
                    index: VectorIndex | None = None, filters: Filters = Filters()) -> list[Hit]:
        """The *k* catalog images nearest to *code* that pass *filters*, best first,
        *exclude* left out.

        *index* is one the caller already took from :meth:`index` and
        checked (its dimension, its model), so a re-index landing between
        that check and this search cannot swap it; by default the current one.
        A filter that keeps at most FILTERED_DEPTH images is searched exactly
        among their stored codes; a wider one is applied to FAISS's candidates,
        four times as many as asked for, and more, until *k* pass (at most
        FILTERED_DEPTH of them).
        """
        k = max(1, min(int(k), MAX_K))
        index = index if index is not None else self.index()
        query = np.asarray(code, dtype=np.float32).reshape(1, -1)
        depth = k + (1 if exclude is not None else 0)
        if filters:
            few = codes_if_few(self.store, filters, FILTERED_DEPTH)
            if few is not None:
                index = _subset_index(few, index)
                filters = Filters()  # all it holds passes
        while True:
            scores, ids = self._search(index, query, depth * (FILTER_FACTOR if filters else 1))
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0])
                     if i != -1 and i != exclude]
            searched = len(ids[0])
            if filters:
                passing = matching(self.store, [i for i, _ in pairs], filters)
                pairs = [p for p in pairs if p[0] in passing]
            if (len(pairs) >= k or not filters or searched >= index.ntotal
                    or depth * FILTER_FACTOR >= FILTERED_DEPTH):
                break
            depth = min(depth * FILTER_FACTOR, FILTERED_DEPTH // FILTER_FACTOR)
        pairs = pairs[:k]
        rows = self.store.hit_rows([i for i, _ in pairs])
        # An id the catalog no longer has (deleted mid-reindex) is skipped, not an error.
        return [Hit(i, sc, *rows[i]) for i, sc in pairs if i in rows]

    def _search(self, index: VectorIndex, query: np.ndarray, n: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """*index*'s *n* best; a product-quantised index's shortlist of REFINE_FACTOR·n
        re-ranked by the catalog's full codes, which is what lifts its recall to IVF's."""
        if not index.approximate:
            return index.search(query, n)
        # A filtered search's deep n gets a shorter margin: the catalog reads every code.
        _, shortlist = index.search(query, n + min(n, REFINE_MOST) * (REFINE_FACTOR - 1))
        codes = self.store.codes_of([int(i) for i in shortlist[0] if i != -1],
                                    getattr(self.encoder, "sha256", None))
        ids = np.array([i for i in codes if len(codes[i]) == index.dim], np.int64)
        if not len(ids):
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        scores = index.exact_scores(query, np.stack([codes[i] for i in ids]))
        best = np.argsort(-scores, kind="stable")[:n]
        return scores[best][None], ids[best][None]

    def search_pixels(self, pixels: np.ndarray, k: int) -> tuple[np.ndarray, list[Hit]]:
        """Encode one (S, S, 3) uint8 image and search; returns its code and the hits."""
        code = self.encoder.encode(pixels[None])[0]
        return code, self.search_code(code, k)

    def record(self, image_id: int) -> ImageRecord:
        return self.store.record(image_id)

    def similar(self, image_id: int, k: int) -> tuple[ImageRecord, list[Hit]]:
        """Neighbours of an indexed image, from its stored code, excluding itself."""
        row = self.record(image_id)
        return row, self.search_code(code_of(row), k, exclude=image_id)


def code_of(row: ImageRecord) -> np.ndarray:
    """The stored raw code, as a writable array (torch warns on read-only buffers)."""
    return np.frombuffer(row.code, dtype=np.float32).copy()


def _subset_index(rows: list[tuple[int, bytes]], like: VectorIndex) -> VectorIndex:
    """An exact index of these (id, stored code) rows, of *like*'s size; rows of another
    model (a code of another length) are left out."""
    subset = VectorIndex.create(like.dim)
    codes = [(i, c) for i, c in rows if len(c) == like.dim * 4]
    if codes:
        subset.add(np.array([i for i, _ in codes], np.int64),
                   np.stack([np.frombuffer(c, np.float32) for _, c in codes]))
    return subset
