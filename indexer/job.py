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

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from search.catalog import ExcludedRecord, ImageRecord, ModelRecord, utcnow
from search.store import Store
from search.vector_index import choose_index_type

from .encoder import TorchEncoder
from .images import Decoded, batched, decode_many, walk_images


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    excluded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
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
            "failed": self.failed,
            "encoded": self.encoded, "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
        }


@dataclass
class _Planned:
    path: str
    size: int
    mtime: float
    sha256: str
    row_id: int | None  # set when an existing row is re-encoded in place


@dataclass
class Plan:
    encode: list[_Planned] = field(default_factory=list)
    moves: list[tuple[int, str, int, float]] = field(default_factory=list)  # id, path, size, mtime
    touch: list[tuple[int, int, float]] = field(default_factory=list)  # id, size, mtime
    remove: list[int] = field(default_factory=list)
    unchanged: int = 0
    excluded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
         progress: bool = False) -> Plan:
    """Compare the folder with the catalog: what to encode, move, touch, remove.

    A file is unchanged when path, size and mtime match; when only the
    metadata moved, the sha256 decides. A new path whose sha256 belongs to
    a row whose file vanished is a move: it keeps its code and id. Any
    other new file with an excluded path or content (an admin deleted that
    image) is skipped.
    """
    prefix = str(root) + os.sep
    rows = {r.path: r for r in session.execute(
        select(ImageRecord.id, ImageRecord.path, ImageRecord.size, ImageRecord.mtime,
               ImageRecord.sha256, ImageRecord.model_id)) if r.path.startswith(prefix)}
    excluded_paths: set[str] = set()
    excluded_hashes: set[str] = set()
    for path, digest in session.execute(select(ExcludedRecord.path, ExcludedRecord.sha256)):
        excluded_paths.add(path)
        excluded_hashes.add(digest)
    result = Plan()
    new: list[_Planned] = []
    seen: set[str] = set()
    for p in tqdm(walk_images(root), desc="scanning", unit="file", disable=not progress):
        path = str(p)
        try:
            st = os.stat(path)
        except OSError as exc:
            result.failures.append((path, f"cannot read file: {exc.strerror or exc}"))
            continue
        seen.add(path)
        row = rows.get(path)
        if row is None and path in excluded_paths:
            result.excluded += 1
            continue
        current = row is not None and row.model_id == model_id and not reencode
        if current and row.size == st.st_size and row.mtime == st.st_mtime:
            result.unchanged += 1
            continue
        try:
            digest = sha256_file(path)
        except OSError as exc:
            result.failures.append((path, f"cannot read file: {exc.strerror or exc}"))
            continue
        if current and row.sha256 == digest:
            result.touch.append((row.id, st.st_size, st.st_mtime))
            result.unchanged += 1
            continue
        item = _Planned(path, st.st_size, st.st_mtime, digest, row.id if row else None)
        (result.encode if row else new).append(item)
    vanished: dict[str, list] = {}
    for path, row in rows.items():
        if path not in seen:
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
    result.remove = [r.id for rs in vanished.values() for r in rs]
    return result


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
) -> IndexSummary:
    """Bring the catalog and the vector index in line with *folder*.

    Every *save_every* seconds (None: never) the index is also saved
    mid-run, so searches see a long run's progress and a killed run does
    not leave the saved index far behind the catalog. *index_type* (auto,
    flat, ivf) becomes the data dir's choice; None keeps the one it has.
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
    with store.sessions() as session:
        work = plan(session, root, model_id, reencode, progress)
    summary.unchanged, summary.failures = work.unchanged, list(work.failures)
    summary.excluded = work.excluded
    summary.moved, summary.removed = len(work.moves), len(work.remove)

    index = store.open_or_rebuild_index(encoder.dim, model_id)
    with store.sessions() as session, session.begin():
        for row_id, path, size, mtime in work.moves:
            row = session.get(ImageRecord, row_id)
            row.path, row.size, row.mtime = path, size, mtime
        for row_id, size, mtime in work.touch:
            row = session.get(ImageRecord, row_id)
            row.size, row.mtime = size, mtime
        if work.remove:
            session.execute(delete(ImageRecord).where(ImageRecord.id.in_(work.remove)))
            store.mark_catalog_changed(session)
    index.remove(work.remove)

    by_path = {item.path: item for item in work.encode}
    bar = tqdm(total=len(work.encode), desc="indexing", unit="img", disable=not progress)
    decoded = decode_many([Path(i.path) for i in work.encode], encoder.image_size, workers)
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
                row = ImageRecord(**fields)
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

