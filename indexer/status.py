"""Facts about a data dir, shared by ``lookalike stats`` and the web API."""
from __future__ import annotations

from sqlalchemy import func, select

from search.catalog import ExcludedRecord, ImageRecord, ModelRecord
from search.checkpoints import kept_checkpoint
from search.regular_files import sha256_file
from search.store import Store
from search.vector_index import VectorIndexError


def collect_stats(store: Store) -> dict:
    sha = sha256_file(store.model_path) if store.model_path.exists() else None
    with store.sessions() as s:
        images = s.scalar(select(func.count(ImageRecord.id))) or 0
        excluded = s.scalar(select(func.count(ExcludedRecord.id))) or 0
        # The model file in use, not merely the newest one the catalog has seen.
        model = s.scalar(select(ModelRecord).where(ModelRecord.checkpoint_sha256 == sha))
        encoded = s.scalar(select(func.count(ImageRecord.id))
                           .where(ImageRecord.model_id == (model.id if model else -1))) or 0
    kept = kept_checkpoint(store, sha)
    try:
        index = store.load_index(mmap=True)
        index_info = {"index_type": index.faiss_class, "index_vectors": index.ntotal,
                      "metric": index.metric}
    except VectorIndexError:
        index_info = {"index_type": None, "index_vectors": 0, "metric": None}
    return {
        "data_dir": str(store.data_dir),
        "images": images,
        "excluded": excluded,  # deleted through the admin API; re-indexing skips them
        "model": str(store.model_path) if store.model_path.exists() else None,
        "model_kind": model.kind if model else None,
        "encoded_with_model": encoded,
        "latent_dim": model.latent_dim if model else None,
        # The code's layout: its first copy_dim numbers are what duplicate grouping reads.
        "copy_dim": (model.config.get("copy_dim") or model.latent_dim) if model else None,
        "recipe": _recipe(model.config.get("recipe")) if model else None,
        "copies": model.config.get("copies") if model else None,
        **index_info,
        # The checkpoint file whose codes the index holds, which searches use: model.pt, or
        # the previous model kept while model.pt waits for `lookalike reindex` to re-encode.
        "index_model": str(kept or store.model_path) if sha else None,
        "model_waiting_for_reencode": kept is not None,
        "index_choice": store.index_choice(),  # auto, flat, ivf or ivfpq: `index --index-type`
        "catalog_database": store.sql_engine.dialect.name,
        "generation": store.index_generation(),
    }


def _recipe(recipe: dict | None) -> str | None:
    """The training recipe in a line: its loss, λ and where the term acts."""
    if not recipe:
        return None
    if not recipe.get("invariance"):
        return recipe.get("loss")
    return f"{recipe.get('loss')}; λ = {recipe['invariance']:g} on {recipe.get('acts_on')}"
