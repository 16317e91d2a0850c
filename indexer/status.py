"""Facts about a data dir, shared by ``lookalike stats`` and the web API."""
from __future__ import annotations

from sqlalchemy import func, select

from search.catalog import ImageRecord, ModelRecord
from search.store import Store
from search.vector_index import VectorIndexError


def collect_stats(store: Store) -> dict:
    with store.sessions() as s:
        images = s.scalar(select(func.count(ImageRecord.id))) or 0
        model = s.scalars(select(ModelRecord).order_by(ModelRecord.id.desc())).first()
    try:
        index = store.load_index(mmap=True)
        index_info = {"index_type": index.kind, "index_vectors": index.ntotal,
                      "metric": index.metric}
    except VectorIndexError:
        index_info = {"index_type": None, "index_vectors": 0, "metric": None}
    return {
        "data_dir": str(store.data_dir),
        "images": images,
        "model": str(store.model_path) if store.model_path.exists() else None,
        "model_kind": model.kind if model else None,
        "latent_dim": model.latent_dim if model else None,
        **index_info,
        "generation": store.generation(),
    }
