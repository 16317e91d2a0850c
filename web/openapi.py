"""The OpenAPI 3.1 description of the JSON API, served at ``/api/openapi.json``.

Kept as data next to the views it describes; a test checks that every
route of the app appears here, so the two cannot drift apart silently.
"""
from __future__ import annotations

from typing import Any

from PIL import Image

from indexer.images import SUPPORTED_FORMATS, SUPPORTED_MEDIA

from .params import ID_MAX
from .uploads import K_DEFAULT, K_MAX


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _binary(description: str, media: str) -> dict[str, Any]:
    return {"description": description,
            "content": {media: {"schema": {"type": "string", "contentMediaType": media}}}}


def _image_media_types() -> list[str]:
    """The MIME types of the image types uploads may have (``SUPPORTED_FORMATS``)."""
    Image.init()
    return [Image.MIME[fmt] for fmt in SUPPORTED_FORMATS]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON field that may also be null, which means absent, as an empty form field does."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def _blank(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field that may also be empty, which means absent (a blank input in a form)."""
    return {"anyOf": [schema, {"const": ""}]}


def upload_body(**fields: dict[str, Any]) -> dict[str, Any]:
    """The two forms every image endpoint takes, with the fields beside the image.

    The image must be one of the supported types: anything else is a 415, an empty
    one or one that does not decode a 400 (the part's declared type is not read).
    """
    return {"required": True, "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object", "required": ["image"],
                "properties": {"image": {"type": "string", "minLength": 1,
                                         "contentMediaType": "application/octet-stream"},
                               **{name: _blank(field) for name, field in fields.items()}}},
            "encoding": {"image": {"contentType": ", ".join(_image_media_types())}}},
        "application/json": {"schema": {
            "type": "object", "required": ["image_base64"],
            "properties": {"image_base64": {"type": "string", "format": "byte", "minLength": 1,
                                            "description": "The image in base64 (standard "
                                                           "or URL-safe), or a data: URL."},
                           **{name: _nullable(field) for name, field in fields.items()}}}},
    }}


# Every optional query parameter: an empty value (``?k=``, a blank form field) means absent.
OPTIONAL = {"required": False, "allowEmptyValue": True}
K = {"type": "integer", "minimum": 1, "maximum": K_MAX}
K_PARAM = {
    "name": "k", "in": "query", **OPTIONAL,
    "description": f"How many results, 1 to {K_MAX}.",
    "schema": {**K, "default": K_DEFAULT},
}
# Larger numbers are not ids: a 404 (in a path) or a 400 (in a query), never looked up.
IMAGE_ID = {"type": "integer", "minimum": 0, "maximum": ID_MAX}
ID_PARAM = {"name": "image_id", "in": "path", "required": True,
            "description": "Catalog id of an indexed image.", "schema": IMAGE_ID}
RECON_PARAM = {
    "name": "reconstruction", "in": "query", **OPTIONAL,
    "description": "Include the query's reconstruction and its error (one extra decoder pass).",
    "schema": {"type": "boolean", "default": True},
}
DENOISE_PARAM = {
    "name": "denoise", "in": "query", **OPTIONAL,
    "description": "Search with the model's reconstruction of the query (its denoised "
                   "version, for a --kind dae model); the reconstruction shown is that image.",
    "schema": {"type": "boolean", "default": False},
}

ANOMALOUS = {"type": ["boolean", "null"],
             "description": "reconstruction_error > anomaly_threshold: unlike the collection "
                            "the model was trained on; null when the model has no threshold."}
ANOMALY_THRESHOLD = {"type": ["number", "null"],
                     "description": "The model's held-out percentile of reconstruction error."}
