"""The bulk indexing job: a folder in, catalog rows and FAISS vectors out, incrementally;
and every folder of the collection again (``reindex_all``).

Work is planned first (``indexer.planning``: the whole folder is listed
and compared with the catalog), then carried out in batches, each
committed in its own transaction. The catalog, which keeps every raw code, is the truth; the
FAISS index is saved atomically every ``save_every`` seconds and at the
end, and rebuilt from the catalog whenever the two disagree (different
ids, or a catalog version the saved index does not reflect), so a run
killed at any moment loses at most the batch in flight, and the next run
picks up where it stopped. The caller holds the data dir's writer lock
(``search.lock``): the job assumes no one else writes meanwhile.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from search.catalog import ImageRecord, ModelRecord, RetiredRecord, path_under, utcnow
from search.checkpoints import prune_kept
from search.store import FOLLOW_SYMLINKS, Store
from search.trash import finish_interrupted
from search.vector_index import VectorIndex, choose_index_type

from .encoding import Encoded, Encoding, LocalEncoding, TorchEncoder
from .planning import Plan, Planned, Settled, plan


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    excluded: int = 0
    kept: int = 0  # rows of missing files the removal guard kept
    settling: int = 0  # files still being written, left for a later run (the watcher's)
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

    @classmethod
    def planned(cls, work: Plan) -> "IndexSummary":
        """What a run settled before encoding anything; the batches add the rest."""
        return cls(moved=len(work.moves), removed=len(work.remove), unchanged=work.unchanged,
                   excluded=work.excluded, kept=work.kept, settling=work.settling,
                   failures=list(work.failures),
                   warnings=work.warnings)

    def as_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "moved": self.moved,
            "removed": self.removed, "unchanged": self.unchanged, "excluded": self.excluded,
            "kept": self.kept, "settling": self.settling, "failed": self.failed,
            "encoded": self.encoded, "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "warnings": list(self.warnings),
        }


def register_model(session: Session, encoder: TorchEncoder) -> ModelRecord:
    """The catalog row for this checkpoint, created on first use."""
    ckpt = encoder.checkpoint
    row = session.scalar(select(ModelRecord).where(ModelRecord.checkpoint_sha256 == ckpt.sha256))
    if row is None:
        cfg = ckpt.model.config
        # How the model came to be and what it can tell apart, for `lookalike stats`, which
        # reads the catalog and never loads a checkpoint (that would import torch).
        told = {k: ckpt.facts[k] for k in ("recipe", "copies") if k in ckpt.facts}
        row = ModelRecord(kind=cfg.kind, config={**cfg.to_dict(), **told},
                          checkpoint_path=str(ckpt.path),
                          checkpoint_sha256=ckpt.sha256, latent_dim=cfg.latent_dim)
        session.add(row)
        session.flush()
    return row


def index_folder(
    store: Store,
    folder: str | Path,
    encoder: TorchEncoder,
    progress: bool = True,
    reencode: bool = False,
    save_every: float | None = 60.0,
    index_choice: str | None = None,
    follow_symlinks: bool | None = None,
    prune: bool = False,
    encoding: Encoding | None = None,
    settled: Settled | None = None,
) -> IndexSummary:
    """Bring the catalog and the vector index in line with *folder*.

    Every *save_every* seconds (None: never) the index is also saved
    mid-run, so searches see a long run's progress and a killed run does
    not leave the saved index far behind the catalog. *index_choice* (auto,
    flat, ivf) becomes the data dir's choice; None keeps the one it has.
    *prune* lets a run remove more than half of the folder's rows.
    *follow_symlinks* is remembered by the data dir like *index_choice*, so a
    later run that does not say (an admin re-index) does not drop what
    the links led to. *encoding* decodes and encodes (``indexer.encoding``; default:
    this machine's processes, one decoding per core, ``LocalEncoding``'s batches).
    *settled* leaves files still being written for a later run (``indexer.watch``).
    """
    started = time.time()
    finish_interrupted(store)  # a trash move a crash cut short: its file decides the way
    root = Path(folder).resolve()
    model_id, follow_symlinks = _remember_choices(store, encoder, root, index_choice,
                                                  follow_symlinks)
    with store.sessions() as session:
        work = plan(session, root, model_id, reencode, progress, follow_symlinks, prune,
                    settled)
    summary = IndexSummary.planned(work)

    saved = store.saved_index_if_current(encoder.dim, model_id)
    index = saved if saved is not None else store.rebuild_index(encoder.dim, model_id)
    version = store.catalog_version()
    _apply_plan(store, work)
    index.remove(work.remove)

    by_path = {item.path: item for item in work.encode}
    bar = tqdm(total=len(work.encode), desc="indexing", unit="img", disable=not progress)
    encoding = encoding or LocalEncoding(encoder)
    last_save = time.monotonic()
    # A new model's codes join its own index, which replaces the one searches use (the
    # previous model's, built by the checkpoint kept under models/) only when the last
    # file is re-encoded: an index of half the collection would answer until then.
    switching = store.index_model() not in (None, encoder.sha256)
    for chunk in encoding([i.path for i in work.encode]):
        _store_batch(store, index, model_id, chunk, by_path, summary)
        bar.update(len(chunk))
        if (save_every is not None and not switching
                and time.monotonic() - last_save >= save_every):
            store.publish_index(index, encoder.sha256)
            last_save = time.monotonic()
    bar.close()
    # A run that changed nothing (the watcher's usual pass) leaves the saved index alone:
    # rewriting it would make every search engine reload it for nothing.
    unchanged = (saved is not None and store.catalog_version() == version
                 and store.index_model() == encoder.sha256
                 and choose_index_type(index.ntotal, store.index_choice()) == index.index_type)
    if not unchanged:
        _publish(store, index, encoder, model_id, root if switching else None, summary)
    summary.seconds = time.time() - started
    return summary


def _publish(store: Store, index: VectorIndex, encoder: TorchEncoder, model_id: int,
             switching_in: Path | None, summary: IndexSummary) -> None:
    """Save the run's index for searches. A new model's (*switching_in*: the run's root)
    waits while images outside the root still have the previous model's codes; images
    of the root it could not re-encode (unreadable, or kept while missing) are left out."""
    wanted = choose_index_type(index.ntotal, store.index_choice())
    if wanted != index.index_type:  # crossed the size limit, or asked for: rebuild from the catalog
        index = store.rebuild_index(encoder.dim, model_id, choice=wanted)
    if switching_in is not None:
        inside, outside = _left_behind(store, model_id, switching_in)
        if outside:
            summary.warnings.append(
                f"{outside} image(s) outside {switching_in} still have the previous model's "
                "codes; searches keep using that model until they are re-encoded too: run "
                "`lookalike reindex`")
            return
        if inside:
            summary.warnings.append(
                f"{inside} image(s) under {switching_in} could not be re-encoded with the new "
                "model (unreadable, or missing) and are left out of searches until they are")
    store.publish_index(index, encoder.sha256)
    prune_kept(store)


def _left_behind(store: Store, model_id: int, root: Path) -> tuple[int, int]:
    """How many catalog images have another model's codes, under *root* and outside it."""
    with store.sessions() as session:
        other = ImageRecord.model_id != model_id
        inside = session.scalar(select(func.count(ImageRecord.id))
                                .where(other, path_under(ImageRecord.path, str(root)))) or 0
        total = session.scalar(select(func.count(ImageRecord.id)).where(other)) or 0
    return inside, total - inside


def finish_switch(store: Store, encoder: TorchEncoder) -> str | None:
    """After a re-index of every root with a new model: let that model's index serve, though
    some images could not be re-encoded (unreadable files). A warning saying how many were
    left out, or None when nothing was waiting (or nothing was re-encoded yet)."""
    if store.index_model() in (None, encoder.sha256):
        return None
    model_id = store.model_id_of(encoder.sha256)
    index = store.rebuild_index(encoder.dim, model_id) if model_id is not None else None
    if index is None or index.ntotal == 0:
        return None
    left = len(store.catalog_ids()) - index.ntotal
    store.publish_index(index, encoder.sha256)
    prune_kept(store)
    return (f"{left} image(s) could not be re-encoded with the new model and are left out of "
            "searches until a re-index can read them" if left else None)


def _remember_choices(store: Store, encoder: TorchEncoder, root: Path,
                      index_choice: str | None, follow_symlinks: bool | None) -> tuple[int, bool]:
    """The model's id, and whether to follow symlinks, after saving what this run chose.

    The data dir keeps a choice until a run says otherwise, so a run that
    does not say (an admin re-index) indexes what the last one did; and
    it keeps the folder as one of its roots, which a re-index covers.
    """
    if index_choice is not None:
        choose_index_type(0, index_choice)  # refuse an unknown type before any work
    with store.sessions() as session, session.begin():
        model_id = register_model(session, encoder).id
        store.add_root(session, str(root))
        if index_choice is not None:
            store.set_index_choice(session, index_choice)
        if follow_symlinks is not None:
            store.set_meta(session, FOLLOW_SYMLINKS, "1" if follow_symlinks else "0")
    return model_id, store.follows_symlinks()


def _apply_plan(store: Store, work: Plan) -> None:
    """Moves, metadata touches and removals, in one transaction; removed ids are retired."""
    with store.sessions() as session, session.begin():
        for move in work.moves:
            row = session.get(ImageRecord, move.id)
            row.path, row.size, row.mtime = move.path, move.size, move.mtime
        for touch in work.touch:
            row = session.get(ImageRecord, touch.id)
            row.size, row.mtime = touch.size, touch.mtime
        removed = work.remove
        if removed:
            session.execute(delete(ImageRecord).where(ImageRecord.id.in_(removed)))
            for gone in work.retire:
                session.merge(RetiredRecord(id=gone.id, path=gone.path, sha256=gone.sha256))
            store.mark_catalog_changed(session)


def _store_batch(store: Store, index: VectorIndex, model_id: int, chunk: list[Encoded],
                 by_path: dict[str, Planned], summary: IndexSummary) -> None:
    """Commit one encoded batch in one transaction; the index follows after the commit (a
    crash between the two is what the catalog version catches: see ``Store``)."""
    good = [e for e in chunk if e.code is not None]
    now = utcnow()
    with store.sessions() as session, session.begin():
        dropped = [_drop_unreadable(session, by_path[e.path], e, summary)
                   for e in chunk if e.code is None]
        rows = [_write_row(session, by_path[e.path], e, model_id, now, summary) for e in good]
        store.mark_catalog_changed(session)
        session.flush()
        ids = np.array([r.id for r in rows], dtype=np.int64)
    # Dropped rows and rewritten ones lose their old vectors; the new codes go in.
    rewritten = [by_path[e.path].row_id for e in good]
    index.remove([i for i in dropped + rewritten if i is not None])
    if good:
        index.add(ids, np.stack([e.code for e in good]))


def _drop_unreadable(session: Session, item: Planned, failed: Encoded,
                     summary: IndexSummary) -> int | None:
    """Count a file that could not be read; a row it had (the file changed into something
    unreadable) is deleted. The id whose vector must go, or None."""
    summary.failures.append((failed.path, failed.error or "unreadable"))
    if item.row_id is None:
        return None
    session.execute(delete(ImageRecord).where(ImageRecord.id == item.row_id))
    return item.row_id


def _write_row(session: Session, item: Planned, e: Encoded, model_id: int, now: datetime,
               summary: IndexSummary) -> ImageRecord:
    """The catalog row of an encoded file: a new one (on a retired id when its content had
    one), or its old row rewritten in place."""
    fields = dict(path=item.path, sha256=item.sha256, size=item.size, mtime=item.mtime,
                  width=e.width, height=e.height, format=e.format, taken_at=e.taken_at,
                  model_id=model_id, code=e.code.tobytes(), reconstruction_error=e.reconstruction_error,
                  indexed_at=now)
    if item.row_id is not None:
        row = session.get(ImageRecord, item.row_id)
        for key, value in fields.items():
            setattr(row, key, value)
        summary.updated += 1
        return row
    if item.reuse_id is not None:
        session.execute(delete(RetiredRecord).where(RetiredRecord.id == item.reuse_id))
    row = ImageRecord(**fields, id=item.reuse_id)
    session.add(row)
    summary.added += 1
    return row


# -- every folder of the collection, as the operator asks it (lookalike reindex, /api/admin) --
# The caller holds the data dir's writer lock, as for one folder. Removing an image and its
# exclusion need no model: they are ``search.exclusions``.

KEEP_FAILURES = 100  # unreadable files listed per folder in a re-index result


def reindex_folders(configured: Iterable[str] | None, store: Store) -> list[str]:
    """The operator's folders (``Settings.index_folders``) when configured, else the folders
    indexed into the data dir (re-indexing one is what ``lookalike index`` on it would do)."""
    return list(configured) if configured else store.roots()


def reindex_folder(store: Store, folder: str, encoder: TorchEncoder,
                   workers: int | None = 0, progress: bool = False,
                   settled: Settled | None = None) -> dict[str, Any]:
    """``lookalike index FOLDER`` for one folder; a missing folder is skipped, not emptied.

    A folder that is not there (an unmounted disk, say) keeps its catalog
    rows: ``index_folder`` would otherwise drop every one of them. The web
    app passes ``workers=0`` (decoding in its own thread): forking decode
    processes out of a threaded server risks copying locks held by other threads.
    """
    if not Path(folder).is_dir():
        return {"folder": folder, "status": "skipped",
                "reason": "not a folder (removed or unmounted?); its images were kept"}
    summary = index_folder(store, folder, encoder, progress=progress, settled=settled,
                           encoding=LocalEncoding(encoder, workers=workers)).as_dict()
    summary["failures"] = summary["failures"][:KEEP_FAILURES]
    return {"folder": folder, "status": "done", **summary}


def reindex_all(store: Store, folders: list[str], encoder: TorchEncoder, workers: int | None = 0,
                progress: bool = False, done: Callable[[dict[str, Any]], None] | None = None,
                settled: Settled | None = None) -> list[dict[str, Any]]:
    """:func:`reindex_folder` for each of *folders* (each result handed to *done* as it
    comes); then, when a new model re-encoded every folder that is there, its index
    serves, though a few files could not be read (a folder away keeps the previous model
    serving until it is back)."""
    results = []
    for folder in folders:
        results.append(reindex_folder(store, folder, encoder, workers, progress, settled))
        if done is not None:
            done(results[-1])
    if all(r["status"] == "done" for r in results):
        warning = finish_switch(store, encoder)
        if warning:
            results[-1]["warnings"].append(warning)
    return results
