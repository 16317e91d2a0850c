"""Choosing the copy to keep by a rule, for every pending duplicate group at once.

A reviewer with hundreds of groups wants one sentence, not hundreds of
clicks: "keep the one with the most pixels", "keep the RAW", "keep the one
in Originals/". A rule orders a group's members; the first is kept. Ties
keep the group's own order (``search.duplicates``: most pixels, then
largest file, then the oldest id), so a plan is the same every time.

Applying a plan records the same ``keep`` decisions a click would
(``search.decisions``); moving the other copies to the trash
(``search.trash``) is the caller's further step.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from sqlalchemy import select

from .catalog import ImageRecord, id_chunks
from .decisions import KEEP, Decision, record_decision
from .duplicates import Group
from .regular_files import is_under
from .store import Store

# Names people use for a format, as Pillow names it (the catalog's ``format``).
# (camera RAW files of every make are one format there: "RAW", indexer.images).
FORMAT_NAMES = {"jpg": "JPEG", "jpeg": "JPEG", "heic": "HEIF", "heif": "HEIF", "tif": "TIFF",
                "tiff": "TIFF", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP",
                "avif": "AVIF", "raw": "RAW"}
RULES = ("pixels", "largest", "oldest", "format=LIST", "folder=PATH")
# Every rule, and nothing else: what KeepRule.parse takes is what the API's document says
# (an ECMAScript pattern there, so no \s and no ".", which differ between the two).
_REST = r"[^\n\r\u2028\u2029]*"
RULE = re.compile(rf" *(pixels|largest|oldest|format=[ ,]*[^ ,\n\r\u2028\u2029]{_REST}"
                  rf"|folder= *[^ \n\r\u2028\u2029]{_REST}) *")
RULE_PATTERN = f"^{RULE.pattern}$"
RULE_HELP = ("pixels (most pixels), largest (largest file), oldest (oldest capture date, else "
             "file date), format=LIST (the first of these formats, e.g. format=raw,heic,png), "
             "folder=PATH (one inside this folder)")


class BadRule(ValueError):
    """A rule that is not one of :data:`RULES`."""


@dataclass(frozen=True)
class Facts:
    """What a rule may look at, of one image."""

    id: int
    path: str
    pixels: int
    size: int
    date: float  # capture time, else the file's time
    format: str  # Pillow's name (JPEG, HEIF, ...), or the file's extension in capitals


@dataclass(frozen=True)
class Keep:
    """What a rule does to one group: *keep* stays, *others* may go."""

    group: Group
    keep: int
    others: tuple[int, ...]

    def as_dict(self) -> dict:
        return {"group": self.group.id, "keep": self.keep, "others": list(self.others)}


@dataclass(frozen=True)
class KeepRule:
    """A parsed rule: its text, and the sort key it puts first."""

    text: str
    key: Callable[[Facts], tuple]

    @classmethod
    def parse(cls, text: str) -> "KeepRule":
        if RULE.fullmatch(text) is None:
            raise BadRule(f"unknown rule {text!r}: one of {RULE_HELP}")
        name, _, arg = text.strip(" ").partition("=")
        arg = arg.strip(" ")
        if name == "pixels":
            return cls(text, lambda f: (-f.pixels,))
        if name == "largest":
            return cls(text, lambda f: (-f.size,))
        if name == "oldest":
            return cls(text, lambda f: (f.date,))
        if name == "format":
            wanted = [w.strip(" ").lower() for w in arg.split(",") if w.strip(" ")]
            return cls(text, lambda f: (_format_rank(f, wanted),))
        folder = os.path.abspath(os.path.expanduser(arg))  # the one rule left: folder=PATH
        return cls(text, lambda f: (not is_under(f.path, folder),))



def _format_rank(facts: Facts, wanted: list[str]) -> int:
    """Where *facts*' format stands in *wanted* (past its end when not there)."""
    extension = os.path.splitext(facts.path)[1].lstrip(".").lower()
    for rank, name in enumerate(wanted):
        if name == extension or FORMAT_NAMES.get(name, name.upper()) == facts.format:
            return rank
    return len(wanted)


def plan_keeps(store: Store, groups: Sequence[Group], rule: KeepRule) -> list[Keep]:
    """For each group, the member *rule* keeps and the others, in the group's order."""
    facts = _facts(store, [m.id for g in groups for m in g.members])
    plans = []
    for group in groups:
        present = [facts[m.id] for m in group.members if m.id in facts]
        if len(present) < 2:
            continue  # a member left the catalog since the groups were made
        # Ties go to the group's own order: the default keeping order of search.duplicates.
        place = {f.id: i for i, f in enumerate(present)}
        keep = min(present, key=lambda f: (*rule.key(f), place[f.id])).id
        plans.append(Keep(group, keep, tuple(f.id for f in present if f.id != keep)))
    return plans


def apply_keeps(store: Store, plans: Sequence[Keep]) -> list[Decision]:
    """Record each plan as the reviewer's ``keep`` decision on its group."""
    return [record_decision(store, KEEP, [plan.keep, *plan.others], plan.keep)
            for plan in plans]


def _facts(store: Store, ids: list[int]) -> dict[int, Facts]:
    found: dict[int, Facts] = {}
    with store.sessions() as session:
        for chunk in id_chunks(ids):
            for r in session.execute(
                    select(ImageRecord.id, ImageRecord.path, ImageRecord.width,
                           ImageRecord.height, ImageRecord.size, ImageRecord.taken_at,
                           ImageRecord.mtime, ImageRecord.format)
                    .where(ImageRecord.id.in_(chunk))):
                extension = os.path.splitext(r.path)[1].lstrip(".").upper()
                found[r.id] = Facts(r.id, r.path, (r.width or 0) * (r.height or 0), r.size or 0,
                                    r.taken_at if r.taken_at is not None else r.mtime,
                                    (r.format or extension).upper())
    return found
