"""Reading a request of the JSON API: one mapping of parameters, one model to validate it.

An endpoint's parameters are one pydantic model (``web.schemas``). The
query string, and for an endpoint that takes an image (:class:`Upload`) the
body beside it (multipart form fields or a JSON object), are merged into
one mapping, the body winning where both carry a parameter, and validated
by that model (a query value the body replaces is checked too: a bad one is
a 400). An empty text or a JSON null means absent, so it is left out of the
mapping (and the query's value, or the default, stands).
Which names came in JSON is the validation context (``web.fields``): there
a number must be a JSON number, in text it is digits.

Whatever is wrong is our 400 (:class:`web.errors.ApiError`): ``bad_request``
for a body not in the shape the endpoint takes (checked first: a request
without its image is told so before anything about its options), else
``bad_parameter`` naming the first bad parameter.
"""
from __future__ import annotations

from typing import Any, Mapping, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema
from werkzeug.datastructures import FileStorage

from .errors import ApiError
from .fields import bad_parameter, base64_bytes

UPLOAD_TYPES = ("send multipart/form-data with an 'image' file, or application/json with "
                "'image_base64'")
Model = TypeVar("Model", bound=BaseModel)


def _absent_is_no_value(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]  # "absent" is not a value a client could send


class Params(BaseModel):
    """The parameters of one endpoint; unknown names are ignored. A field whose default is
    None is absent unless sent (its type says what it is when sent)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_absent_is_no_value)

    @model_validator(mode="before")
    @classmethod
    def _required_present(cls, data: Any) -> Any:
        for name, info in cls.model_fields.items():
            if info.is_required() and name not in data:
                raise bad_parameter(f"{name} is required: {info.description}")
        return data


class Upload(Params):
    """The parameters of an endpoint that takes an image: in the query string or in the body
    beside the image (a multipart ``image`` file, or JSON ``image_base64``)."""

    image: SkipJsonSchema[bytes] = Field(b"", exclude=True)  # the reader puts the bytes here


def api_error(exc: ValidationError) -> ApiError:
    """Our 400 for the first thing wrong with a request (fields are checked in order)."""
    first = exc.errors()[0]
    if first["type"] in ("bad_parameter", "bad_request"):  # raised by web.fields
        return ApiError(400, first["type"], first["msg"])
    where = ".".join(str(part) for part in first["loc"])
    if not where:
        return ApiError(400, "bad_request", f"the body is malformed: {first['msg']}")
    return ApiError(400, "bad_parameter", f"{where}: {first['msg']}")


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """The text values that say something: an empty one (or a file part) means absent."""
    return {name: value for name, value in values.items() if isinstance(value, str) and value}


def read_params(model: type[Model]) -> Model:
    """This request's parameters, validated by *model*."""
    given = present(request.args.to_dict())
    sent_json: frozenset[str] = frozenset()
    if issubclass(model, Upload):
        body, sent_json, image = read_upload()
        # A query value the body replaces is checked all the same: a bad one is still the
        # client's mistake, and is answered as one (as the API always has), though a good
        # one is not used.
        replaced = {name: given[name] for name in body if name in given}
        if replaced:
            validated(model, {**body, **replaced, "image": image}, sent_json - replaced.keys())
        given.update(body)
        given["image"] = image
    return validated(model, given, sent_json)


def validated(model: type[Model], given: dict[str, Any], sent_json: frozenset[str]) -> Model:
    """*given* validated by *model*, the names in *sent_json* read as JSON; else our 400."""
    try:
        return model.model_validate(given, context={"json": sent_json})
    except ValidationError as exc:
        raise api_error(exc) from None


def read_upload() -> tuple[dict[str, Any], frozenset[str], bytes]:
    """(the body's parameters, the names of those sent as JSON, the image bytes), or the 400
    or 415 that says what is wrong with the body."""
    if request.mimetype == "multipart/form-data":
        form = {**request.form.to_dict(), **request.files.to_dict()}
        image = form.get("image")
        if not isinstance(image, FileStorage):
            raise ApiError(400, "bad_request", "send the image as a multipart file field "
                           "named 'image'")
        return present(form), frozenset(), image.read()  # in memory: web.uploads
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", UPLOAD_TYPES)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object with 'image_base64'")
    if not isinstance(body.get("image_base64"), str):
        raise ApiError(400, "bad_request", "'image_base64' must be a base64 string")
    try:
        image = base64_bytes(body["image_base64"], "image_base64", data_url=True)
    except ValueError as exc:  # pydantic's error type is a ValueError
        raise ApiError(400, "bad_request", str(exc)) from None
    sent = {name: value for name, value in body.items() if value is not None}
    return sent, frozenset(sent), image


def read_json(model: type[Model]) -> Model | None:
    """A JSON body validated by *model*; None when the body is not JSON (the view decides)."""
    if not request.is_json:
        return None
    try:
        return model.model_validate(request.get_json(silent=True))
    except ValidationError as exc:
        raise api_error(exc) from None
