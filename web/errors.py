"""One JSON error shape for every machine-facing endpoint.

Clients of ``/api``, ``/images`` and ``/healthz`` always get
``{"error": {"code": ..., "message": ...}}`` with a stable ``code`` to
branch on, including for errors Werkzeug raises before our views run
(404 routes, 405 methods, 413 bodies). The HTML page keeps Flask's pages.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from search.database import storage_error
from search.files import DiskFullError, ReadOnlyError
from search.store import NotFound

from .answers import Error, ErrorDetail, answer
from .backend import NotReady, current_settings

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/images/")
JSON_PATHS = ("/api", "/healthz")

# Stable codes for HTTP errors that do not come with a more specific one.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "not_ready",
}
# A write the data dir cannot take: no room (507 Insufficient Storage, RFC 4918), or a
# read-only data dir (503: this server cannot write now; reading still works).
STORAGE_ANSWERS = {DiskFullError: (507, "disk_full"), ReadOnlyError: (503, "read_only")}


class ApiError(Exception):
    """Raised by views and helpers; becomes a JSON error response."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """The only place a JSON error body is built (a code the document does not list is
    refused there, and answered as a 500)."""
    return answer(Error(error=ErrorDetail(code=code, message=message)), status)


def wants_json() -> bool:
    path = request.path
    return path in JSON_PATHS or path.startswith(JSON_PREFIXES)


def _handle_api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message)


def _handle_not_ready(exc: NotReady):
    return error_response(503, "not_ready", str(exc))


def _handle_not_found(exc: NotFound):
    return error_response(404, "not_found", str(exc))


def _handle_storage(exc: OSError):
    status, code = next(a for kind, a in STORAGE_ANSWERS.items() if isinstance(exc, kind))
    return error_response(status, code, str(exc))


def _handle_database(exc: OperationalError):
    known = storage_error(exc, current_settings().database_url)
    return _handle_storage(known) if known is not None else _handle_unexpected(exc)


def _handle_http(exc: HTTPException):
    if not wants_json():
        return exc
    status = exc.code or 500
    response, status = error_response(status, HTTP_CODES.get(status, "http_error"),
                                      exc.description or exc.name)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response, status


def _handle_unexpected(exc: Exception):
    """Unexpected errors are logged in full and answered without internals."""
    if isinstance(exc, HTTPException):
        return _handle_http(exc)
    log.exception("unhandled error on %s %s", request.method, request.path)
    if not wants_json():
        return InternalServerError()
    return error_response(500, "internal_error", "internal server error; see the server log")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(NotReady, _handle_not_ready)
    app.register_error_handler(NotFound, _handle_not_found)
    for kind in STORAGE_ANSWERS:
        app.register_error_handler(kind, _handle_storage)
    app.register_error_handler(OperationalError, _handle_database)
    for status in (404, 405, 413):
        app.register_error_handler(status, _handle_http)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_unexpected)
