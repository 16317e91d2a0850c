"""OpenAPI paths and schemas of the model-as-a-tool endpoints (denoise, compress,
anomalies, explore), merged into ``openapi.openapi_document``.

Kept apart from the search API's description so each file stays readable;
``tests/test_web.py`` still checks that every route is documented.
"""
from __future__ import annotations

from typing import Any

from .anomalies import TOP_MAX
from .explore import ARITHMETIC_K, SAMPLES_MAX, STEPS_MAX, STEPS_MIN
from .openapi import (IMAGE_ID, NOT_FOUND, NOT_READY, OPTIONAL, _binary, _error, _json, _ref,
                      upload_body)
from .params import SEED_MAX
from .tools import MAX_NOISE
from indexer.images import SUPPORTED_MEDIA

from .uploads import K_MAX

# indexer.compression.DTYPES (a test checks), without importing FAISS to describe it
DTYPES = ["float32", "float16", "uint8", "pq"]


def _query(name: str, description: str, schema: dict[str, Any],
           required: bool = False) -> dict[str, Any]:
    presence = {"required": True} if required else OPTIONAL
    return {"name": name, "in": "query", **presence, "description": description,
            "schema": schema}


UPLOAD_ERRORS = {
    "400": _error("Bad parameter, empty or corrupt image, malformed body."),
    "413": _error("Body over the upload limit, or too many pixels."),
    "415": _error("Not a supported image type, or not multipart/JSON."),
    "503": NOT_READY,
}
NOTE = {"type": ["string", "null"],
        "description": "Set when the model is not the kind the feature is made for."}
DATA_URL = {"type": "string", "description": "data:image/png;base64,... URL."}
SEED = {"type": "integer", "minimum": 0, "maximum": SEED_MAX}
NOISE = {"type": "number", "minimum": 0, "maximum": MAX_NOISE, "default": 0}
A_PARAM = _query("a", "Catalog id of an indexed image.", IMAGE_ID, True)
B_PARAM = _query("b", "Catalog id of an indexed image.", IMAGE_ID, True)
C_PARAM = _query("c", "Catalog id of an indexed image.", IMAGE_ID, True)

