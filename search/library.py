"""Browsing the catalog: its images a page at a time, sorted and filtered, its folders,
and what the data dir holds in all (``collect_stats``: images, model, index).

One :class:`Filters` serves the library listing and the search filters, so a
folder or a date range means the same everywhere. A file's date is when the
photo was taken (EXIF, ``ImageRecord.taken_at``), else its mtime; a folder
includes its subfolders.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import defer

from .catalog import ExcludedRecord, ImageRecord, ModelRecord, id_chunks, path_under
from .checkpoints import kept_checkpoint
from .regular_files import is_under, sha256_file
from .store import Store, outermost
from .vector_index import VectorIndexError

SORTS = ("indexed", "date", "error", "name")


def file_date() -> Any:
    """The SQL expression of a file's date, seconds since the epoch."""
    return func.coalesce(ImageRecord.taken_at, ImageRecord.mtime)


SORT_COLUMNS = {"indexed": ImageRecord.indexed_at, "error": ImageRecord.reconstruction_error,
                "name": ImageRecord.path}


@dataclass(frozen=True)
class Filters:
    folder: str | None = None  # a folder's path: its images and those of its subfolders
    date_from: float | None = None  # file dates ≥ this (seconds since the epoch)
    date_to: float | None = None  # file dates < this

    def clauses(self) -> list[Any]:
        found = []
        if self.folder:
            found.append(path_under(ImageRecord.path, self.folder))
        if self.date_from is not None:
            found.append(file_date() >= self.date_from)
        if self.date_to is not None:
            found.append(file_date() < self.date_to)
        return found

    def __bool__(self) -> bool:
        return bool(self.folder) or self.date_from is not None or self.date_to is not None


@dataclass(frozen=True)
class Page:
    total: int  # images passing the filters
    rows: list[ImageRecord]


def list_images(store: Store, filters: Filters = Filters(), sort: str = "indexed",
                descending: bool = True, offset: int = 0, limit: int = 100) -> Page:
    """One page of the catalog's images, sorted (ties by id, so pages never overlap)."""
    column = file_date() if sort == "date" else SORT_COLUMNS[sort]
    order = (column.desc(), ImageRecord.id.desc()) if descending else (column, ImageRecord.id)
    where = filters.clauses()
    with store.sessions() as session:
        total = session.scalar(select(func.count(ImageRecord.id)).where(*where))
        rows = session.scalars(select(ImageRecord).options(defer(ImageRecord.code))
                               .where(*where).order_by(*order).offset(offset).limit(limit)).all()
    return Page(int(total or 0), list(rows))


def matching(store: Store, ids: Sequence[int], filters: Filters) -> set[int]:
    """Those of *ids* whose images pass *filters* (search results are filtered after FAISS)."""
    if not filters:
        return set(ids)
    found: set[int] = set()
    with store.sessions() as session:
        for chunk in id_chunks(ids):
            found |= set(session.scalars(select(ImageRecord.id).where(
                ImageRecord.id.in_(chunk), *filters.clauses())))
    return found


def codes_if_few(store: Store, filters: Filters, most: int) -> list[tuple[int, bytes]] | None:
    """(id, stored code) of the images passing *filters* when at most *most* do; else None,
    found by counting, so a wide filter reads no code at all."""
    where = filters.clauses()
    passing = select(ImageRecord.id).where(*where).limit(most + 1).subquery()
    with store.sessions() as session:
        if session.scalar(select(func.count()).select_from(passing)) > most:
            return None
        return [tuple(r) for r in session.execute(
            select(ImageRecord.id, ImageRecord.code).where(*where))]


def folders(store: Store) -> list[tuple[str, int]]:
    """Every folder with indexed images in it or below it, down from the outermost ones (or
    from the folder all of them share, the one indexed, say), and how many (its subfolders'
    included, as the folder filter counts them); by path."""
    with store.sessions() as session:
        direct = Counter(os.path.dirname(p) for p in session.scalars(select(ImageRecord.path)))
    common = os.path.commonpath(list(direct)) if direct else ""
    if common and os.path.dirname(common) != common:  # one tree: list from its common folder
        direct.setdefault(common, 0)
    roots = outermost(direct)
    total: Counter[str] = Counter()
    for folder, count in direct.items():
        root = next(r for r in roots if is_under(folder, r))
        while True:
            total[folder] += count
            if folder == root:
                break
            folder = os.path.dirname(folder)
    return sorted(total.items())


# -- what the data dir holds: `lookalike stats`, /api/stats ---------------------------------

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
    index_info = store.index_facts()
    if index_info is None:
        try:
            index_info = store.load_index(mmap=True).facts()
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
