"""The HTML pages and their few static files.

Static files are served from a fixed list rather than Flask's static
route, so even here the request names a key, not a path. Pages render
no data beyond settings and the not-ready message; everything else is
fetched from the JSON API by the page's script.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, redirect, render_template, request, send_file, url_for

from .backend import NotReady, current_backend
from .explore import example_ids
from .schemas import (K_DEFAULT, K_MAX, MAX_NOISE, PER_PAGE_DEFAULT, PER_PAGE_MAX, SAMPLES_MAX,
                      STEPS_MAX, STEPS_MIN, TOP_MAX)

bp = Blueprint("pages", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {
    "app.js": "text/javascript",
    "common.js": "text/javascript",
    "denoise.js": "text/javascript",
    "anomalies.js": "text/javascript",
    "explore.js": "text/javascript",
    "duplicates.js": "text/javascript",
    "trash.js": "text/javascript",
    "map.js": "text/javascript",
    "library.js": "text/javascript",
    "region.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


@bp.get("/")
def index():
    """The library once something is indexed; before, the search page, which says what to
    run. Links saved before the library existed (``/?similar=ID``) still find their search."""
    if "similar" in request.args:
        return redirect(url_for("pages.search", similar=request.args["similar"]))
    if current_backend().readiness() is None:
        return redirect(url_for("pages.library"))
    return search()


@bp.get("/search")
def search():
    """The search page; without a model or index it says what to run instead."""
    message = current_backend().readiness()
    return render_template("index.html", message=message, k_default=K_DEFAULT, k_max=K_MAX)


def _model_kind() -> tuple[str | None, str | None]:
    """(kind of the loaded model, None) or (None, what to run): denoising needs no index."""
    try:
        return current_backend().serving().encoder.kind, None
    except NotReady as exc:
        return None, str(exc)


@bp.get("/denoise")
def denoise():
    """Denoise an upload (optionally noised first) and compress it to a latent code."""
    kind, message = _model_kind()
    return render_template("denoise.html", message=message, kind=kind, max_noise=MAX_NOISE)


@bp.get("/anomalies")
def anomalies():
    """The collection's outliers as a thumbnail grid."""
    return render_template("anomalies.html", message=current_backend().readiness(),
                           top_max=TOP_MAX)


@bp.get("/library")
def library():
    """Every indexed image, to look through, open and search by."""
    return render_template("library.html", message=current_backend().readiness())


@bp.get("/duplicates")
def duplicates():
    """The library's near-duplicate groups, to review a page at a time."""
    return render_template("duplicates.html", message=current_backend().readiness(),
                           per_page=PER_PAGE_DEFAULT, per_page_max=PER_PAGE_MAX)


@bp.get("/map")
def map_page():
    """Every indexed image placed by its code, to pan and zoom through."""
    return render_template("map.html", message=current_backend().readiness())


@bp.get("/trash")
def trash():
    """What was moved to the trash, to restore or to delete for good."""
    return render_template("trash.html", message=None)


@bp.get("/explore")
def explore():
    """Prior samples, interpolation and arithmetic, prefilled with ids from the collection."""
    backend = current_backend()
    message = backend.readiness()
    kind, _ = _model_kind()
    ids = example_ids(backend) if message is None else []
    ids += [""] * (3 - len(ids))
    return render_template("explore.html", message=message, kind=kind, ids=ids,
                           train_vae=backend.command("train --kind vae"),
                           reencode=backend.command("index --reencode"),
                           samples_max=SAMPLES_MAX, steps_min=STEPS_MIN, steps_max=STEPS_MAX,
                           k_max=K_MAX)


@bp.get("/static/<name>")
def static(name: str):
    if name not in ASSETS:
        abort(404)
    return send_file(STATIC_DIR / name, mimetype=ASSETS[name], max_age=300)
