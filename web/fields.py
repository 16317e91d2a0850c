"""Request fields, each parsed and documented from one declaration.

A parameter of the JSON API is declared once (:class:`Whole`, :class:`Number`,
:class:`Choice`, :class:`Flag`) and turned into a pydantic field for each place
it may be sent (:class:`Place`): the query string, a multipart form field, a
JSON body. The field's validator parses the value the way that place carries
it, and its JSON Schema says what that place accepts:

* query string and form: text. An empty value means absent (``?k=``, a blank
  form input). Flags read true/false, 1/0, yes/no, on/off.
* JSON body: JSON types. null means absent; a number or flag must be a JSON
  number or boolean, never a string; 5.0 counts as an integer.

Every bad value is a 400 ``bad_parameter`` whose message names the parameter
and its range, before any work is done. The image and code bodies that
travel beside the parameters are here too, with their 400 ``bad_request``.
"""
from __future__ import annotations

import abc
import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, \
    WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError, PydanticUseDefault
from werkzeug.datastructures import FileStorage

from search.catalog import ID_MAX

SEED_MAX = 2**32 - 1  # random seeds: any 32-bit number

# Digits; a trailing ".0" too, since JSON Schema counts 2.0 as an integer.
INT_TEXT = re.compile(r"[+]?([0-9]{1,19})(\.0*)?")
FLOAT_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def bad_parameter(message: str) -> PydanticCustomError:
    """The error for one bad parameter; ``web.apispec`` turns it into our 400."""
    return PydanticCustomError("bad_parameter", message)  # no context: braces stay as sent


def bad_request(message: str) -> PydanticCustomError:
    """The error for a body that is not in the shape the endpoint takes."""
    return PydanticCustomError("bad_request", message)


def shown(raw: Any) -> str:
    """A client's value, quoted and cut short, for an error message."""
    return repr(str(raw)[:20])


class Place(Enum):
    QUERY = "query"
    FORM = "form"
    JSON = "json"


class Blank:
    """A form field may also be empty, which means absent (a blank input in a form)."""

    @staticmethod
    def __get_pydantic_json_schema__(core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [handler(core_schema), {"const": ""}]}


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # "absent" is not a value a client could send


@dataclass(frozen=True)
class Param(abc.ABC):
    """One parameter: its description, default and how it reads from text or JSON."""

    description: str
    default: Any = None
    required: bool = False
    text: ClassVar[bool] = False  # a JSON body sends it as a string (a choice)

    @abc.abstractmethod
    def value_type(self) -> Any:
        """The parsed value's type and bounds: the document's schema, checked once more."""

    @abc.abstractmethod
    def from_text(self, raw: str, name: str) -> Any:
        """The value a query string or form field spells, or a bad_parameter error."""

    def from_json(self, raw: Any, name: str) -> Any:
        return self.from_text(raw, name)

    def parse(self, raw: Any, info: ValidationInfo, place: Place) -> Any:
        """The validator: absent values take the default (None in a body: the query's)."""
        name = info.field_name or "value"
        if place is Place.JSON:
            if raw is None:
                raise PydanticUseDefault()
            if isinstance(raw, str) != self.text or raw == "":
                kind = "a non-empty string" if self.text else \
                    "a JSON number or boolean, not a string"
                raise bad_parameter(f"{name} in a JSON body must be {kind}")
            return self.from_json(raw, name)
        if raw == "" or not isinstance(raw, str):  # a file part is no parameter's value
            raise PydanticUseDefault()
        return self.from_text(raw, name)

    def field(self, place: Place) -> tuple[Any, Any]:
        """(annotation, FieldInfo) for ``pydantic.create_model`` in *place*."""
        parse = BeforeValidator(partial(self.parse, place=place))
        if place is Place.JSON:
            return (Annotated[self.value_type() | None, parse],
                    Field(None, description=self.description))
        if place is Place.FORM:
            return (Annotated[self.value_type(), Blank(), parse],
                    Field(None, description=self.description, json_schema_extra=_no_default))
        if self.required:
            return Annotated[self.value_type(), parse], Field(description=self.description)
        extra = _no_default if self.default is None else None
        return (Annotated[self.value_type(), parse],
                Field(self.default, description=self.description, json_schema_extra=extra))


