"""Bounded numbers and choices from query strings, form fields and JSON values.

Every parameter of the tool endpoints has a fixed range; anything else is
a 400 ``bad_parameter`` that names the parameter and its range, before any
work is done, so a typo never turns into a slow or odd-looking answer.
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

from .errors import ApiError

SEED_MAX = 2**32 - 1  # random seeds: any 32-bit number
ID_MAX = 2**63 - 1  # catalog ids are SQLite integers

# Digits; a trailing ".0" too, since JSON Schema counts 2.0 as an integer.
_INT = re.compile(r"[+]?([0-9]{1,19})(\.0*)?")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message)


def parse_int(raw: Any, name: str, low: int, high: int, default: int | None = None) -> int | None:
    """A whole number in [low, high]; *default* when absent or empty."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():  # JSON Schema's integer: 5.0 is one
        value = int(raw)
    elif isinstance(raw, str) and (digits := _INT.fullmatch(raw.strip())):
        value = int(digits.group(1))
    else:
        raise _bad(f"{name} must be a whole number from {low} to {high}, not {str(raw)[:20]!r}")
    if not low <= value <= high:
        raise _bad(f"{name} must be from {low} to {high}, not {value}")
    return value


def parse_float(raw: Any, name: str, low: float, high: float | None = None,
                default: float | None = None) -> float | None:
    """A finite number in [low, high] (no upper bound when *high* is None)."""
    if raw is None or raw == "":
        return default
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str) and _FLOAT.fullmatch(raw.strip()):
        value = float(raw.strip())
    else:
        raise _bad(f"{name} must be a number {span}, not {str(raw)[:20]!r}")
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        raise _bad(f"{name} must be a number {span}, not {value}")
    return value


def parse_choice(raw: Any, name: str, choices: Sequence[str], default: str) -> str:
    """One of *choices* (case-insensitive); *default* when absent or empty."""
    if raw is None or raw == "":
        return default
    value = str(raw).strip().lower()
    if value not in choices:
        raise _bad(f"{name} must be one of {', '.join(choices)}, not {str(raw)[:20]!r}")
    return value


def parse_id(raw: Any, name: str) -> int:
    """A required catalog id (a SQLite integer)."""
    if raw is None or raw == "":
        raise _bad(f"{name} is required: the id of an indexed image")
    value = parse_int(raw, name, 0, ID_MAX)
    assert value is not None
    return value
