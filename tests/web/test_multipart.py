"""Multipart bodies (``web.uploads.MultipartFormParser``): every body reads as Werkzeug's own
parser reads it (the fast path only answers when it reads the body plainly), in memory, with
Werkzeug's answers to bodies that are broken or too big."""
from __future__ import annotations

import io

import pytest
from flask import Flask, jsonify, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from web.errors import register_error_handlers
from web.uploads import InMemoryRequest, MultipartFormParser, plain_form

from .conftest import assert_error


def body_of(parts: list[tuple[str, str | None, bytes]], boundary: str) -> bytes:
    """A form as browsers send it: (name, filename or None for a text field, bytes)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def read_with(parser_class, body: bytes, boundary: str, **limits):
    """What *parser_class* makes of *body*: (fields, files), or the exception's type."""
    parser = parser_class(lambda *args, **kwargs: io.BytesIO(), max_content_length=None,
                          **limits)
    try:
        _, form, files = parser.parse(io.BytesIO(body), "multipart/form-data", len(body),
                                      {"boundary": boundary})
    except Exception as exc:  # compared: both parsers must fail the same way
        return type(exc)
    return ([(k, v) for k, v in form.items(multi=True)],
            [(k, f.filename, f.read()) for k, f in files.items(multi=True)])


names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
values = st.binary(max_size=200) | st.sampled_from([b"", b"\r\n", b"--", b"\r\n--x", b"\xff\xfe"])
forms = st.lists(st.tuples(names, st.none() | names.map(lambda n: n + ".png"), values),
                 max_size=5)
boundaries = st.text("abcdefghijklmnopqrstuvwxyz0123456789-'()+_,./:=? ", min_size=1,
                     max_size=40).map(str.strip).filter(bool)
# Edits a client (or an attacker) might make to a good body: bytes left out or put in
# where the framing is, and bodies cut short.
edits = st.lists(st.tuples(st.sampled_from(["delete", "insert", "cut"]), st.integers(0, 10**6),
                           st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b" ", b"\x00"])),
                 max_size=3)


def edited(body: bytes, changes) -> bytes:
    for what, at, piece in changes:
        at %= len(body) + 1
        body = {"delete": body[:at] + body[at + 1:], "insert": body[:at] + piece + body[at:],
                "cut": body[:at]}[what]
    return body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms, boundaries, edits, st.sampled_from([None, 0, 3]), st.sampled_from([None, 50]))
def test_every_body_reads_as_werkzeug_reads_it(form, boundary, changes, max_parts, max_text):
    body = edited(body_of(form, boundary), changes)
    limits = {"max_form_parts": max_parts, "max_form_memory_size": max_text}
    assert (read_with(MultipartFormParser, body, boundary, **limits)
            == read_with(FormDataParser, body, boundary, **limits))


def test_a_browsers_form_takes_the_fast_path():
    image = bytes(range(256)) * 64
    body = body_of([("k", None, b"5"), ("image", "q.png", image), ("note", None, b"")], "B")
    fields, files = plain_form(body, "B", max_parts=None, max_text=None)
    assert fields == [("k", "5"), ("note", "")]
    assert [(name, f.filename, f.read()) for name, f in files] == [("image", "q.png", image)]


@pytest.mark.parametrize("body", [
    # Werkzeug's test client writes an empty field with no line break before the next
    # boundary; the push parser would read the next part into it.
    b'--B\r\nContent-Disposition: form-data; name="k"\r\n\r\n--B\r\n'
    b'Content-Disposition: form-data; name="image"; filename="q.png"\r\n\r\nIMG\r\n--B--\r\n',
    body_of([("image", "q.png", b"IMG")], "B")[:-9],  # cut short
    body_of([("k", None, "é".encode("latin-1"))], "B").replace(
        b'name="k"', b'name="k"\r\nContent-Type: text/plain; charset=latin-1'),
])
def test_what_is_not_plain_goes_to_werkzeug(body):
    assert plain_form(body, "B", max_parts=None, max_text=None) is None
    assert read_with(MultipartFormParser, body, "B") == read_with(FormDataParser, body, "B")


def test_the_limits_are_werkzeugs_413():
    many = body_of([(f"f{i}", None, b"1") for i in range(6)], "b")
    assert read_with(MultipartFormParser, many, "b", max_form_parts=6)[0][-1] == ("f5", "1")
    assert read_with(MultipartFormParser, many, "b", max_form_parts=5) is RequestEntityTooLarge
    long_text = body_of([("note", None, b"x" * 101)], "b")
    assert read_with(MultipartFormParser, long_text, "b",
                     max_form_memory_size=100) is RequestEntityTooLarge


@pytest.fixture
def echo():
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config.update(MAX_FORM_PARTS=4, MAX_FORM_MEMORY_SIZE=200_000)
    register_error_handlers(app)

    @app.post("/api/echo")
    def echo_form():
        files = {k: [f.filename, len(f.read()), type(f.stream).__name__]
                 for k, f in request.files.items()}
        return jsonify(form=request.form.to_dict(), files=files)

    return app.test_client()


def post(client, body: bytes, boundary: str):
    return client.post("/api/echo", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def test_the_app_keeps_uploads_in_memory_and_answers_its_limits_in_json(echo):
    image = bytes(range(256)) * 4096  # 1 MB: Werkzeug would have spooled it to a file
    reply = post(echo, body_of([("k", None, b"5"), ("image", "q.png", image)], "B0"), "B0")
    assert reply.status_code == 200
    assert reply.json == {"form": {"k": "5"},
                          "files": {"image": ["q.png", len(image), "BytesIO"]}}
    too_many = body_of([(f"f{i}", None, b"1") for i in range(5)], "B1")
    assert_error(post(echo, too_many, "B1"), 413, "too_large")
    long_text = body_of([("k", None, b"9" * 200_001)], "B2")
    assert plain_form(long_text, "B2", 4, 200_000) is None  # Werkzeug says what is wrong
    assert_error(post(echo, long_text, "B2"), 413, "too_large")