@dataclass(frozen=True)
class Whole(Param):
    """A whole number in [low, high]."""

    low: int = 0
    high: int = ID_MAX

    def value_type(self) -> Any:
        return Annotated[int, Field(ge=self.low, le=self.high)]

    def from_text(self, raw: str, name: str) -> int:
        digits = INT_TEXT.fullmatch(raw.strip())
        if digits is None:
            raise self._not_whole(raw, name)
        return self._in_range(int(digits.group(1)), name)

    def from_json(self, raw: Any, name: str) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return self._in_range(raw, name)
        if isinstance(raw, float) and raw.is_integer():  # JSON Schema's integer: 5.0 is one
            return self._in_range(int(raw), name)
        raise self._not_whole(raw, name)

    def _not_whole(self, raw: Any, name: str) -> PydanticCustomError:
        return bad_parameter(f"{name} must be a whole number from {self.low} to {self.high}, "
                             f"not {shown(raw)}")

    def _in_range(self, value: int, name: str) -> int:
        if not self.low <= value <= self.high:
            raise bad_parameter(f"{name} must be from {self.low} to {self.high}, not {value}")
        return value


@dataclass(frozen=True)
class Number(Param):
    """A finite number in [low, high] (no upper bound when *high* is None)."""

    low: float = 0.0
    high: float | None = None

    def value_type(self) -> Any:
        return Annotated[float, Field(ge=self.low, le=self.high)]

    def from_text(self, raw: str, name: str) -> float:
        if not FLOAT_TEXT.fullmatch(raw.strip()):
            raise bad_parameter(f"{name} must be a number {self._span()}, not {shown(raw)}")
        return self._in_range(float(raw.strip()), name)

    def from_json(self, raw: Any, name: str) -> float:
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            raise bad_parameter(f"{name} must be a number {self._span()}, not {shown(raw)}")
        return self._in_range(float(raw), name)

    def _span(self) -> str:
        return f"from {self.low} to {self.high}" if self.high is not None else \
            f"of at least {self.low}"

    def _in_range(self, value: float, name: str) -> float:
        if not math.isfinite(value) or value < self.low or (
                self.high is not None and value > self.high):
            raise bad_parameter(f"{name} must be a number {self._span()}, not {value}")
        return value


@dataclass(frozen=True)
class Choice(Param):
    """One of *choices*, case-insensitive."""

    choices: tuple[str, ...] = ()
    text: ClassVar[bool] = True

    def value_type(self) -> Any:
        return Literal[self.choices]  # type: ignore[valid-type]

    def from_text(self, raw: Any, name: str) -> str:
        value = str(raw).strip().lower()
        if value not in self.choices:
            raise bad_parameter(f"{name} must be one of {', '.join(self.choices)}, "
                                f"not {shown(raw)}")
        return value


@dataclass(frozen=True)
class Text(Param):
    """Any text of up to *longest* characters, as sent (a folder's path)."""

    longest: int = 4096
    text: ClassVar[bool] = True

    def value_type(self) -> Any:
        return Annotated[str, Field(min_length=1, max_length=self.longest)]

    def from_text(self, raw: Any, name: str) -> str:
        value = str(raw)
        if not 0 < len(value) <= self.longest:
            raise bad_parameter(f"{name} must be 1 to {self.longest} characters")
        return value


@dataclass(frozen=True)
class Day(Param):
    """A calendar day, YYYY-MM-DD."""

    text: ClassVar[bool] = True

    def value_type(self) -> Any:
        return date

    def from_text(self, raw: Any, name: str) -> date:
        try:
            return datetime.strptime(str(raw).strip(), "%Y-%m-%d").date()
        except ValueError:
            raise bad_parameter(f"{name} must be a day, YYYY-MM-DD, not {shown(raw)}") from None


BOX_TEXT = re.compile(r"^(\d{1,9}),(\d{1,9}),(\d{1,9}),(\d{1,9})$")


