"""Keeping a collection: removing an image, the exclusions that keep it out, re-indexing.

Shared by the command line (``lookalike remove``, ``exclusions``, ``reindex``)
and the operator's web endpoints (``/api/admin``). Every writer here expects
the caller to hold the data dir's writer lock (``indexer.lock``), as
``lookalike index`` does, so none of them interleaves with another writer.
Consistency checks and repairs are ``indexer.check``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from search.catalog import ExcludedRecord, ImageRecord, utcnow
from search.store import NotFound, Store
from search.vector_index import VectorIndex, VectorIndexError

from .encoder import TorchEncoder
from .job import finish_switch, index_folder

log = logging.getLogger(__name__)

KEEP_FAILURES = 100  # unreadable files listed per folder in a re-index result


@dataclass(frozen=True)
class Removal:
    """What removing one image did; its file is never touched."""

    id: int
    path: str
    exclusion_id: int | None


@dataclass(frozen=True)
class Exclusion:
    """A path and a content hash that re-indexing skips."""

    id: int
    path: str
    sha256: str
    excluded_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        at = self.excluded_at.replace(tzinfo=timezone.utc).isoformat() if self.excluded_at else None
        return {"id": self.id, "path": self.path, "sha256": self.sha256, "excluded_at": at}

    @classmethod
    def of(cls, record: ExcludedRecord) -> "Exclusion":
        return cls(record.id, record.path, record.sha256, record.excluded_at)


def remove_image(store: Store, image_id: int, exclude: bool = True) -> Removal:
    """Delete one image's catalog row, then its vector from the saved index; NotFound if none.

    The catalog commit comes first and bumps the catalog version, as the
    indexer's do: if the process dies before the index is saved, the next
    writer sees the versions apart and rebuilds the index from the catalog.
    Running searches are not touched: saving bumps the index generation and
    each reloads on its next query. With *exclude*, the same commit records
    an exclusion, so re-indexing skips the file and new files with its content.
    """
    row = store.record(image_id)
    index = _current_index(store)
    exclusion = None
    with store.sessions() as session, session.begin():
        session.execute(delete(ImageRecord).where(ImageRecord.id == row.id))
        store.mark_catalog_changed(session)
        if exclude:
            exclusion = _exclude(session, row)
    if index is not None:
        index.remove([row.id])
        store.publish_index(index)
    _drop_thumbnail(store, row.sha256)
    return Removal(row.id, row.path, exclusion)


def _exclude(session: Session, row: ImageRecord) -> int:
    """Record (or refresh) the exclusion of *row*'s path and content; its id."""
    record = session.scalar(select(ExcludedRecord).where(ExcludedRecord.path == row.path))
    if record is None:
        record = ExcludedRecord(path=row.path, sha256=row.sha256)
        session.add(record)
    else:
        record.sha256, record.excluded_at = row.sha256, utcnow()
    session.flush()
    return record.id


def list_exclusions(store: Store) -> list[Exclusion]:
    """What re-indexing skips, newest first."""
    with store.sessions() as session:
        rows = session.scalars(select(ExcludedRecord).order_by(ExcludedRecord.id.desc()))
        return [Exclusion.of(r) for r in rows]


def lift_exclusion(store: Store, exclusion_id: int) -> Exclusion:
    """Let re-indexing add the file (and its content) again; NotFound if there is no such one."""
    with store.sessions() as session, session.begin():
        record = session.get(ExcludedRecord, exclusion_id)
        if record is None:
            raise NotFound(f"no exclusion with id {exclusion_id}")
        lifted = Exclusion.of(record)
        session.delete(record)
    return lifted


def _current_index(store: Store) -> VectorIndex | None:
    """A private copy of the saved index when it reflects the catalog, else None.

    A stale or missing index is left for the next ``lookalike index`` to
    rebuild; meanwhile searches skip ids the catalog no longer has.
    """
    if not store.index_is_current():
        return None
    try:
        return store.load_index()
    except VectorIndexError:
        return None


def _drop_thumbnail(store: Store, sha256: str) -> None:
    """Remove the cached thumbnail unless another catalog file has the same bytes."""
    with store.sessions() as session:
        shared = session.scalar(select(exists().where(ImageRecord.sha256 == sha256)))
    path = None if shared else store.thumbnail_path(sha256)
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a cache file: unreachable without its catalog row anyway
            log.warning("could not remove the cached thumbnail %s", path)


def reindex_folders(configured: str | Iterable[str] | None, store: Store) -> list[str]:
    """The operator's folders when configured, else the folders indexed into the data dir
    (re-indexing one is what ``lookalike index`` on it would do)."""
    if isinstance(configured, str):
        configured = configured.split(os.pathsep)
    if configured:
        return [str(Path(p)) for p in configured if str(p)]
    return store.roots()


def reindex_folder(store: Store, folder: str, encoder: TorchEncoder,
                   workers: int | None = 0, progress: bool = False) -> dict[str, Any]:
    """``lookalike index FOLDER`` for one folder; a missing folder is skipped, not emptied.

    A folder that is not there (an unmounted disk, say) keeps its catalog
    rows: ``index_folder`` would otherwise drop every one of them. The web
    app passes ``workers=0`` (decoding in its own thread): forking decode
    processes out of a threaded server risks copying locks held by other threads.
    """
    if not Path(folder).is_dir():
        return {"folder": folder, "status": "skipped",
                "reason": "not a folder (removed or unmounted?); its images were kept"}
    summary = index_folder(store, folder, encoder, workers=workers, progress=progress).as_dict()
    summary["failures"] = summary["failures"][:KEEP_FAILURES]
    return {"folder": folder, "status": "done", **summary}


def reindex_all(store: Store, folders: list[str], encoder: TorchEncoder, workers: int | None = 0,
                progress: bool = False, done: Callable[[dict[str, Any]], None] | None = None
                ) -> list[dict[str, Any]]:
    """:func:`reindex_folder` for each of *folders* (each result handed to *done* as it
    comes); then, when a new model re-encoded every folder that is there, its index
    serves, though a few files could not be read (a folder away keeps the previous model
    serving until it is back)."""
    results = []
    for folder in folders:
        results.append(reindex_folder(store, folder, encoder, workers, progress))
        if done is not None:
            done(results[-1])
    if all(r["status"] == "done" for r in results):
        warning = finish_switch(store, encoder)
        if warning:
            results[-1]["warnings"].append(warning)
    return results
