"""The kinds of value a parameter of the JSON API may have, each read from text or from JSON.

A parameter is a field of its endpoint's model (``web.schemas``) whose type
is one of these: ``k: whole(1, K_MAX) = Field(10, description=...)``. The
same value may arrive as text (the query string, a form field) or as JSON
(a JSON body); ``web.requests`` says which in the validation context, and
the field reads it accordingly:

* text: flags read true/false, 1/0, yes/no, on/off; numbers are digits.
* JSON: a number or flag must be a JSON number or boolean, never a string;
  5.0 counts as an integer.

Absent values (an empty text, a JSON null) never reach a field: the
request reader leaves them out. Every bad value is a 400 ``bad_parameter``
whose message names the parameter and its range, before any work is done.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import date, datetime
from typing import Annotated, Any, Callable, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from search.catalog import ID_MAX

SEED_MAX = 2**32 - 1  # random seeds: any 32-bit number

# Digits; a trailing ".0" too, since JSON Schema counts 2.0 as an integer.
INT_TEXT = re.compile(r"[+]?([0-9]{1,19})(\.0*)?")
FLOAT_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
BOX_TEXT = re.compile(r"^(\d{1,9}),(\d{1,9}),(\d{1,9}),(\d{1,9})$")


def bad_parameter(message: str) -> PydanticCustomError:
    """The error for one bad parameter; ``web.requests`` turns it into our 400."""
    return PydanticCustomError("bad_parameter", message)  # no context: braces stay as sent


def bad_request(message: str) -> PydanticCustomError:
    """The error for a body that is not in the shape the endpoint takes."""
    return PydanticCustomError("bad_request", message)


def shown(raw: Any) -> str:
    """A client's value, quoted and cut short, for an error message."""
    return repr(str(raw)[:20])


def sent_as_json(info: ValidationInfo) -> bool:
    """Whether this field's value came in a JSON body (``web.requests`` names those fields)."""
    return bool(info.context) and info.field_name in info.context.get("json", ())


def parameter(value_type: Any, from_text: Callable[[str, str], Any],
              from_json: Callable[[Any, str], Any] | None = None) -> Any:
    """A field type: *value_type* (the document's schema, checked once more) read by
    *from_text* from text, and by *from_json* (default: *from_text*) from JSON. A text
    parameter (*from_json* None) is a non-empty string in JSON too; any other, never one."""
    def read(raw: Any, info: ValidationInfo) -> Any:
        name = info.field_name or "value"
        if not sent_as_json(info):
            return from_text(raw, name)
        if isinstance(raw, str) != (from_json is None) or raw == "":
            kind = "a non-empty string" if from_json is None else \
                "a JSON number or boolean, not a string"
            raise bad_parameter(f"{name} in a JSON body must be {kind}")
        return (from_json or from_text)(raw, name)
    return Annotated[value_type, BeforeValidator(read)]


def whole_readers(low: int, high: int) -> tuple[Callable, Callable]:
    """(from text, from JSON) for a whole number in [low, high]."""
    def not_whole(raw: Any, name: str) -> PydanticCustomError:
        return bad_parameter(f"{name} must be a whole number from {low} to {high}, "
                             f"not {shown(raw)}")

    def in_range(value: int, name: str) -> int:
        if not low <= value <= high:
            raise bad_parameter(f"{name} must be from {low} to {high}, not {value}")
        return value

    def from_text(raw: str, name: str) -> int:
        digits = INT_TEXT.fullmatch(raw.strip())
        if digits is None:
            raise not_whole(raw, name)
        return in_range(int(digits.group(1)), name)

    def from_json(raw: Any, name: str) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return in_range(raw, name)
        if isinstance(raw, float) and raw.is_integer():  # JSON Schema's integer: 5.0 is one
            return in_range(int(raw), name)
        raise not_whole(raw, name)

    return from_text, from_json


def whole(low: int = 0, high: int = ID_MAX) -> Any:
    """A whole number in [low, high]."""
    return parameter(Annotated[int, Field(ge=low, le=high)], *whole_readers(low, high))


