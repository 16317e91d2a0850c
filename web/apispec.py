"""What each view of the JSON API takes and answers, and the OpenAPI 3.1 document made of it.

A view declares ``@operation(params=..., body=..., answers=...)``: its
parameters' model (``web.schemas``; read by ``web.requests`` before the view
runs, which gets them as ``params``), the model of a JSON body that is no
parameters (``body``), and its answers by status. ``/api/openapi.json`` is
built from the same declarations and models (pydantic's JSON Schema), so
the document cannot say other than what the code reads.
"""
from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask
from PIL import Image
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from indexer.images import SUPPORTED_FORMATS

from .answers import Error
from .requests import Upload, read_json, read_params

DESCRIPTION = ("Content-based image retrieval over your own collection. Every error is JSON: "
               "{\"error\": {\"code\", \"message\"}}.")
ADMIN_SECURITY = {"adminToken": []}
SECURITY_SCHEMES = {"adminToken": {
    "type": "http", "scheme": "bearer",
    "description": "The operator's LOOKALIKE_ADMIN_TOKEN. Without it configured, every admin "
                   "endpoint answers 403 admin_disabled."}}
REF = "#/components/schemas/{model}"
OCTET_STREAM = "application/octet-stream"
# What an upload's image is, beside the parameters, in each kind of body.
IMAGE_FILE = {"contentMediaType": OCTET_STREAM, "minLength": 1, "title": "Image",
              "type": "string"}
IMAGE_BASE64 = {"description": "The image in base64 (standard or URL-safe), or a data: URL.",
                "format": "byte", "minLength": 1, "title": "Image Base64", "type": "string"}


@dataclass(frozen=True)
class Operation:
    """One view's declaration. *answers*: status → a description (an :class:`Error`), or
    (what, description) or (what, description, headers), where *what* is a model, a media
    type, a tuple of those, or None."""

    params: type[BaseModel] | None
    body: type[BaseModel] | None
    answers: dict[int, Any]
    raw_body: bool = False  # the body may also be the bytes themselves
    body_required: bool = True  # False: a request without a body is one too
    path: dict[str, str] = field(default_factory=dict)  # path parameters' descriptions
    tags: tuple[str, ...] = ()
    security: dict[str, list] | None = None


def operation(params: type[BaseModel] | None = None, body: type[BaseModel] | None = None, *,
              answers: dict[int, Any], **more: Any) -> Callable:
    """Declare what a view takes and answers; the view is called with ``params=`` (the
    validated parameters) and ``body=`` (the validated JSON body, None when not JSON) for
    what it declares."""
    declared = Operation(params, body, answers, **more)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def read_then_run(*args: Any, **kwargs: Any) -> Any:
            if params is not None:
                kwargs["params"] = read_params(params)
            if body is not None:
                kwargs["body"] = read_json(body)
            return view(*args, **kwargs)
        read_then_run.operation = declared  # type: ignore[attr-defined]
        return read_then_run
    return decorate


def openapi_document(app: Flask) -> dict[str, Any]:
    """The document served at ``/api/openapi.json``, made once: every app has the same routes.

    Shared between callers: copy it before changing anything in it.
    """
    views = tuple((rule.rule, method, app.view_functions[rule.endpoint])
                  for rule in app.url_map.iter_rules()
                  for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
                  if hasattr(app.view_functions[rule.endpoint], "operation"))
    return _document(views)


