"""The bulk indexing job: a folder in, catalog rows and FAISS vectors out, incrementally.

Work is planned first (the whole folder is listed and compared with the
catalog), then carried out in batches, each committed in its own
transaction. The catalog, which keeps every raw code, is the truth; the
FAISS index is saved atomically every ``save_every`` seconds and at the
end, and rebuilt from the catalog whenever the two disagree (different
ids, or a catalog version the saved index does not reflect), so a run
killed at any moment loses at most the batch in flight, and the next run
picks up where it stopped. The caller holds the data dir's writer lock
(``indexer.lock``): the job assumes no one else writes meanwhile.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from search.catalog import ExcludedRecord, ImageRecord, ModelRecord, RetiredRecord, utcnow
from search.regular_files import sha256_file
from search.store import Store
from search.vector_index import choose_index_type

from .encoder import TorchEncoder
from .images import Decoded, batched, decode_many, scan_folder


# Meta key: whether this data dir's runs follow symlinks out of the indexed folder.
FOLLOW_SYMLINKS = "follow_symlinks"


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    excluded: int = 0
    kept: int = 0  # rows of missing files the removal guard kept
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def encoded(self) -> int:
        return self.added + self.updated

    @property
    def images_per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "moved": self.moved,
            "removed": self.removed, "unchanged": self.unchanged, "excluded": self.excluded,
            "kept": self.kept, "failed": self.failed,
            "encoded": self.encoded, "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "warnings": list(self.warnings),
        }


@dataclass(slots=True)  # one per file to encode: 200k of them must stay small
class _Planned:
    path: str
    size: int
    mtime: float
    sha256: str
    row_id: int | None  # set when an existing row is re-encoded in place
    reuse_id: int | None = None  # a new file whose content had this id before it was pruned


@dataclass
class Plan:
    """What a run will do; rows it removes are retired, so their ids can come back."""

    encode: list[_Planned] = field(default_factory=list)
    moves: list[tuple[int, str, int, float]] = field(default_factory=list)  # id, path, size, mtime
    touch: list[tuple[int, int, float]] = field(default_factory=list)  # id, size, mtime
    retire: list[tuple[int, str, str]] = field(default_factory=list)  # id, path, sha256
    unchanged: int = 0
    excluded: int = 0
    kept: int = 0  # rows of missing files kept by the removal guard
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def remove(self) -> list[int]:
        return [row_id for row_id, _, _ in self.retire]


def register_model(session: Session, encoder: TorchEncoder) -> ModelRecord:
    """The catalog row for this checkpoint, created on first use."""
    ckpt = encoder.checkpoint
    row = session.scalar(select(ModelRecord).where(ModelRecord.checkpoint_sha256 == ckpt.sha256))
    if row is None:
        cfg = ckpt.model.config
        row = ModelRecord(kind=cfg.kind, config=cfg.to_dict(), checkpoint_path=str(ckpt.path),
                          checkpoint_sha256=ckpt.sha256, latent_dim=cfg.latent_dim)
        session.add(row)
        session.flush()
    return row


def plan(session: Session, root: Path, model_id: int, reencode: bool = False,
         progress: bool = False, follow_symlinks: bool = False, prune: bool = False) -> Plan:
    """Compare the folder with the catalog: what to encode, move, touch, remove.

    A file is unchanged when path, size and mtime match; when only the
    metadata moved, the sha256 decides. A new path whose sha256 belongs to
    a row whose file vanished is a move: it keeps its code and id. Any
    other new file with an excluded path or content (an admin deleted that
    image) is skipped. A file that is there but cannot be read now keeps
    its row: unreadable is not deleted.
    """
    rows = _rows_under(session, root)
    scan = scan_folder(root, follow_symlinks)
    result = Plan(failures=list(scan.skipped))
    excluded_paths, excluded_hashes = _exclusions(session)
    # Unreadable now is not deleted: those rows stay. FIFOs, devices and links out of
    # the folder are not the collection: their rows go like a deleted file's.
    seen = {p for p in scan.unreadable if not p.endswith(os.sep)}
    new: list[_Planned] = []
    for path in tqdm(scan.files, desc="scanning", unit="file", disable=not progress):
        seen.add(path)
        row = rows.get(path)
        if row is None and path in excluded_paths:
            result.excluded += 1
            continue
        item = _plan_file(path, row, model_id, reencode, result)
        if item is not None:
            (result.encode if row else new).append(item)
    blind = tuple(p for p in scan.unreadable if p.endswith(os.sep))
    vanished: dict[str, list] = {}
    for path, row in rows.items():
        if path not in seen and not (blind and path.startswith(blind)):
            vanished.setdefault(row.sha256, []).append(row)
    for item in new:
        candidates = vanished.get(item.sha256)
        if candidates and candidates[0].model_id == model_id and not reencode:
            row = candidates.pop(0)
            result.moves.append((row.id, item.path, item.size, item.mtime))
        elif item.sha256 in excluded_hashes:  # a copy or rename of a deleted image
            result.excluded += 1
        else:
            result.encode.append(item)
    _plan_removals(result, [r for rs in vanished.values() for r in rs], len(rows), root, prune)
    return result


def _rows_under(session: Session, root: Path) -> dict[str, Any]:
    prefix = str(root) + os.sep
    return {r.path: r for r in session.execute(
        select(ImageRecord.id, ImageRecord.path, ImageRecord.size, ImageRecord.mtime,
               ImageRecord.sha256, ImageRecord.model_id)) if r.path.startswith(prefix)}


def _exclusions(session: Session) -> tuple[set[str], set[str]]:
    """The excluded paths, and the excluded contents (sha256)."""
    pairs = session.execute(select(ExcludedRecord.path, ExcludedRecord.sha256)).all()
    return {p for p, _ in pairs}, {d for _, d in pairs}


def _plan_file(path: str, row, model_id: int, reencode: bool, result: Plan) -> _Planned | None:
    """The work for one file found on disk, or None when it needs none (or cannot be read)."""
    try:
        st = os.stat(path)
        current = row is not None and row.model_id == model_id and not reencode
        if current and row.size == st.st_size and row.mtime == st.st_mtime:
            result.unchanged += 1
            return None
        digest = sha256_file(path)
    except OSError as exc:
        result.failures.append((path, f"cannot read file: {exc.strerror or exc}"))
        return None
    if current and row.sha256 == digest:
        result.touch.append((row.id, st.st_size, st.st_mtime))
        result.unchanged += 1
        return None
    return _Planned(path, st.st_size, st.st_mtime, digest, row.id if row else None)


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
    result.retire = [(r.id, r.path, r.sha256) for r in gone]


def index_folder(
    store: Store,
    folder: str | Path,
    encoder: TorchEncoder,
    batch_size: int = 128,
    workers: int | None = None,
    progress: bool = True,
    reencode: bool = False,
    save_every: float | None = 60.0,
    index_type: str | None = None,
    follow_symlinks: bool | None = None,
    prune: bool = False,
) -> IndexSummary:
    """Bring the catalog and the vector index in line with *folder*.

    Every *save_every* seconds (None: never) the index is also saved
    mid-run, so searches see a long run's progress and a killed run does
    not leave the saved index far behind the catalog. *index_type* (auto,
    flat, ivf) becomes the data dir's choice; None keeps the one it has.
    *prune* lets a run remove more than half of the folder's rows.
    *follow_symlinks* is remembered by the data dir like *index_type*, so a
    later run that does not say (an admin re-index) does not drop what
    the links led to.
    """
    started = time.time()
    root = Path(folder).resolve()
    summary = IndexSummary()
    if index_type is not None:
        choose_index_type(0, index_type)  # refuse an unknown type before any work
    with store.sessions() as session, session.begin():
        model_id = register_model(session, encoder).id
        if index_type is not None:
            store.set_index_type(session, index_type)
        if follow_symlinks is not None:
            store.set_meta(session, FOLLOW_SYMLINKS, "1" if follow_symlinks else "0")
    follow_symlinks = store.get_meta(FOLLOW_SYMLINKS, "0") == "1"
    with store.sessions() as session:
        work = plan(session, root, model_id, reencode, progress, follow_symlinks, prune)
        _reuse_retired_ids(session, work)
    summary.unchanged, summary.failures = work.unchanged, list(work.failures)
    summary.excluded, summary.kept, summary.warnings = work.excluded, work.kept, work.warnings
    summary.moved, summary.removed = len(work.moves), len(work.remove)

    index = store.open_or_rebuild_index(encoder.dim, model_id)
    _apply_plan(store, work)
    index.remove(work.remove)

    by_path = {item.path: item for item in work.encode}
    bar = tqdm(total=len(work.encode), desc="indexing", unit="img", disable=not progress)
    decoded = decode_many([i.path for i in work.encode], encoder.image_size, workers)
    last_save = time.monotonic()
    for chunk in batched(decoded, batch_size):
        _store_batch(store, index, encoder, model_id, chunk, by_path, summary)
        bar.update(len(chunk))
        if save_every is not None and time.monotonic() - last_save >= save_every:
            store.publish_index(index)
            last_save = time.monotonic()
    bar.close()
    wanted = choose_index_type(index.ntotal, store.index_type())
    if wanted != index.index_type:  # crossed the size limit, or asked for: rebuild from the catalog
        index = store.rebuild_index(encoder.dim, model_id, index_type=wanted)
    store.publish_index(index)
    summary.seconds = time.time() - started
    return summary


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


def _apply_plan(store: Store, work: Plan) -> None:
    """Moves, metadata touches and removals, in one transaction; removed ids are retired."""
    with store.sessions() as session, session.begin():
        for row_id, path, size, mtime in work.moves:
            row = session.get(ImageRecord, row_id)
            row.path, row.size, row.mtime = path, size, mtime
        for row_id, size, mtime in work.touch:
            row = session.get(ImageRecord, row_id)
            row.size, row.mtime = size, mtime
        removed = work.remove
        if removed:
            session.execute(delete(ImageRecord).where(ImageRecord.id.in_(removed)))
            for row_id, path, digest in work.retire:
                session.merge(RetiredRecord(id=row_id, path=path, sha256=digest))
            store.mark_catalog_changed(session)


def _store_batch(store: Store, index, encoder: TorchEncoder, model_id: int,
                 chunk: list[Decoded], by_path: dict[str, _Planned], summary: IndexSummary) -> None:
    """Encode one batch and commit it; the index follows after the commit."""
    good = [d for d in chunk if d.pixels is not None]
    codes, errors = (encoder.encode_with_error(np.stack([d.pixels for d in good]))
                     if good else (np.zeros((0, encoder.dim), np.float32), np.zeros(0)))
    stale: list[int] = []
    now = utcnow()
    with store.sessions() as session, session.begin():
        for d in chunk:
            if d.pixels is None:
                item = by_path[str(d.path)]
                summary.failures.append((str(d.path), d.error or "unreadable"))
                if item.row_id is not None:  # the file changed into something unreadable
                    session.execute(delete(ImageRecord).where(ImageRecord.id == item.row_id))
                    stale.append(item.row_id)
        rows: list[ImageRecord] = []
        for d, code, err in zip(good, codes, errors):
            item = by_path[str(d.path)]
            fields = dict(path=item.path, sha256=item.sha256, size=item.size, mtime=item.mtime,
                          width=d.width, height=d.height, format=d.format, model_id=model_id,
                          code=code.astype(np.float32).tobytes(), recon_error=float(err),
                          indexed_at=now)
            if item.row_id is None:
                row = ImageRecord(**fields, id=item.reuse_id)
                if item.reuse_id is not None:
                    session.execute(delete(RetiredRecord).where(RetiredRecord.id == item.reuse_id))
                session.add(row)
                summary.added += 1
            else:
                row = session.get(ImageRecord, item.row_id)
                for key, value in fields.items():
                    setattr(row, key, value)
                stale.append(item.row_id)
                summary.updated += 1
            rows.append(row)
        store.mark_catalog_changed(session)
        session.flush()
        ids = np.array([r.id for r in rows], dtype=np.int64)
    index.remove(stale)
    index.add(ids, codes)

