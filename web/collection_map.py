"""``GET /api/map``: every indexed image's place on the map (``search.map``) and what a
point may be coloured by, for the ``/map`` page.

Columns, not objects: 100,000 images are three arrays of numbers (about
4 MB of JSON, gzip-friendly), not 100,000 dictionaries. The layout is kept
in memory between requests and follows the catalog: a new image is placed
by the fitted transform, without moving the others.
"""
from __future__ import annotations

import threading

import numpy as np
from flask import Blueprint, current_app

from search.map import Layout, current_layout, map_facts

from .answers import MapAnswer, answer
from .apispec import operation
from .backend import current_backend
from .schemas import NOT_READY

bp = Blueprint("map", __name__, url_prefix="/api/map")

EXTENSION = "lookalike_map"


class KeptLayout:
    """The app's last layout; one request at a time brings it up to date."""

    def __init__(self) -> None:
        self.layout: Layout | None = None
        self.lock = threading.Lock()


@bp.get("")
@operation(answers={200: (MapAnswer, "Every indexed image's place and facts."),
                    503: NOT_READY})
def points():
    """Every indexed image placed in 2-D by a projection of its code (PCA, fitted once and
    kept; new images are placed by the same transform), with what it may be coloured by.

    ``x`` and ``y`` are scaled into [-1, 1]; ``ids[i]`` lies at ``(x[i], y[i])``.
    """
    serving, _index = current_backend().ready()
    store = serving.engine.store
    kept: KeptLayout = current_app.extensions.setdefault(EXTENSION, KeptLayout())
    with kept.lock:
        kept.layout = current_layout(store, serving.encoder.sha256, kept.layout)
        layout = kept.layout
    facts = map_facts(store, layout.ids)
    scale = float(np.abs(layout.xy).max()) if len(layout.xy) else 1.0
    xy = layout.xy / (scale or 1.0)
    return answer(MapAnswer(
        method=layout.method, count=len(layout.ids), ids=layout.ids.tolist(),
        x=np.round(xy[:, 0], 5).tolist(), y=np.round(xy[:, 1], 5).tolist(),
        folders=facts.folders, folder=facts.folder.tolist(), date=facts.date.tolist(),
        reconstruction_error=np.round(facts.reconstruction_error, 6).tolist()))