NOT_READY = _error("No model or index yet (or they do not fit); the message says what to run.")
NOT_FOUND = _error("No image with that id, or its file is gone.")

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": [
                    "bad_request", "bad_parameter", "bad_image", "not_found",
                    "method_not_allowed", "too_large", "unsupported_media_type",
                    "not_ready", "internal_error", "bad_code",
                    "unauthorized", "admin_disabled", "busy", "nothing_to_index"]},
                "message": {"type": "string", "description": "For people; may change."},
            }}},
    },
    "ImageLinks": {
        "type": "object",
        "properties": {
            "thumbnail_url": {"type": "string", "format": "uri-reference"},
            "reconstruction_url": {"type": "string", "format": "uri-reference"},
            "original_url": {"type": "string", "format": "uri-reference"},
            "similar_url": {"type": "string", "format": "uri-reference"},
        },
    },
    "Hit": {
        "allOf": [_ref("ImageLinks"), {
            "type": "object", "required": ["id", "name", "path", "similarity"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string", "description": "File name, for display."},
                "path": {"type": "string", "description": "Full path on the server."},
                "similarity": {"type": "number",
                               "description": "Cosine similarity of the codes; higher is closer."},
                "reconstruction_error": {"type": "number"},
            }}],
    },
    "Image": {
        "allOf": [_ref("ImageLinks"), {
            "type": "object", "required": ["id", "name", "path", "sha256"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "path": {"type": "string"},
                "sha256": {"type": "string"},
                "size": {"type": "integer", "description": "Bytes."},
                "mtime": {"type": "number", "description": "Seconds since the epoch."},
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "format": {"type": ["string", "null"]},
                "model_id": {"type": "integer"},
                "reconstruction_error": {
                    "type": "number",
                    "description": "Mean squared error of the reconstruction, pixels in [0, 1]."},
                "indexed_at": {"type": ["string", "null"], "format": "date-time"},
            }}],
    },
    "UploadQuery": {
        "type": "object",
        "properties": {
            "width": {"type": "integer"}, "height": {"type": "integer"},
            "format": {"type": "string"},
            "denoised": {"type": "boolean", "description": "Searched with the reconstruction."},
            "reconstruction": {"type": "string", "description": "data:image/png;base64,... URL."},
            "reconstruction_error": {"type": "number",
                                     "description": "MSE with pixels in [0, 1]."},
            "anomalous": ANOMALOUS,
            "anomaly_threshold": ANOMALY_THRESHOLD,
        },
    },
    "SimilarQuery": {
        "allOf": [_ref("Image"), {
            "type": "object",
            "properties": {"anomalous": ANOMALOUS, "anomaly_threshold": ANOMALY_THRESHOLD}}],
    },
    "SearchResponse": {
        "type": "object", "required": ["query", "k", "results"],
        "properties": {
            "query": _ref("UploadQuery"),
            "k": {"type": "integer"},
            "results": {"type": "array", "items": _ref("Hit")},
        },
    },
    "SimilarResponse": {
        "type": "object", "required": ["query", "k", "results"],
        "properties": {
            "query": _ref("SimilarQuery"),
            "k": {"type": "integer"},
            "results": {"type": "array", "items": _ref("Hit")},
        },
    },
    "Stats": {
        "type": "object",
        "properties": {
            "data_dir": {"type": "string"},
            "images": {"type": "integer"},
            "excluded": {"type": "integer"},
            "model": {"type": ["string", "null"]},
            "model_kind": {"type": ["string", "null"]},
            "encoded_with_model": {"type": "integer"},
            "latent_dim": {"type": ["integer", "null"]},
            "index_type": {"type": ["string", "null"]},
            "index_vectors": {"type": "integer"},
            "index_choice": {"enum": ["auto", "flat", "ivf"]},
            "metric": {"type": ["string", "null"]},
            "generation": {"type": "integer"},
            "ready": {"type": "boolean"},
            "message": {"type": ["string", "null"]},
            "model_sha256": {"type": ["string", "null"]},
        },
    },
    "Health": {
        "type": "object", "required": ["status", "ready"],
        "properties": {"status": {"const": "ok"}, "ready": {"type": "boolean"},
                       "message": {"type": ["string", "null"]}},
    },
}


def openapi_document() -> dict[str, Any]:
    from .openapi_admin import ADMIN_PATHS, ADMIN_SCHEMAS, SECURITY_SCHEMES
    from .openapi_apps import APP_PATHS, APP_SCHEMAS  # imports this module

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lookalike",
            "version": "1",
            "description": "Content-based image retrieval over your own collection. Every error "
                           "is JSON: {\"error\": {\"code\", \"message\"}}.",
        },
        "paths": {
            "/api/search": {"post": {
                "summary": "Find the indexed images most like an uploaded one",
                "description": f"Send {SUPPORTED_MEDIA}. The type is sniffed from the bytes; "
                               "the upload is processed in memory and never stored.",
                "parameters": [K_PARAM, RECON_PARAM, DENOISE_PARAM],
                "requestBody": upload_body(k=K, reconstruction={"type": "boolean"},
                                           denoise={"type": "boolean"}),
                "responses": {
                    "200": _json("Results, best first.", "SearchResponse"),
                    "400": _error("Bad parameter, empty or corrupt image, malformed body."),
                    "413": _error("Body over the upload limit, or too many pixels."),
                    "415": _error("Not a supported image type, or not multipart/JSON."),
                    "503": NOT_READY,
                },
            }},
            "/api/images/{image_id}/similar": {"get": {
                "summary": "Images most like an indexed image (itself excluded)",
                "parameters": [ID_PARAM, K_PARAM],
                "responses": {"200": _json("Results, best first.", "SimilarResponse"),
                              "400": _error("Bad k."), "404": NOT_FOUND, "503": NOT_READY},
            }},
            "/api/images/{image_id}": {"get": {
                "summary": "Catalog metadata of one image",
                "parameters": [ID_PARAM],
                "responses": {"200": _json("The catalog row.", "Image"), "404": NOT_FOUND},
            }},
            "/api/stats": {"get": {
                "summary": "Counts, model and index",
                "responses": {"200": _json("Facts about the data dir.", "Stats")},
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}},
            }},
            "/healthz": {"get": {
                "summary": "Liveness; also says whether searches can run",
                "responses": {"200": _json("Alive.", "Health")},
            }},
            "/images/{image_id}/thumbnail": {"get": {
                "summary": "JPEG thumbnail, at most 256 px",
                "parameters": [ID_PARAM],
                "responses": {"200": _binary("Thumbnail.", "image/jpeg"), "404": NOT_FOUND},
            }},
            "/images/{image_id}/reconstruction": {"get": {
                "summary": "The model's reconstruction from the stored code, PNG",
                "parameters": [ID_PARAM],
                "responses": {"200": _binary("Reconstruction.", "image/png"),
                              "404": NOT_FOUND, "503": NOT_READY},
            }},
            "/images/{image_id}/original": {"get": {
                "summary": "The indexed file as it is on disk",
                "parameters": [ID_PARAM],
                "responses": {"200": {"description": "The file, with its own image type."},
                              "404": NOT_FOUND},
            }},
            **APP_PATHS,
            **ADMIN_PATHS,
        },
        "components": {"schemas": {**SCHEMAS, **APP_SCHEMAS, **ADMIN_SCHEMAS},
                       "securitySchemes": SECURITY_SCHEMES},
    }
