"""The collection's product-quantiser codebook, shared with ``lookalike compress``.

PQ codes only decode with the codebook that made them, so the web app uses
the CLI's file, ``DATA_DIR/pq-<first 16 hex of the checkpoint sha256>.faiss``:
a code compressed on one side decompresses on the other. The codebook is
trained once, on first use, from the codes this model stored in the
catalog; later requests load it (and keep it in memory until the file
changes).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from sqlalchemy import select

from search.catalog import ImageRecord

from .backend import Backend, _file_key
from .errors import NotReady

log = logging.getLogger(__name__)

MIN_CODES = 32  # as the CLI: fewer codes than this cannot fill a useful codebook

_lock = threading.Lock()
# path -> (file key when loaded or None when it could not be saved, quantiser)
_loaded: dict[Path, tuple[tuple[int, int, int] | None, object]] = {}


def codebook_path(backend: Backend, sha256: str) -> Path:
    return backend.store.data_dir / f"pq-{sha256[:16]}.faiss"


def load_codebook(backend: Backend, sha256: str):
    """The codebook for this checkpoint if one exists (on disk or only in memory), else None."""
    from indexer.compression import ProductQuantizer

    path = codebook_path(backend, sha256)
    key = _file_key(path)
    cached = _loaded.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    if key is None:
        return None
    with _lock:
        pq = ProductQuantizer.load(path)
        _loaded[path] = (key, pq)
    return pq


def codebook(backend: Backend, engine, model_id: int | None):
    """The codebook for the loaded model, trained from the catalog's codes when there is none.

    Training happens under a lock (two first requests train once) and the
    file is written to a temporary name and renamed, so a reader never
    loads half a codebook.
    """
    from indexer.compression import ProductQuantizer

    sha = engine.encoder.sha256
    found = load_codebook(backend, sha)
    if found is not None:
        return found
    with _lock:
        path = codebook_path(backend, sha)
        cached = _loaded.get(path)
        if cached is not None and cached[0] == _file_key(path):
            return cached[1]
        codes = _stored_codes(backend, model_id)
        if len(codes) < MIN_CODES:
            raise NotReady(f"PQ compression needs a codebook learnt from at least {MIN_CODES} "
                           f"images indexed with this model, and there are {len(codes)}. Run "
                           f"`{backend.command()}` first, or use another dtype.")
        pq = ProductQuantizer.train(np.stack(codes))
        _loaded[path] = (_save(pq, path), pq)
    return pq


def _stored_codes(backend: Backend, model_id: int | None) -> list[np.ndarray]:
    if model_id is None:
        return []
    with backend.store.sessions() as s:
        blobs = s.scalars(select(ImageRecord.code).where(ImageRecord.model_id == model_id))
        return [np.frombuffer(b, np.float32) for b in blobs]


def _save(pq, path: Path) -> tuple[int, int, int] | None:
    """Write atomically; on a read-only data dir keep the codebook in memory only."""
    try:
        pq.save(path)
    except (OSError, RuntimeError) as exc:
        log.warning("cannot save the PQ codebook to %s (%s); keeping it in memory", path, exc)
        return None
    return _file_key(path)