@functools.cache
def _document(views: tuple[tuple[str, str, Callable], ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    models: list[type[BaseModel]] = [Error]
    for rule, method, view in views:
        declared: Operation = view.operation
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule)
        paths.setdefault(path, {})[method.lower()] = path_operation(
            declared, rule, method.lower(), path, view, models)
    schemas = models_json_schema([(m, "validation") for m in dict.fromkeys(models)],
                                 ref_template=REF)[1]["$defs"]
    for _rule, _method, view in views:
        params = view.operation.params
        if params is not None and issubclass(params, Upload):
            schemas.update(upload_schemas(params))
    tags = dict.fromkeys(tag for _rule, _method, view in views for tag in view.operation.tags)
    return {"openapi": "3.1.0",
            "info": {"title": "Lookalike", "description": DESCRIPTION, "version": "1"},
            "tags": [{"name": tag} for tag in tags], "paths": paths,
            "components": {"schemas": dict(sorted(schemas.items())),
                           "securitySchemes": SECURITY_SCHEMES},
            "security": []}


def path_operation(declared: Operation, rule: str, method: str, path: str, view: Callable,
                   models: list) -> dict[str, Any]:
    """One operation of the document; the models it names are added to *models*."""
    summary, _, description = (inspect.getdoc(view) or "").partition("\n\n")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", description) if p.strip()]
    found: dict[str, Any] = {
        "summary": " ".join(summary.split()), "operationId": f"{method}_{path.replace('/', '_')}",
        "description": "\n\n".join(paragraphs), "tags": list(declared.tags),
        "parameters": path_parameters(rule, declared.path) + query_parameters(declared.params),
        "responses": {str(status): response(what, models)
                      for status, what in declared.answers.items()}}
    content = request_content(declared, models)
    if content:
        found["requestBody"] = {"content": content, "required": declared.body_required}
    if declared.security is not None:
        found["security"] = [declared.security]
    return found


def path_parameters(rule: str, descriptions: dict[str, str]) -> list[dict[str, Any]]:
    """Path ids as Werkzeug's converters match them: ``int(max=...)`` is 0 up to max."""
    found = []
    for converter, args, name in re.findall(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>", rule):
        schema: dict[str, Any] = {"type": "string"}
        if converter == "int":
            most = re.search(r"max=(\d+)", args)
            schema = {"type": "integer", **({"maximum": int(most[1])} if most else {}),
                      "minimum": 0}
        found.append({"name": name, "in": "path", "required": True, "schema": schema,
                      "description": descriptions.get(name, "")})
    return found


def query_parameters(params: type[BaseModel] | None) -> list[dict[str, Any]]:
    """The model's fields as query parameters; ``allowEmptyValue`` where an empty one means
    absent (an OpenAPI keyword, not JSON Schema)."""
    if params is None:
        return []
    schema = params.model_json_schema(ref_template=REF)
    required = schema.get("required", [])
    found = []
    for name, prop in schema["properties"].items():
        param = {"name": name, "in": "query", "schema": prop, "required": name in required,
                 "description": prop.get("description")}
        if name not in required:
            param["allowEmptyValue"] = True
        found.append(param)
    return found


def upload_schemas(params: type[Upload]) -> dict[str, dict[str, Any]]:
    """The two bodies an upload may have: the image as a multipart file with the parameters as
    text fields (an empty one: absent), or base64 in JSON with the parameters as JSON values
    (null: absent)."""
    name = params.__name__.removesuffix("Params")
    props = params.model_json_schema(ref_template=REF)["properties"]
    named = {n: {k: p[k] for k in ("description", "title") if k in p} for n, p in props.items()}
    value = {n: {k: v for k, v in p.items() if k not in ("description", "title", "default")}
             for n, p in props.items()}
    form = {n: {"anyOf": [value[n], {"const": ""}], **named[n]} for n in props}
    json = {n: {"anyOf": [value[n], {"type": "null"}], "default": None, **named[n]}
            for n in props}
    return {f"{name}Form": {"properties": {"image": IMAGE_FILE, **form}, "required": ["image"],
                            "title": f"{name}Form", "type": "object"},
            f"{name}Json": {"properties": {"image_base64": IMAGE_BASE64, **json},
                            "required": ["image_base64"], "title": f"{name}Json",
                            "type": "object"}}


def request_content(declared: Operation, models: list) -> dict[str, Any]:
    params, body = declared.params, declared.body
    content: dict[str, Any] = {}
    if params is not None and issubclass(params, Upload):
        name = params.__name__.removesuffix("Params")
        Image.init()
        image_types = ", ".join(Image.MIME[fmt] for fmt in SUPPORTED_FORMATS)
        content = {"application/json": {"schema": {"$ref": REF.format(model=f"{name}Json")}},
                   "multipart/form-data": {"schema": {"$ref": REF.format(model=f"{name}Form")},
                                           "encoding": {"image": {"contentType": image_types}}}}
    if body is not None:
        models.append(body)
        content["application/json"] = {"schema": {"$ref": REF.format(model=body.__name__)}}
    if declared.raw_body:
        content[OCTET_STREAM] = {"schema": {"type": "string", "minLength": 1,
                                            "contentMediaType": OCTET_STREAM}}
    return content


def response(what: Any, models: list) -> dict[str, Any]:
    """One documented answer; a bare description is an :class:`Error`."""
    if isinstance(what, str):
        what = (Error, what)
    kinds, description, *headers = what
    found: dict[str, Any] = {"description": description}
    content = {}
    for kind in kinds if isinstance(kinds, tuple) else (kinds,):
        if isinstance(kind, str):
            content[kind] = {"schema": {"type": "string", "contentMediaType": kind}}
        elif kind is not None:
            models.append(kind)
            content["application/json"] = {"schema": {"$ref": REF.format(model=kind.__name__)}}
    if content:
        found["content"] = content
    if headers:
        found["headers"] = headers[0]
    return found
