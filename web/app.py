"""The Flask app: its factory, the blueprints it serves, and its OpenAPI document.

``create_app`` is the application factory (``flask --app web.app run`` finds
it); ``lookalike serve`` runs the same app under waitress. It lives in a module of
its own, not in ``web/__init__``, so that the command line (``web.cli``) starts
without Flask for every command that serves nothing.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from search.settings import Settings

from . import (admin, anomalies, api, apispec, collection_map, duplicates, explore, images,
               library, pages, security, tools, trash, watching)
from .backend import Backend
from .errors import register_error_handlers
from .uploads import InMemoryRequest


def create_app(test_config: Mapping[str, Any] | None = None,
               settings: Settings | None = None) -> Flask:
    """Build the app; *test_config* overrides every other setting (tests, ``serve --data-dir``).

    *settings*, when given, are used as they are (``lookalike serve`` passes
    the command line's, so both resolve paths once and the same way).
    """
    settings = settings or Settings.load(test_config)
    app = Flask(__name__, instance_path=str(settings.instance_path), static_folder=None)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False
    # "/api/images/0//similar" (an id "0/", escaped) would get Werkzeug's HTML redirect;
    # a path that is not a route is a JSON 404 like any other.
    app.url_map.merge_slashes = False
    # Flask's own keys; ours are read from the settings object (``current_settings``).
    app.config.from_mapping(settings.flask)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length

    app.extensions["lookalike"] = Backend(settings)
    register_error_handlers(app)
    security.install(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)  # admin: 403 until LOOKALIKE_ADMIN_TOKEN is set
    return app


BLUEPRINTS = (pages, api, images, library, admin, tools, anomalies, duplicates, trash, watching,
              collection_map, explore)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the app serves at ``/api/openapi.json``, without a data dir."""
    app = Flask(__name__)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    return apispec.openapi_document(app)
