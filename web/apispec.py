"""Request validation and the OpenAPI 3.1 document, both from ``web.schemas`` (spectree).

Each view of the JSON API declares what it takes and answers with
``@spec.validate(query=..., form=..., json=..., resp=...)``. Before the view
runs, the request is validated against those models and the view reads the
result with :func:`request_params` (or ``request.context``); a bad request is
our 400 (:class:`web.errors.ApiError`) with the ``code`` and ``message`` the
field raised. ``/api/openapi.json`` is spectree's document of the same
declarations, plus the few things it cannot say (:func:`_overlay`).
"""
from __future__ import annotations

import copy
import functools
from typing import Any

from flask import Flask, Request, request
from PIL import Image
from pydantic import BaseModel, ValidationError
from spectree import SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin

from indexer.images import SUPPORTED_FORMATS

from .errors import ApiError
from .schemas import KIND_HEADER, NOTE_HEADER, Error

DESCRIPTION = ("Content-based image retrieval over your own collection. Every error is JSON: "
               "{\"error\": {\"code\", \"message\"}}.")
ADMIN_SECURITY = {"adminToken": []}


def api_error(exc: ValidationError) -> ApiError:
    """Our 400 for the first thing wrong with a request (fields are checked in order)."""
    first = exc.errors()[0]
    if first["type"] in ("bad_parameter", "bad_request"):  # raised by web.fields
        return ApiError(400, first["type"], first["msg"])
    where = ".".join(str(part) for part in first["loc"])
    if not where:
        return ApiError(400, "bad_request", f"the body is malformed: {first['msg']}")
    return ApiError(400, "bad_parameter", f"{where}: {first['msg']}")


class Validator(FlaskPlugin):
    """spectree's Flask plugin, reading requests the way this API defines them.

    * The content type picks the body model: multipart/form-data the form
      model, JSON the JSON one. An endpoint that takes an upload answers 415
      to anything else; one with only a JSON model (``/api/decompress``)
      reads any other body itself.
    * The body is checked before the query string, so a request without an
      image is told so before anything about its options.
    * Errors raise :class:`ApiError` here rather than going through
      spectree's error response, which serializes each error's input (a
      file part, say) to JSON before any hook could step in.
    * Responses are documented, not validated: views answer with PNGs and
      streamed files too, and ``tests/web/test_schema.py`` checks every answer.
    """

    def request_validation(self, request: Request, query: Any, json: Any, form: Any,
                           headers: Any, cookies: Any) -> None:
        assert headers is None and cookies is None, "only query, form and json models here"
        form_body = json_body = None
        try:
            if form is not None and request.mimetype == "multipart/form-data":
                form_body = form.model_validate({**request.form.to_dict(),
                                                 **request.files.to_dict()})
            elif json is not None and request.is_json:
                json_body = json.model_validate(request.get_json(silent=True))
            elif form is not None:
                raise ApiError(415, "unsupported_media_type",
                               "send multipart/form-data with an 'image' file, or "
                               "application/json with 'image_base64'")
            params = query.model_validate(request.args.to_dict()) if query is not None else None
        except ValidationError as exc:
            raise api_error(exc) from None
        request.context = Context(params, json_body, form_body, None, None)

    def validate_response(self, resp: Any, *_args: Any, **_kwargs: Any) -> tuple[Any, None]:
        return self.get_current_app().make_response(resp), None


spec = SpecTree(
    "flask", backend=Validator, mode="strict", annotations=False,
    title="Lookalike", version="1", description=DESCRIPTION,
    validation_error_status=400, validation_error_model=Error,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[{"name": "adminToken", "data": {
        "type": "http", "scheme": "bearer",
        "description": "The operator's LOOKALIKE_ADMIN_TOKEN. Without it configured, every "
                       "admin endpoint answers 403 admin_disabled."}}],
)


def request_params() -> Any:
    """This request's parameters: the query string's, each replaced by the body's where the
    body (a form or a JSON object, whichever was sent) has one."""
    context = request.context
    params: BaseModel = context.query
    body = context.form if context.form is not None else context.json
    if body is None:
        return params
    given = {name: value for name in type(params).model_fields
             if (value := getattr(body, name, None)) is not None}
    return params.model_copy(update=given) if given else params


def openapi_document(app: Flask) -> dict[str, Any]:
    """The document served at ``/api/openapi.json``, made once: every app has the same routes.

    Shared between callers: copy it before changing anything in it.
    """
    with app.app_context():
        return _document()


@functools.cache
def _document() -> dict[str, Any]:
    doc = copy.deepcopy(spec.spec)
    _overlay(doc)
    return doc


# -- what spectree's document cannot say -------------------------------------------------------

def _media(media: str) -> dict[str, Any]:
    return {media: {"schema": {"type": "string", "contentMediaType": media}}}


PNG_HEADERS = {KIND_HEADER: {"schema": {"type": "string"}},
               NOTE_HEADER: {"schema": {"type": "string"},
                             "description": "Present when the model is not a dae."}}
# Answers that are images: spectree documents every response model as application/json.
IMAGE_ANSWERS = {
    ("/api/denoise", "post"): (_media("image/png"), PNG_HEADERS),  # or JSON with format=json
    ("/api/decompress", "post"): (_media("image/png"), None),
    ("/images/{image_id}/thumbnail", "get"): (_media("image/jpeg"), None),
    ("/images/{image_id}/reconstruction", "get"): (_media("image/png"), None),
}
# Request bodies that are neither JSON nor a form: the code file itself.
RAW_BODIES = {("/api/decompress", "post"): {"application/octet-stream": {"schema": {
    "type": "string", "minLength": 1, "contentMediaType": "application/octet-stream"}}}}


def _overlay(doc: dict[str, Any]) -> None:
    """Add to spectree's document what its models cannot express:

    * ``allowEmptyValue`` on optional query parameters (``?k=`` means absent), an
      OpenAPI parameter keyword, not JSON Schema;
    * path ids as Werkzeug's ``int`` converter matches them (0 and up; spectree
      says int32, whose range is not that of SQLite ids);
    * the image types a multipart ``image`` part may have (an OpenAPI ``encoding``);
    * image answers and the raw body of ``/api/decompress`` (tables above);

    and take out spectree's validation error (400) from operations that have
    nothing to validate: no query string, no body.
    """
    Image.init()
    image_types = ", ".join(Image.MIME[fmt] for fmt in SUPPORTED_FORMATS)
    for operations in doc["paths"].values():
        for operation in operations.values():
            params = operation.get("parameters", [])
            if "requestBody" not in operation and all(p["in"] == "path" for p in params):
                operation["responses"].pop("400", None)
            for param in params:
                if param["in"] == "query" and not param["required"]:
                    param["allowEmptyValue"] = True
                if param["in"] == "path" and param["schema"].get("type") == "integer":
                    param["schema"].pop("format", None)
                    param["schema"]["minimum"] = 0
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:
                content["multipart/form-data"]["encoding"] = {
                    "image": {"contentType": image_types}}
    for (path, method), body in RAW_BODIES.items():  # a KeyError if the route is gone
        doc["paths"][path][method]["requestBody"]["content"].update(body)
    for (path, method), (media, headers) in IMAGE_ANSWERS.items():
        answer = doc["paths"][path][method]["responses"]["200"]
        answer["content"] = {**media, **answer.get("content", {})}
        if headers:
            answer["headers"] = headers