def json_whole(low: int, high: int, name: str) -> Any:
    """A whole number in [low, high] that is only ever sent in JSON (an item of a list), called
    *name* in errors."""
    from_json = whole_readers(low, high)[1]
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(lambda raw: from_json(raw, name))]


def number(low: float = 0.0, high: float | None = None) -> Any:
    """A finite number in [low, high] (no upper bound when *high* is None)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def in_range(value: float, name: str) -> float:
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise bad_parameter(f"{name} must be a number {span}, not {value}")
        return value

    def from_text(raw: str, name: str) -> float:
        if not FLOAT_TEXT.fullmatch(raw.strip()):
            raise bad_parameter(f"{name} must be a number {span}, not {shown(raw)}")
        return in_range(float(raw.strip()), name)

    def from_json(raw: Any, name: str) -> float:
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            raise bad_parameter(f"{name} must be a number {span}, not {shown(raw)}")
        return in_range(float(raw), name)

    return parameter(Annotated[float, Field(ge=low, le=high)], from_text, from_json)


def choice(*choices: str) -> Any:
    """One of *choices*, case-insensitive."""
    def from_text(raw: Any, name: str) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise bad_parameter(f"{name} must be one of {', '.join(choices)}, not {shown(raw)}")
        return value
    return parameter(Literal[choices], from_text)  # type: ignore[valid-type]


def text(longest: int = 4096) -> Any:
    """Any text of up to *longest* characters, as sent (a folder's path)."""
    def from_text(raw: Any, name: str) -> str:
        value = str(raw)
        if not 0 < len(value) <= longest:
            raise bad_parameter(f"{name} must be 1 to {longest} characters")
        return value
    return parameter(Annotated[str, Field(min_length=1, max_length=longest)], from_text)


def _day(raw: Any, name: str) -> date:
    try:
        return datetime.strptime(str(raw).strip(), "%Y-%m-%d").date()
    except ValueError:
        raise bad_parameter(f"{name} must be a day, YYYY-MM-DD, not {shown(raw)}") from None


def _box(raw: Any, name: str) -> str:
    found = BOX_TEXT.fullmatch(str(raw))
    if found is None:
        raise bad_parameter(f"{name} must be four whole numbers x0,y0,x1,y1, not {shown(raw)}")
    return ",".join(found.groups())


def _flag(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise bad_parameter(f"{name} must be true or false, not {shown(raw)}")


def _json_flag(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    raise bad_parameter(f"{name} must be true or false, not {shown(raw)}")


# A calendar day, YYYY-MM-DD.
Day = parameter(date, _day)
# A rectangle of an image, ``x0,y0,x1,y1`` in its pixels (any two opposite corners; the
# image clips it, see ``indexer.images.clip_box``).
Box = parameter(Annotated[str, WithJsonSchema({"type": "string", "pattern": BOX_TEXT.pattern})],
                _box)
# Yes or no: true/false, 1/0, yes/no, on/off as text; a boolean in JSON.
Flag = parameter(bool, _flag, _json_flag)


def box_corners(box: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a :data:`Box` value, whichever corners it named."""
    x0, y0, x1, y1 = map(int, box.split(","))
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def base64_bytes(value: str, name: str, data_url: bool) -> bytes:
    """Standard or URL-safe base64, with or without padding (and a ``data:`` prefix), or a
    bad_request error."""
    encoded = value.strip()
    if data_url and encoded.startswith("data:"):
        head, sep, encoded = encoded.partition(",")
        if not sep or not head.endswith(";base64"):
            raise bad_request(f"a data URL in '{name}' must be base64")
    encoded = re.sub(r"\s+", "", encoded)
    if data_url:
        encoded += "=" * (-len(encoded) % 4)
    try:
        altchars = b"-_" if data_url and ("-" in encoded or "_" in encoded) else None
        return base64.b64decode(encoded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"'{name}' is not valid base64") from None
