"""multipart/form-data uploads read straight from memory, for the image endpoints.

Werkzeug's parser streams: for every request it compiles two regular
expressions around that request's boundary (~0.5 ms, and browsers and
HTTP libraries send a fresh random boundary each time), then walks an
event machine, ~1.5 ms in all per search against a ~4 ms encode. An
upload here is already one bounded body in memory with two to four
parts, so :func:`parse` reads the plain RFC 7578 shape with ``bytes.find``:
the body opens with the boundary, CRLF line breaks, a Content-Disposition
per part, no header folding.

Anything else (a preamble, bare LF line breaks, padding after a boundary,
a boundary string inside a part, big text fields, many parts, a field with
its own charset) makes it answer None, and the caller hands the body to
Werkzeug instead; so where this reader answers, it answers what Werkzeug
would (``tests/test_multipart.py`` checks the two against each other).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from werkzeug.http import parse_options_header

# Beyond these the body goes to Werkzeug, which applies the app's form limits.
MAX_PARTS = 16
MAX_FIELD_BYTES = 1024
CRLF = b"\r\n"
# The Content-Disposition that browsers and HTTP libraries send, read without
# Werkzeug's general parser (RFC 2231 names, escapes, IE paths), which takes the rest.
_DISPOSITION = re.compile(r'form-data; name="([^"\\%;]*)"(?:; filename="([^"\\%;]*)")?')


@dataclass
class Form:
    """Text fields and file contents by name; the first part wins for a repeated name,
    as with Werkzeug's ``MultiDict.get``."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def parse(body: bytes, boundary: str) -> Form | None:
    """The parts of *body*, or None when it is not in the plain shape this reads."""
    if not boundary or not boundary.isascii():
        return None
    dash = b"--" + boundary.encode("ascii")
    if not body.startswith(dash):
        return None
    form = Form()
    pos = len(dash)
    for _ in range(MAX_PARTS):
        if body.startswith(b"--", pos):  # the closing delimiter; the epilogue is ignored
            return form
        if not body.startswith(CRLF, pos):
            return None
        head_start = pos + 2
        head_end = body.find(CRLF + CRLF, pos)
        if head_end == -1:
            return None
        data_start = head_end + 4
        # The next dash-boundary must be a whole delimiter: CRLF before it and
        # "--" or CRLF after. Werkzeug would also split at looser ones, so one
        # anywhere else (headers included) means Werkzeug decides.
        nxt = body.find(dash, head_start)
        after = nxt + len(dash)
        if (nxt < data_start or body[nxt - 2:nxt] != CRLF
                or body[after:after + 2] not in (b"--", CRLF)):
            return None
        if not _add_part(form, body[head_start:head_end], body[data_start:nxt - 2]):
            return None
        pos = after
    return None


def _add_part(form: Form, head: bytes, data: bytes) -> bool:
    """File or field into *form*; False for a part this reader leaves to Werkzeug."""
    headers = _headers(head)
    if headers is None or "content-disposition" not in headers:
        return False
    plain = _DISPOSITION.fullmatch(headers["content-disposition"])
    if plain is not None:
        name, filename = plain.group(1, 2)
    else:
        _, options = parse_options_header(headers["content-disposition"])
        name, filename = options.get("name"), options.get("filename")
    if name is None:
        return False
    if filename is not None:
        form.files.setdefault(name, data)
        return True
    if len(data) > MAX_FIELD_BYTES or "content-type" in headers:
        return False
    form.fields.setdefault(name, data.decode("utf-8", "replace"))
    return True


def _headers(head: bytes) -> dict[str, str] | None:
    """Header lines by lower-cased name (first wins); None for folded or odd lines."""
    headers: dict[str, str] = {}
    for line in head.split(CRLF) if head else ():
        if not line or line[:1] in b" \t" or b"\r" in line or b"\n" in line:
            return None
        try:
            text = line.decode()
        except UnicodeDecodeError:
            return None
        name, sep, value = text.partition(":")
        if not sep:
            return None
        headers.setdefault(name.strip(" \t").lower(), value.strip(" \t"))
    return headers
