"""Re-indexing every folder of the collection, as the operator asks it (``lookalike
reindex``, ``/api/admin/reindex``).

The caller holds the data dir's writer lock (``search.lock``), as ``lookalike
index`` does. Removing an image and its exclusion need no model: they are
``search.exclusions``. Consistency checks and repairs are ``indexer.check``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from search.store import Store

from .encoding import TorchEncoder
from .job import finish_switch, index_folder

KEEP_FAILURES = 100  # unreadable files listed per folder in a re-index result


def reindex_folders(configured: Iterable[str] | None, store: Store) -> list[str]:
    """The operator's folders (``Settings.index_folders``) when configured, else the folders
    indexed into the data dir (re-indexing one is what ``lookalike index`` on it would do)."""
    return list(configured) if configured else store.roots()


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
