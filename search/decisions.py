"""A reviewer's decisions on duplicate groups, kept in the catalog for every later run.

Decisions name contents (sha256), not paths or ids: they hold when files
move, are re-indexed, or a new model re-encodes the library. Nothing here
touches a file; "keep this one" records the choice (in ``lookalike duplicates
--status reviewed --json``, the groups whose first image is ``"kept"`` list
the other copies for whoever deletes them; dismissed groups have none kept),
and any decision can be undone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .catalog import DecisionContent, DecisionRecord, ImageRecord, utc_text
from .store import Store

NOT_DUPLICATES = "not_duplicates"
KEEP = "keep"
DECISION_KINDS = (NOT_DUPLICATES, KEEP)


class BadDecision(ValueError):
    """A decision that cannot be recorded as asked (the message says why)."""


class UnknownImages(LookupError):
    """Some of the decision's images are not in the catalog."""


@dataclass(frozen=True)
class Decision:
    id: int
    kind: str
    contents: frozenset[str]
    keep_id: int | None
    keep_sha256: str | None
    decided_at: datetime

    def covers(self, contents: frozenset[str]) -> bool:
        """Whether this decision settles a group with these contents.

        A group with any content the reviewer never saw is asked about again.
        "Not duplicates" keeps different contents apart, so the only group it
        can still cover is one of identical files that was itself dismissed.
        """
        if not contents <= self.contents:
            return False
        if self.kind == KEEP:
            return self.keep_sha256 in contents
        return len(self.contents) == 1

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "keep_id": self.keep_id,
                "decided_at": utc_text(self.decided_at)}


def record_decision(store: Store, kind: str, image_ids: Sequence[int],
                    keep_id: int | None = None) -> Decision:
    """Record *kind* over the group of these catalog images and *keep_id*, the one kept."""
    ids = sorted(set(image_ids) | ({keep_id} if keep_id is not None else set()))
    _check(kind, ids, keep_id)
    with store.sessions() as session, session.begin():
        rows = {r.id: r for r in session.scalars(select(ImageRecord)
                                                 .where(ImageRecord.id.in_(ids)))}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise UnknownImages(f"no image with id {', '.join(map(str, missing))} in the catalog")
        record = DecisionRecord(kind=kind, keep_id=keep_id,
                                keep_sha256=rows[keep_id].sha256 if keep_id is not None else None)
        record.contents = [DecisionContent(sha256=s) for s in sorted({r.sha256 for r in
                                                                      rows.values()})]
        session.add(record)
        session.flush()
        return _decision(record)


def _check(kind: str, ids: list[int], keep_id: int | None) -> None:
    if kind not in DECISION_KINDS:
        raise BadDecision(f"unknown decision {kind!r}: one of {', '.join(DECISION_KINDS)}")
    if len(ids) < 2:
        raise BadDecision("a decision is about a group: name at least two different images")
    if kind == KEEP and keep_id is None:
        raise BadDecision("'keep' names the image kept")
    if kind == NOT_DUPLICATES and keep_id is not None:
        raise BadDecision("'not_duplicates' keeps every image: it takes no image to keep")


def list_decisions(store: Store) -> list[Decision]:
    """Every decision, newest first (the newest wins where two cover the same group)."""
    query = (select(DecisionRecord).options(selectinload(DecisionRecord.contents))
             .order_by(DecisionRecord.id.desc()))
    with store.sessions() as session:
        return [_decision(r) for r in session.scalars(query)]


def undo_decision(store: Store, decision_id: int) -> bool:
    """Forget a decision; False when there was none with that id."""
    with store.sessions() as session, session.begin():
        record = session.get(DecisionRecord, decision_id)
        if record is None:
            return False
        session.delete(record)
        return True


def _decision(record: DecisionRecord) -> Decision:
    return Decision(record.id, record.kind, frozenset(c.sha256 for c in record.contents),
                    record.keep_id, record.keep_sha256, record.decided_at)
