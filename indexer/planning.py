"""What an indexing run will do, decided before it does any of it.

The whole folder is listed and compared with the catalog: which files
are new or changed (to encode), which moved (their rows follow them),
which only had their metadata touched, and which rows lost their file
(to retire). Nothing is written here: ``indexer.job`` carries the plan
out, and a run killed midway is planned afresh by the next one from what
the catalog then holds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from search.catalog import ExcludedRecord, ImageRecord, RetiredRecord, path_under
from search.regular_files import sha256_file

from .images import scan_folder

# Whether a new or changed file has stopped changing: the watcher's (indexer.watch).
Settled = Callable[[str, os.stat_result], bool]


@dataclass(slots=True)  # one per file to encode: 200k of them must stay small
class Planned:
    path: str
    size: int
    mtime: float
    sha256: str
    row_id: int | None  # set when an existing row is re-encoded in place
    reuse_id: int | None = None  # a new file whose content had this id before it was pruned


@dataclass(frozen=True)
class Move:
    """A row whose file moved (same content, another path): it keeps its id and its code."""

    id: int
    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Touch:
    """A row whose file's metadata changed but not its content."""

    id: int
    size: int
    mtime: float


@dataclass(frozen=True)
class Retire:
    """A row whose file is gone: removed, its id kept so the same content can have it back."""

    id: int
    path: str
    sha256: str


@dataclass
class Plan:
    """What a run will do; rows it removes are retired, so their ids can come back."""

    encode: list[Planned] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    touch: list[Touch] = field(default_factory=list)
    retire: list[Retire] = field(default_factory=list)
    unchanged: int = 0
    excluded: int = 0
    kept: int = 0  # rows of missing files kept by the removal guard
    settling: int = 0  # new or changed files still being written (left for a later run)
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def remove(self) -> list[int]:
        return [r.id for r in self.retire]


def plan(session: Session, root: Path, model_id: int, reencode: bool = False,
         progress: bool = False, follow_symlinks: bool = False, prune: bool = False,
         settled: Settled | None = None) -> Plan:
    """Compare the folder with the catalog: what to encode, move, touch, remove.

    A file is unchanged when path, size and mtime match; when only the
    metadata moved, the sha256 decides. A new path whose sha256 belongs to
    a row whose file vanished is a move: it keeps its code and id. Any
    other new file with an excluded path or content (an admin deleted that
    image) is skipped. A file that is there but cannot be read now keeps
    its row: unreadable is not deleted. A new file whose content was pruned
    before gets its old id back. With *settled* (the watcher's), a new or changed file
    that it says is still being written is left for a later run, unread.
    """
    rows = _rows_under(session, root)
    scan = scan_folder(root, follow_symlinks)
    result = Plan(failures=list(scan.skipped))
    excluded_paths, excluded_hashes = _exclusions(session)
    # Unreadable now is not deleted: those rows stay. FIFOs, devices and links out of
    # the folder are not the collection: their rows go like a deleted file's.
    seen = {p for p in scan.unreadable if not p.endswith(os.sep)}
    new: list[Planned] = []
    for path in tqdm(scan.files, desc="scanning", unit="file", disable=not progress):
        seen.add(path)
        row = rows.get(path)
        if row is None and path in excluded_paths:
            result.excluded += 1
            continue
        item = _plan_file(path, row, model_id, reencode, result, settled)
        if item is not None:
            (result.encode if row else new).append(item)
    vanished = _vanished(rows, seen, scan.unreadable)
    for item in new:
        candidates = vanished.get(item.sha256)
        if candidates and candidates[0].model_id == model_id and not reencode:
            row = candidates.pop(0)
            result.moves.append(Move(row.id, item.path, item.size, item.mtime))
        elif item.sha256 in excluded_hashes:  # a copy or rename of a deleted image
            result.excluded += 1
        else:
            result.encode.append(item)
    _plan_removals(result, [r for rs in vanished.values() for r in rs], len(rows), root, prune)
    _reuse_retired_ids(session, result)
    return result


def _rows_under(session: Session, root: Path) -> dict[str, Any]:
    # In SQL, so that indexing one folder of a large catalog reads that folder's rows only.
    return {r.path: r for r in session.execute(
        select(ImageRecord.id, ImageRecord.path, ImageRecord.size, ImageRecord.mtime,
               ImageRecord.sha256, ImageRecord.model_id)
        .where(path_under(ImageRecord.path, str(root))))}


