"""A data dir: the catalog database, the vector index and the files beside them.

Layout::

    DATA_DIR/catalog.sqlite   metadata + raw codes (SQLite, WAL)
    DATA_DIR/index.faiss      FAISS index, ids = catalog primary keys
    DATA_DIR/model.pt         the current checkpoint (written by `lookalike train`)
    DATA_DIR/thumbs/          thumbnail cache, by sha256
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .catalog import ImageRecord, MetaRecord
from .database import database_url, open_database
from .vector_index import VectorIndex, VectorIndexError, load_index

DEFAULT_DATA_DIR = "lookalike-data"


def default_data_dir() -> Path:
    return Path(os.environ.get("LOOKALIKE_DATA_DIR", DEFAULT_DATA_DIR))


@dataclass
class Store:
    data_dir: Path
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, data_dir: str | Path, database: str | None = None) -> "Store":
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        _engine, sessions = open_database(database or database_url(data_dir))
        return cls(data_dir, sessions)

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.faiss"

    @property
    def model_path(self) -> Path:
        return self.data_dir / "model.pt"

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "thumbs"

    def load_index(self, mmap: bool = False) -> VectorIndex:
        return load_index(self.index_path, mmap)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.sessions() as s:
            row = s.get(MetaRecord, key)
            return row.value if row else default

    def set_meta(self, session: Session, key: str, value: str) -> None:
        session.merge(MetaRecord(key=key, value=value))

    def generation(self) -> int:
        """Bumped on every committed index write; readers reload when it moves."""
        return int(self.get_meta("generation", "0") or 0)

    def catalog_ids(self, model_id: int | None = None) -> set[int]:
        query = select(ImageRecord.id)
        if model_id is not None:
            query = query.where(ImageRecord.model_id == model_id)
        with self.sessions() as s:
            return set(s.scalars(query))

    def rebuild_index(self, dim: int, model_id: int, metric: str = "cosine") -> VectorIndex:
        """A fresh index from the raw codes the catalog keeps for *model_id*."""
        index = VectorIndex.create(dim, metric)
        with self.sessions() as s:
            rows = s.execute(select(ImageRecord.id, ImageRecord.code)
                             .where(ImageRecord.model_id == model_id)).all()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            codes = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            index.add(ids, codes)
        return index

    def open_or_rebuild_index(self, dim: int, model_id: int, metric: str = "cosine") -> VectorIndex:
        """The saved index if it holds exactly the model's catalog ids, else a rebuild.

        This is what makes a crash between a catalog commit and an index
        save harmless: the catalog is the truth, the index follows it.
        """
        try:
            index = self.load_index()
            if index.dim == dim and set(index.ids().tolist()) == self.catalog_ids(model_id):
                return index
        except VectorIndexError:
            pass
        return self.rebuild_index(dim, model_id, metric)
