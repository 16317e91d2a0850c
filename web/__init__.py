"""The Flask front end: a search page and a JSON API.

``create_app`` is the application factory (``flask --app web run`` finds
it); ``lookalike serve`` runs the same app under waitress.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask, Response

from .backend import Backend
from .config import configure
from .errors import register_error_handlers
from .uploads import InMemoryRequest

# The page loads nothing from the network and runs no inline script, so a
# strict policy costs nothing and turns any injected markup inert.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'")
# Images and JSON opened directly in a tab get no scripting at all.
OTHER_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; *test_config* overrides every other setting (tests, ``serve --data-dir``)."""
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False
    configure(app, test_config)

    app.extensions["lookalike"] = Backend(app.config)
    register_error_handlers(app)

    from . import api, images, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(images.bp)
    from . import admin

    app.register_blueprint(admin.bp)  # 403 until LOOKALIKE_ADMIN_TOKEN is set
    from . import anomalies, explore, tools

    for module in (tools, anomalies, explore):  # denoise, compress, outliers, latent space
        app.register_blueprint(module.bp)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    html = response.mimetype == "text/html"
    response.headers.setdefault("Content-Security-Policy", PAGE_POLICY if html else OTHER_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response
