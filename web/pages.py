"""The HTML page and its few static files.

Static files are served from a fixed list rather than Flask's static
route, so even here the request names a key, not a path.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, render_template, send_file

from .backend import current_backend
from .uploads import K_DEFAULT, K_MAX

bp = Blueprint("pages", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


@bp.get("/")
def index():
    """The search page; without a model or index it says what to run instead."""
    backend = current_backend()
    message = backend.readiness()
    return render_template("index.html", message=message, k_default=K_DEFAULT, k_max=K_MAX)


@bp.get("/static/<name>")
def static(name: str):
    if name not in ASSETS:
        abort(404)
    return send_file(STATIC_DIR / name, mimetype=ASSETS[name], max_age=300)