@dataclass(frozen=True)
class Box(Param):
    """A rectangle of an image, ``x0,y0,x1,y1`` in its pixels (any two opposite corners;
    the image clips it, see ``indexer.images.clip_box``)."""

    text: ClassVar[bool] = True

    def value_type(self) -> Any:
        return Annotated[str, WithJsonSchema({"type": "string", "pattern": BOX_TEXT.pattern})]

    def from_text(self, raw: Any, name: str) -> str:
        found = BOX_TEXT.fullmatch(str(raw))
        if found is None:
            raise bad_parameter(f"{name} must be four whole numbers x0,y0,x1,y1, "
                                f"not {shown(raw)}")
        return ",".join(found.groups())


def box_corners(box: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a :class:`Box` value, whichever corners it named."""
    x0, y0, x1, y1 = map(int, box.split(","))
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


@dataclass(frozen=True)
class Flag(Param):
    """Yes or no: true/false, 1/0, yes/no, on/off as text; a boolean in JSON."""

    def value_type(self) -> Any:
        return bool

    def from_text(self, raw: str, name: str) -> bool:
        text = raw.strip().lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise bad_parameter(f"{name} must be true or false, not {shown(raw)}")

    def from_json(self, raw: Any, name: str) -> bool:
        if isinstance(raw, bool):
            return raw
        raise bad_parameter(f"{name} must be true or false, not {shown(raw)}")


class Params(BaseModel):
    """The parameters of one request, from one place; unknown names are ignored."""

    model_config = ConfigDict(extra="ignore")


class QueryString(Params):
    """Parameters from the query string; a required one may not be empty either."""

    @model_validator(mode="before")
    @classmethod
    def _required_present(cls, data: Any) -> Any:
        for name, info in cls.model_fields.items():
            if info.is_required() and data.get(name, "") == "":
                raise bad_parameter(f"{name} is required: {info.description}")
        return data


def _file_bytes(value: FileStorage) -> bytes:
    return value.read()  # in memory: web.uploads.InMemoryRequest never spools to disk


def _base64_bytes(value: Any, name: str, data_url: bool) -> bytes:
    """Standard or URL-safe base64, with or without padding (and a ``data:`` prefix)."""
    text = value.strip()
    if data_url and text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise bad_request(f"a data URL in '{name}' must be base64")
    text = re.sub(r"\s+", "", text)
    if data_url:
        text += "=" * (-len(text) % 4)
    try:
        altchars = b"-_" if data_url and ("-" in text or "_" in text) else None
        return base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"'{name}' is not valid base64") from None


class UploadForm(Params):
    """The image as a multipart file part, options as text fields beside it."""

    image: Annotated[bytes, BeforeValidator(_file_bytes), WithJsonSchema({
        "type": "string", "minLength": 1, "contentMediaType": "application/octet-stream"})]

    @model_validator(mode="before")
    @classmethod
    def _has_image(cls, data: Any) -> Any:
        if not isinstance(data.get("image"), FileStorage):
            raise bad_request("send the image as a multipart file field named 'image'")
        return data

    def upload(self) -> bytes:
        return self.image


class UploadJson(Params):
    """The image in base64, options as JSON values beside it."""

    image_base64: Annotated[bytes, BeforeValidator(
        partial(_base64_bytes, name="image_base64", data_url=True)), WithJsonSchema({
            "type": "string", "format": "byte", "minLength": 1,
            "description": "The image in base64 (standard or URL-safe), or a data: URL."})]

    @model_validator(mode="before")
    @classmethod
    def _has_image(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise bad_request("the body must be a JSON object with 'image_base64'")
        if not isinstance(data.get("image_base64"), str):
            raise bad_request("'image_base64' must be a base64 string")
        return data

    def upload(self) -> bytes:
        return self.image_base64


class CodeJson(BaseModel):
    """A code file (what lookalike compress writes, .lkc) in base64."""

    code_base64: Annotated[bytes, BeforeValidator(
        partial(_base64_bytes, name="code_base64", data_url=False)), WithJsonSchema({
            "type": "string", "minLength": 1, "description": "The code file, base64."})]

    @model_validator(mode="before")
    @classmethod
    def _has_code(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("code_base64"), str):
            raise bad_request("the body must be a JSON object with 'code_base64', a base64 "
                              "string")
        return data
