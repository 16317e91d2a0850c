"""The checkpoints a data dir keeps while an index they built still serves.

``lookalike train`` into a data dir replaces ``model.pt``, but the index
holds the codes the previous model made, and only that model's codes
compare with them. So the previous checkpoint is kept under
``DATA_DIR/models/`` (named by the start of its sha256) until a re-encode
with the new one has published its own index (``indexer.job``); then it
goes. Which model built the saved index is ``Store.index_model``.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from sqlalchemy import select

from .catalog import ImageRecord, MetaRecord, ModelRecord
from .files import replace_atomically, unwritable
from .regular_files import sha256_file
from .store import INDEX_MODEL, Store
from .vector_index import VectorIndexError

MODELS_DIR = "models"


def kept_path(store: Store, sha256: str) -> Path:
    """Where the checkpoint *sha256* is kept once a newer one took model.pt's place."""
    return store.data_dir / MODELS_DIR / f"{sha256[:16]}.pt"


def kept_checkpoint(store: Store, current_sha256: str | None) -> Path | None:
    """The kept checkpoint that built the index, while the current model (sha256
    *current_sha256*) is another one waiting for its re-encode; else None.

    The one answer to "which model do searches use" (``indexer.encoding.load_serving``,
    ``lookalike check`` and ``stats``).
    """
    built_by = store.index_model()
    if not built_by or built_by == current_sha256:
        return None
    kept = kept_path(store, built_by)
    return kept if kept.is_file() else None


def keep_current_model(store: Store) -> Path | None:
    """Keep model.pt under models/ if it built the index, so that index can go on serving
    while a new model's re-encode runs; the kept file's path, or None.

    A hard link where the filesystem has them (no copy, and atomic); else a copy. An
    index saved before the store recorded its model is judged by a few of its rows.
    """
    if not store.model_path.is_file():
        return None
    sha = sha256_file(store.model_path)
    if store.index_model() is None and store.index_is_current() and _built_by(store) == {sha}:
        with store.sessions() as session, session.begin():
            session.merge(MetaRecord(key=INDEX_MODEL, value=sha))
    if store.index_model() != sha:
        return None
    target = kept_path(store, sha)
    if target.is_file() and sha256_file(target) == sha:
        return target
    try:
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(f".{target.name}.link")  # search.lock sweeps a stray one
        tmp.unlink(missing_ok=True)
        os.link(store.model_path, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise unwritable(exc, target.parent, existed=False) or exc
        replace_atomically(target, lambda t: shutil.copyfile(store.model_path, t), "ckpt")
    return target


def _built_by(store: Store) -> set[str]:
    try:
        return store.checkpoints_of([int(i) for i in store.load_index().ids()[:8]])
    except VectorIndexError:
        return set()


def prune_kept(store: Store) -> list[Path]:
    """Delete the kept checkpoints that no catalog code and not the index come from."""
    folder = store.data_dir / MODELS_DIR
    if not folder.is_dir():
        return []
    with store.sessions() as s:
        used = set(s.scalars(select(ModelRecord.checkpoint_sha256).join(ImageRecord)
                             .distinct()))
    keep = {sha[:16] for sha in used | {store.index_model() or ""} if sha}
    gone = [p for p in folder.glob("*.pt") if p.stem not in keep]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
