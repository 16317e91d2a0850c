"""Nearest neighbours with just the catalog columns a result shows.

``SearchEngine.search_code`` hydrates whole ORM rows, code blobs included;
for the ten-odd rows of one answer that cost ~2 ms here, half the encoder's
time, so the API asks the engine's current index itself and reads three
columns with one Core query. The engine still owns the index and its
reloading; this only replaces the last step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import bindparam, select

from search.catalog import ImageRecord
from search.vector_index import VectorIndex

from .backend import ConfiguredStore

# Built once: a prepared statement with an expanding IN list is cached by
# SQLAlchemy, where a fresh .where(in_(...)) per call is compiled each time.
_ROWS = (select(ImageRecord.id, ImageRecord.path, ImageRecord.recon_error)
         .where(ImageRecord.id.in_(bindparam("ids", expanding=True))))


@dataclass(frozen=True)
class Neighbour:
    id: int
    score: float
    path: str
    recon_error: float


def nearest(store: ConfiguredStore, index: VectorIndex, code: np.ndarray, k: int,
            exclude: int | None = None) -> list[Neighbour]:
    """The *k* closest catalog images to *code*, best first, *exclude* left out.

    An id the catalog no longer has (deleted while an indexer runs, before
    it saves the new index) is skipped, as the engine does.
    """
    extra = 1 if exclude is not None else 0
    scores, ids = index.search(np.asarray(code, dtype=np.float32).reshape(1, -1), k + extra)
    pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1 and i != exclude]
    pairs = pairs[:k]
    if not pairs:
        return []
    with store.db.connect() as conn:
        rows = {r.id: r for r in conn.execute(_ROWS, {"ids": [i for i, _ in pairs]})}
    return [Neighbour(i, score, rows[i].path, rows[i].recon_error)
            for i, score in pairs if i in rows]
