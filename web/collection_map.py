"""``GET /api/map``: every indexed image's place on the map (``search.map``) and what a
point may be coloured by, for the ``/map`` page.

Columns, not objects: 100,000 images are six arrays of numbers, not 100,000
dictionaries; packed (``?packed=true``, what the page asks for) each column is
the bytes of a little-endian array in base64, which the browser reads straight
into a typed array. The layout is kept in memory between requests and follows
the catalog: a new image is placed without moving the others.
"""
from __future__ import annotations

import base64
import logging
import threading

import numpy as np
from flask import Blueprint, current_app

from search.map import Layout, current_layout, map_facts
from search.store import Store

from .answers import MapAnswer, answer
from .apispec import operation
from .backend import current_backend
from .schemas import NOT_READY, MapParams

bp = Blueprint("map", __name__, url_prefix="/api/map")
log = logging.getLogger(__name__)

EXTENSION = "lookalike_map"


class KeptLayouts:
    """The app's last layout of each method, and the UMAP fit under way, if any. One
    request at a time brings a layout up to date (a lock each: a PCA map does not wait for
    anything); a UMAP fit runs in a thread of its own, and the map is PCA's until it ends."""

    def __init__(self) -> None:
        self.layouts: dict[str, Layout] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()
        self.fitting: threading.Thread | None = None
        # (model, catalog version) whose UMAP fit failed: not tried again until either
        # moves, so a broken install does not fit (and fail) on every look.
        self.failed: set[tuple[str, int]] = set()

    def lock(self, method: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(method, threading.Lock())

    def fit_in_background(self, store: Store, model: str, method: str | None) -> bool:
        """Start the UMAP fit, unless one is under way (True) or it failed for this catalog
        (False). The layout it makes is kept here under what was asked for (*method*, None:
        the default) and saved, when the data dir takes it; the next request takes it."""
        version = store.catalog_version()
        with self.guard:
            if (model, version) in self.failed:
                return False
            if self.fitting is None or not self.fitting.is_alive():
                self.fitting = threading.Thread(
                    target=self._fit, args=(store, model, method, version),
                    name="lookalike-map-fit", daemon=True)
                self.fitting.start()
            return True

    def _fit(self, store: Store, model: str, method: str | None, version: int) -> None:
        try:
            layout = current_layout(store, model, method=method)
        except Exception:  # a thread's error reaches no one else: log it, the map stays PCA's
            log.exception("the map's UMAP fit failed")
            layout = None
        if layout is None or layout.method != "umap":  # UMAP failed: PCA's map it is
            with self.guard:
                self.failed.add((model, version))
            return
        with self.lock(method or ""):
            self.layouts[method or ""] = layout


def fitted_square(xy: np.ndarray) -> np.ndarray:
    """The places moved and scaled, both axes alike, so that their bounding box is centred
    in [-1, 1]² and touches it: a far cluster does not leave the rest of the map small
    and off-centre."""
    if len(xy) == 0:
        return xy
    low, high = xy.min(axis=0), xy.max(axis=0)
    half = float((high - low).max()) / 2 or 1.0
    return ((xy - (low + high) / 2) / half).astype(np.float32)


@bp.get("")
@operation(MapParams, answers={200: (MapAnswer, "Every indexed image's place and facts."),
                               400: "Bad parameter.", 503: NOT_READY})
def points(params: MapParams):
    """Every indexed image placed in 2-D by a projection of its code (fitted once and kept;
    new images are placed without moving the others), with what it may be coloured by.

    ``x`` and ``y`` are scaled into [-1, 1]; ``ids[i]`` lies at ``(x[i], y[i])``. When a
    UMAP layout must be fitted first (a minute at 100,000 images), the fit starts in the
    background and the answer is PCA's, with ``fitting: "umap"``: ask again later.
    """
    serving, _index = current_backend().ready()
    store = serving.engine.store
    model = serving.encoder.sha256
    kept: KeptLayouts = current_app.extensions.setdefault(EXTENSION, KeptLayouts())
    method = None if params.method == "auto" else params.method
    key = method or ""  # the default is kept apart: which it is depends on the library's size
    with kept.lock(key):
        layout = current_layout(store, model, kept.layouts.get(key), method, may_fit=False)
        if layout is not None:
            kept.layouts[key] = layout
    fitting = None
    if layout is None:  # a UMAP fit is needed: PCA's map until it is made
        fitting = "umap" if kept.fit_in_background(store, model, method) else None
        with kept.lock("pca"):
            layout = current_layout(store, model, kept.layouts.get("pca"), "pca")
            kept.layouts["pca"] = layout
    facts = map_facts(store, layout.ids)
    xy = fitted_square(layout.xy)
    columns = {"ids": layout.ids.astype("<i8"), "x": xy[:, 0].astype("<f4"),
               "y": xy[:, 1].astype("<f4"), "folder": facts.folder.astype("<i4"),
               "date": facts.date.astype("<f8"),
               "reconstruction_error": facts.reconstruction_error.astype("<f4")}
    if params.packed:
        shown = {name: base64.b64encode(column.tobytes()).decode("ascii")
                 for name, column in columns.items()}
    else:
        shown = {name: column.tolist() for name, column in columns.items()}
        shown["x"] = np.round(columns["x"].astype(np.float64), 5).tolist()
        shown["y"] = np.round(columns["y"].astype(np.float64), 5).tolist()
        shown["reconstruction_error"] = np.round(
            columns["reconstruction_error"].astype(np.float64), 6).tolist()
    return answer(MapAnswer(method=layout.method, fitting=fitting, count=len(layout.ids),
                            folders=facts.folders, **shown))
