"""``lookalike serve --watch``: the watcher (``indexer.watch``) running beside the app, and
``GET /api/watch``, what it is doing, which the library page shows."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app

from indexer.watch import Watcher, watched_folders

from .answers import WatchAnswer, answer
from .apispec import operation
from .backend import Backend

bp = Blueprint("watching", __name__, url_prefix="/api/watch")

EXTENSION = "lookalike_watch"


def start_watching(app: Flask) -> Watcher:
    """Start keeping *app*'s collection current: each pass encodes with the model the app
    would re-index with, so a new model's re-encode goes on as files arrive."""
    backend: Backend = app.extensions["lookalike"]
    settings = backend.settings
    watcher = Watcher(backend.store, backend.indexing_encoder,
                      watched_folders(backend.store, settings.index_folders),
                      settings.watch_interval, settings.watch_settle, settings.database_url)
    app.extensions[EXTENSION] = watcher
    return watcher.start()


@bp.get("")
@operation(answers={200: (WatchAnswer, "What the watcher is doing, if one runs.")})
def status():
    """Whether the app keeps the collection current by itself (``serve --watch``), and how
    far it got: its state, its last pass and what that changed, files still being written."""
    watcher: Watcher | None = current_app.extensions.get(EXTENSION)
    if watcher is None:
        return answer(WatchAnswer(watching=False))
    return answer(WatchAnswer(watching=True, **watcher.status.as_dict()))