APP_SCHEMAS: dict[str, Any] = {
    "ImageRef": {
        "allOf": [_ref("ImageLinks"), {
            "type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}],
    },
    "DenoiseResponse": {
        "type": "object", "required": ["model_kind", "noisy", "denoised"],
        "properties": {
            "model_kind": {"type": "string"}, "note": NOTE,
            "image_size": {"type": "integer"},
            "width": {"type": "integer"}, "height": {"type": "integer"},
            "format": {"type": "string"},
            "add_noise": {"type": "number"},
            "seed": {"type": ["integer", "null"], "description": "Of the added noise."},
            "clean": {"type": ["string", "null"],
                      "description": "The upload at the model's size (when noise was added)."},
            "noisy": {**DATA_URL, "description": "What the model was given."},
            "denoised": DATA_URL,
            "psnr": {"type": ["object", "null"],
                     "description": "dB against the clean upload, when noise was added; a "
                                    "null value means identical images.",
                     "properties": {"noisy": {"type": ["number", "null"]},
                                    "denoised": {"type": ["number", "null"]}}},
        },
    },
    "CompressResponse": {
        "type": "object", "required": ["dtype", "code_base64", "bytes", "ratio", "decoded"],
        "properties": {
            "dtype": {"enum": DTYPES}, "model_kind": {"type": "string"},
            "latent_dim": {"type": "integer"}, "image_size": {"type": "integer"},
            "width": {"type": "integer"}, "height": {"type": "integer"},
            "format": {"type": "string"},
            "code_base64": {"type": "string",
                            "description": "The code file (the CLI's .lkc format)."},
            "bytes": {"type": "object", "properties": {
                "code": {"type": "integer"}, "upload": {"type": "integer"},
                "png": {"type": "integer",
                        "description": "A PNG of the image at the model's input size."}}},
            "ratio": {"type": "object", "properties": {
                "upload": {"type": "number"}, "png": {"type": "number"}}},
            "psnr": {"type": ["number", "null"],
                     "description": "dB, decoded code against the resized upload; null "
                                    "when identical."},
            "decoded": DATA_URL,
        },
    },
    "Outlier": {
        "allOf": [_ref("ImageLinks"), {
            "type": "object", "required": ["id", "name", "reconstruction_error"],
            "properties": {
                "id": {"type": "integer"}, "name": {"type": "string"},
                "path": {"type": "string"},
                "reconstruction_error": {"type": "number"},
                "anomalous": {"type": ["boolean", "null"],
                              "description": "Above the model's own threshold."}}}],
    },
    "AnomaliesResponse": {
        "type": "object", "required": ["anomalies", "total"],
        "properties": {
            "threshold": {"type": ["number", "null"], "description": "The one applied."},
            "model_threshold": {"type": ["number", "null"]},
            "top": {"type": ["integer", "null"]},
            "total": {"type": "integer",
                      "description": "Images passing the threshold (all, without one)."},
            "anomalies": {"type": "array", "items": _ref("Outlier")},
        },
    },
    "SampleResponse": {
        "type": "object", "required": ["images", "seed"],
        "properties": {"model_kind": {"type": "string"}, "note": NOTE,
                       "n": {"type": "integer"}, "seed": {"type": "integer"},
                       "images": {"type": "array", "items": DATA_URL}},
    },
    "InterpolateResponse": {
        "type": "object", "required": ["a", "b", "images"],
        "properties": {"model_kind": {"type": "string"}, "note": NOTE,
                       "a": _ref("ImageRef"), "b": _ref("ImageRef"),
                       "steps": {"type": "integer"},
                       "images": {"type": "array", "items": DATA_URL,
                                  "description": "From a to b, both ends included."}},
    },
    "ArithmeticResponse": {
        "type": "object", "required": ["result", "results"],
        "properties": {"model_kind": {"type": "string"}, "note": NOTE,
                       "a": _ref("ImageRef"), "b": _ref("ImageRef"), "c": _ref("ImageRef"),
                       "result": {**DATA_URL, "description": "a − b + c, decoded."},
                       "k": {"type": "integer"},
                       "results": {"type": "array", "items": _ref("Hit")}},
    },
}

PNG_HEADERS = {"X-Lookalike-Model-Kind": {"schema": {"type": "string"}},
               "X-Lookalike-Note": {"schema": {"type": "string"},
                                    "description": "Present when the model is not a dae."}}

APP_PATHS: dict[str, Any] = {
    "/api/denoise": {"post": {
        "summary": "The model's denoised version of an uploaded image",
        "description": f"Send {SUPPORTED_MEDIA}, as for /api/search. Works with any model; "
                       "best with one trained with --kind dae.",
        "parameters": [
            _query("add_noise", "Add Gaussian noise of this σ (pixels in [0, 1]) first.",
                   NOISE),
            _query("seed", "Seed of the added noise (random when absent).", SEED),
            _query("format", "png: the image; json: data URLs and PSNR.",
                   {"enum": ["png", "json"], "default": "png"}),
        ],
        "requestBody": upload_body(add_noise=NOISE, seed=SEED,
                                   format={"enum": ["png", "json"]}),
        "responses": {
            "200": {"description": "The denoised image at the model's input size.",
                    "headers": PNG_HEADERS,
                    "content": {"image/png": {"schema": {"type": "string",
                                                         "contentMediaType": "image/png"}},
                                "application/json": {"schema": _ref("DenoiseResponse")}}},
            **UPLOAD_ERRORS,
        },
    }},
    "/api/compress": {"post": {
        "summary": "An uploaded image as a latent code file, with sizes and PSNR",
        "parameters": [_query("dtype", "How the code is stored; pq needs at least 32 indexed "
                              "images for its codebook.",
                              {"enum": DTYPES, "default": "float16"})],
        "requestBody": upload_body(dtype={"enum": DTYPES}),
        "responses": {"200": _json("The code and what it costs.", "CompressResponse"),
                      **UPLOAD_ERRORS},
    }},
    "/api/decompress": {"post": {
        "summary": "A code file back to a PNG",
        "requestBody": {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "minLength": 1,
                                                    "contentMediaType":
                                                        "application/octet-stream"}},
            "application/json": {"schema": {
                "type": "object", "required": ["code_base64"],
                "properties": {"code_base64": {"type": "string", "minLength": 1,
                                               "description": "The code file, base64."}}}},
        }},
        "responses": {
            "200": _binary("The decoded image at the model's input size.", "image/png"),
            "400": _error("Not a code file, damaged, or made by another model (bad_code)."),
            "413": _error("Body over the upload limit."),
            "415": _error("Multipart is not accepted."),
            "503": NOT_READY,
        },
    }},
    "/api/anomalies": {"get": {
        "summary": "The collection's outliers, worst reconstructed first",
        "description": "Neither parameter: images above the model's own threshold.",
        "parameters": [
            _query("top", f"The N worst (at most {TOP_MAX} are listed in any case).",
                   {"type": "integer", "minimum": 1, "maximum": TOP_MAX}),
            _query("threshold", "Only images with reconstruction MSE above this.",
                   {"type": "number", "minimum": 0}),
        ],
        "responses": {"200": _json("Outliers.", "AnomaliesResponse"),
                      "400": _error("Bad parameter, or no threshold to default to."),
                      "503": NOT_READY},
    }},
    "/api/explore/sample": {"get": {
        "summary": "Images decoded from codes drawn from the prior N(0, I)",
        "parameters": [
            _query("n", "How many.", {"type": "integer", "minimum": 1,
                                      "maximum": SAMPLES_MAX, "default": 8}),
            _query("seed", "Same seed, same images (random when absent).", SEED),
        ],
        "responses": {"200": _json("Samples.", "SampleResponse"),
                      "400": _error("Bad parameter."), "503": NOT_READY},
    }},
    "/api/explore/interpolate": {"get": {
        "summary": "Images along the line between two indexed images' codes",
        "parameters": [A_PARAM, B_PARAM, _query(
            "steps", "How many images, ends included.",
            {"type": "integer", "minimum": STEPS_MIN, "maximum": STEPS_MAX, "default": 8})],
        "responses": {"200": _json("The strip.", "InterpolateResponse"),
                      "400": _error("Bad or missing parameter."), "404": NOT_FOUND,
                      "503": NOT_READY},
    }},
    "/api/explore/arithmetic": {"get": {
        "summary": "a − b + c in latent space, decoded, and its nearest indexed images",
        "parameters": [A_PARAM, B_PARAM, C_PARAM, _query(
            "k", "How many neighbours.",
            {"type": "integer", "minimum": 1, "maximum": K_MAX, "default": ARITHMETIC_K})],
        "responses": {"200": _json("The result and its neighbours.", "ArithmeticResponse"),
                      "400": _error("Bad or missing parameter."), "404": NOT_FOUND,
                      "503": NOT_READY},
    }},
}
