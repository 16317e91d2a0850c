"""Taking an image out of the collection, and the exclusions that keep it out.

Shared by the command line (``lookalike remove``, ``exclusions``) and the
operator's web endpoints (``/api/admin``). Every writer here expects the caller
to hold the data dir's writer lock (``search.lock``), so none of them
interleaves with another writer. No model is needed: a removal drops a row, its
vector and its thumbnail; re-indexing (``indexer.job``) reads the
exclusions.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .catalog import ExcludedRecord, ImageRecord, utc_text, utcnow
from .store import NotFound, Store

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
        at = utc_text(self.excluded_at)
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
    index = store.current_index()
    exclusion = None
    with store.sessions() as session, session.begin():
        session.execute(delete(ImageRecord).where(ImageRecord.id == row.id))
        store.mark_catalog_changed(session)
        if exclude:
            exclusion = _exclude(session, row)
    if index is not None:
        index.remove([row.id])
        store.publish_index(index)
    store.drop_thumbnail(row.sha256)
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