def _vanished(rows: dict[str, Any], seen: set[str], unreadable: list[str]) -> dict[str, list]:
    """The rows whose file is gone, by content; under a folder that cannot be listed, none is."""
    blind = tuple(p for p in unreadable if p.endswith(os.sep))
    vanished: dict[str, list] = {}
    for path, row in rows.items():
        if path not in seen and not (blind and path.startswith(blind)):
            vanished.setdefault(row.sha256, []).append(row)
    return vanished


def _exclusions(session: Session) -> tuple[set[str], set[str]]:
    """The excluded paths, and the excluded contents (sha256)."""
    pairs = session.execute(select(ExcludedRecord.path, ExcludedRecord.sha256)).all()
    return {p for p, _ in pairs}, {d for _, d in pairs}


def _plan_file(path: str, row, model_id: int, reencode: bool, result: Plan,
               settled: Settled | None = None) -> Planned | None:
    """The work for one file found on disk, or None when it needs none (or cannot be read,
    or is still being written)."""
    try:
        st = os.stat(path)
        current = row is not None and row.model_id == model_id and not reencode
        if current and row.size == st.st_size and row.mtime == st.st_mtime:
            result.unchanged += 1
            return None
        if settled is not None and not settled(path, st):
            result.settling += 1
            return None
        digest = sha256_file(path)
    except OSError as exc:
        result.failures.append((path, f"cannot read file: {exc.strerror or exc}"))
        return None
    if current and row.sha256 == digest:
        result.touch.append(Touch(row.id, st.st_size, st.st_mtime))
        result.unchanged += 1
        return None
    return Planned(path, st.st_size, st.st_mtime, digest, row.id if row else None)


def _plan_removals(result: Plan, gone: list, indexed: int, root: Path, prune: bool) -> None:
    """Remove the rows of vanished files, unless so many went that a disk is likely missing.

    An unmounted disk, an unplugged card or a folder being synced looks
    exactly like a collection deleted at once; guessing wrong would throw
    away every code and id (and the links people saved to them). So when
    more than half of a folder's rows (or all of them) would go, they are
    kept and the run says why; ``--prune`` confirms that the files are gone.
    """
    if gone and not prune and (len(gone) == indexed or 2 * len(gone) > indexed):
        result.kept = len(gone)
        result.warnings.append(
            f"{len(gone)} of the {indexed} images indexed under {root} are missing; kept "
            "their rows in case the disk or folder is only unavailable (unmounted, "
            "unplugged, syncing). If the files are really gone, run again with --prune.")
        return
    away = [] if prune else _in_empty_folders(gone, root)
    if away:
        result.kept = len(away)
        result.warnings.append(
            f"{len(away)} missing image(s) under {root} were in folders that are there but "
            "empty, as a disk's mount point is while it is unmounted; kept their rows. If "
            "the files are really gone, run again with --prune.")
        kept = {r.id for r in away}
        gone = [r for r in gone if r.id not in kept]
    result.retire = [Retire(r.id, r.path, r.sha256) for r in gone]


def _in_empty_folders(gone: list, root: Path) -> list:
    """The rows of *gone* whose nearest folder still there (below *root*) is empty."""
    empty: dict[str, bool] = {}

    def nearest_is_empty(folder: str) -> bool:
        while not os.path.isdir(folder) and len(folder) > len(str(root)):
            folder = os.path.dirname(folder)
        if folder not in empty:
            try:
                with os.scandir(folder) as entries:
                    empty[folder] = len(folder) > len(str(root)) and next(entries, None) is None
            except OSError:
                empty[folder] = False
        return empty[folder]

    return [r for r in gone if nearest_is_empty(os.path.dirname(r.path))]


def _reuse_retired_ids(session: Session, work: Plan) -> None:
    """Give a new file the id its content had before it was pruned, so saved links work again."""
    new = [item for item in work.encode if item.row_id is None]
    if not new or session.scalar(select(RetiredRecord.id).limit(1)) is None:
        return
    free: dict[str, list[tuple[int, str]]] = {}
    # Read whole, not with IN (...): a first index of 100k files would pass SQLite's
    # limit on bound variables, and the table only holds what was pruned.
    for row_id, path, digest in session.execute(
            select(RetiredRecord.id, RetiredRecord.path, RetiredRecord.sha256)
            .order_by(RetiredRecord.id)):
        free.setdefault(digest, []).append((row_id, path))
    for exact in (True, False):  # the same path back first (copies share content), then any
        for item in new:
            ids = free.get(item.sha256)
            if item.reuse_id is not None or not ids:
                continue
            pick = next((e for e in ids if e[1] == item.path), None if exact else ids[0])
            if pick is not None:
                ids.remove(pick)
                item.reuse_id = pick[0]
