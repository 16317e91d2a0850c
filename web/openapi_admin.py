"""OpenAPI paths, schemas and security scheme of the operator endpoints (``web.admin``),
merged into ``openapi.openapi_document``.

Kept apart so the read-only API's description stays readable;
``tests/test_web.py`` still checks that every route is documented.
"""
from __future__ import annotations

from typing import Any

from .openapi import ID_PARAM, NOT_FOUND, NOT_READY, OPTIONAL, _error, _json

ADMIN_TAG = "admin"
SECURITY = [{"adminToken": []}]
SECURITY_SCHEMES = {"adminToken": {
    "type": "http", "scheme": "bearer",
    "description": "The operator's LOOKALIKE_ADMIN_TOKEN. Without it configured, every admin "
                   "endpoint answers 403 admin_disabled.",
}}

DISABLED = _error("Admin endpoints are disabled (no LOOKALIKE_ADMIN_TOKEN configured).")
UNAUTHORIZED = _error("Missing or wrong 'Authorization: Bearer <token>'.")
BUSY = _error("Another writer (`lookalike index`, a running re-index job, ...) holds the data "
              "dir's lock; try again when it is done.")

ADMIN_SCHEMAS: dict[str, Any] = {
    "FolderResult": {
        "type": "object", "required": ["folder", "status"],
        "properties": {
            "folder": {"type": "string"},
            "status": {"enum": ["done", "skipped"]},
            "reason": {"type": "string", "description": "Why a folder was skipped."},
            "added": {"type": "integer"}, "updated": {"type": "integer"},
            "moved": {"type": "integer"}, "removed": {"type": "integer"},
            "unchanged": {"type": "integer"}, "failed": {"type": "integer"},
            "excluded": {"type": "integer", "description": "New files skipped: deleted by an "
                                                          "admin (path or content)."},
            "encoded": {"type": "integer"}, "seconds": {"type": "number"},
            "images_per_second": {"type": "number"},
            "failures": {"type": "array", "description": "The first 100 unreadable files.",
                         "items": {"type": "object",
                                   "properties": {"path": {"type": "string"},
                                                  "reason": {"type": "string"}}}},
        },
    },
    "Job": {
        "type": "object", "required": ["id", "status", "folders", "results"],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": ["running", "done", "failed"]},
            "folders": {"type": "array", "items": {"type": "string"}},
            "started_at": {"type": "number", "description": "Seconds since the epoch."},
            "finished_at": {"type": ["number", "null"]},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/FolderResult"}},
            "error": {"type": ["string", "null"]},
            "status_url": {"type": "string", "format": "uri-reference"},
        },
    },
    "Deleted": {
        "type": "object", "required": ["id", "deleted"],
        "properties": {
            "id": {"type": "integer"},
            "path": {"type": "string", "description": "The file, which is left on disk."},
            "deleted": {"const": True},
            "file_deleted": {"const": False},
            "excluded": {"type": "boolean"},
            "exclusion_id": {"type": ["integer", "null"],
                             "description": "Lift it with DELETE /api/admin/exclusions/{id}."},
        },
    },
    "Exclusion": {
        "type": "object", "required": ["id", "path", "sha256"],
        "properties": {
            "id": {"type": "integer"},
            "path": {"type": "string"},
            "sha256": {"type": "string", "description": "New files with this content are "
                                                        "skipped too."},
            "excluded_at": {"type": ["string", "null"], "format": "date-time"},
            "lifted": {"const": True},
        },
    },
    "Exclusions": {
        "type": "object", "required": ["exclusions"],
        "properties": {"exclusions": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/Exclusion"}}},
    },
}

EXCLUSION_ID_PARAM = {"name": "exclusion_id", "in": "path", "required": True,
                      "schema": {"type": "integer", "minimum": 0}}

ADMIN_PATHS: dict[str, Any] = {
    "/api/admin/reindex": {"post": {
        "tags": [ADMIN_TAG], "security": SECURITY,
        "summary": "Re-index the collection in the background",
        "description": "Indexes the folders in LOOKALIKE_INDEX_FOLDERS, or, when none are "
                       "configured, the folders the catalog's files are in, as `lookalike "
                       "index` would. Takes no parameters: no request names a folder. A folder "
                       "that is not there is skipped and its images kept.",
        "responses": {
            "202": _json("Started; poll status_url (also the Location header).", "Job"),
            "401": UNAUTHORIZED, "403": DISABLED, "503": NOT_READY,
            "409": _error("busy: another writer holds the data dir's lock; nothing_to_index: "
                          "no folders are configured and the catalog is empty."),
        },
    }},
    "/api/admin/jobs/{job_id}": {"get": {
        "tags": [ADMIN_TAG], "security": SECURITY,
        "summary": "Status of a re-index job",
        "parameters": [{"name": "job_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": _json("The job so far.", "Job"), "401": UNAUTHORIZED,
                      "403": DISABLED, "404": _error("No such job (kept in memory only).")},
    }},
    "/api/admin/images/{image_id}": {"delete": {
        "tags": [ADMIN_TAG], "security": SECURITY,
        "summary": "Remove an image from the catalog and the index (its file stays on disk)",
        "description": "Also records an exclusion, so that re-indexing skips the file and new "
                       "files with the same content, until it is lifted. With exclude=false "
                       "a later re-index of its folder adds the file back.",
        "parameters": [ID_PARAM, {"name": "exclude", "in": "query", **OPTIONAL,
                                  "schema": {"type": "boolean", "default": True}}],
        "responses": {"200": _json("Removed.", "Deleted"), "401": UNAUTHORIZED,
                      "403": DISABLED, "404": NOT_FOUND, "409": BUSY,
                      "400": _error("exclude is not true or false.")},
    }},
    "/api/admin/exclusions": {"get": {
        "tags": [ADMIN_TAG], "security": SECURITY,
        "summary": "The images re-indexing skips (deleted through this API), newest first",
        "responses": {"200": _json("The exclusions.", "Exclusions"), "401": UNAUTHORIZED,
                      "403": DISABLED},
    }},
    "/api/admin/exclusions/{exclusion_id}": {"delete": {
        "tags": [ADMIN_TAG], "security": SECURITY,
        "summary": "Lift an exclusion: the next re-index adds the file again",
        "parameters": [EXCLUSION_ID_PARAM],
        "responses": {"200": _json("Lifted.", "Exclusion"), "401": UNAUTHORIZED,
                      "403": DISABLED, "404": _error("No exclusion with that id.")},
    }},
}
