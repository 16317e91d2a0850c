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
import threading

import numpy as np
from flask import Blueprint, current_app

from search.map import Layout, current_layout, map_facts

from .answers import MapAnswer, answer
from .apispec import operation
from .backend import current_backend
from .schemas import NOT_READY, MapParams

bp = Blueprint("map", __name__, url_prefix="/api/map")

EXTENSION = "lookalike_map"


class KeptLayouts:
    """The app's last layout of each method; one request at a time brings one up to date
    (a lock each: a PCA map does not wait for a UMAP fit)."""

    def __init__(self) -> None:
        self.layouts: dict[str, Layout] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()

    def lock(self, method: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(method, threading.Lock())


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

    ``x`` and ``y`` are scaled into [-1, 1]; ``ids[i]`` lies at ``(x[i], y[i])``.
    """
    serving, _index = current_backend().ready()
    store = serving.engine.store
    kept: KeptLayouts = current_app.extensions.setdefault(EXTENSION, KeptLayouts())
    method = None if params.method == "auto" else params.method
    with kept.lock(method or ""):
        before = kept.layouts.get(method or "")
        layout = current_layout(store, serving.encoder.sha256, before, method)
        kept.layouts[method or ""] = layout
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
    return answer(MapAnswer(method=layout.method, count=len(layout.ids),
                            folders=facts.folders, **shown))
