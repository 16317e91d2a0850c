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


def read_with(parser_class, body: bytes, boundary: str, content_length: int | None = -1,
              **limits):
    """What *parser_class* makes of *body*: (fields, files), or the exception's type."""
    parser = parser_class(lambda *args, **kwargs: io.BytesIO(), max_content_length=None,
                          **limits)
    try:
        _, form, files = parser.parse(
            io.BytesIO(body), "multipart/form-data",
            len(body) if content_length == -1 else content_length, {"boundary": boundary})
    except Exception as exc:  # compared: both parsers must fail the same way
        return type(exc)
    return ([(k, v) for k, v in form.items(multi=True)],
            [(k, f.filename, f.content_type, f.read()) for k, f in files.items(multi=True)])


def agree(body: bytes, boundary: str, **limits):
    ours = read_with(MultipartFormParser, body, boundary, **limits)
    assert ours == read_with(FormDataParser, body, boundary, **limits)
    return ours


names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
values = st.binary(max_size=200) | st.sampled_from(
    [b"", b"\r\n", b"--", b"\r\n--x", b"\xff\xfe", "café".encode("latin-1")])
forms = st.lists(st.tuples(names, st.none() | names.map(lambda n: n + ".png"), values),
                 max_size=5)
boundaries = st.text("abcdefghijklmnopqrstuvwxyz0123456789-'()+_,./:=? ", min_size=1,
                     max_size=40).map(str.strip).filter(bool)

# What clients other than browsers may send, each a way the two parsers could part.
odd_names = st.sampled_from(['a%22b', 'a%b', 'a b', 'a\\b', 'é', 'a;b', 'a=b', ''])
odd_headers = st.sampled_from([
    b"Content-Type: text/plain; charset=iso-8859-1\r\n",
    b"Content-Type: text/plain; charset*=UTF-8''iso-8859-1\r\n",
    b"Content-Type: image/png  \r\n",
    b"content-type: image/png\r\n",
    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Type: text/plain\r\n",
    b"X-Extra: 1\r\n",
    b"Content-Disposition: form-data; name=\"other\"\r\n",
])
odd_parts = st.lists(st.tuples(odd_names | names, st.none() | st.just("q.png") | odd_names,
                               values, st.lists(odd_headers, max_size=2)), min_size=1, max_size=3)
ends = st.sampled_from([b"", b"junk\r\n", b"x" * 70_000])
# Edits a client (or an attacker) might make to a good body: bytes left out or put in
# where the framing is, and bodies cut short.
edits = st.lists(st.tuples(st.sampled_from(["delete", "insert", "cut"]), st.integers(0, 10**6),
                           st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b" ", b"\x00"])),
                 max_size=3)


def odd_body(parts, boundary: str, preamble: bytes, epilogue: bytes) -> bytes:
    out = preamble
    for name, filename, data, headers in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
                + b"".join(headers) + b"\r\n" + data + b"\r\n")
    return out + f"--{boundary}--\r\n".encode() + epilogue


def edited(body: bytes, changes) -> bytes:
    for what, at, piece in changes:
        at %= len(body) + 1
        body = {"delete": body[:at] + body[at + 1:], "insert": body[:at] + piece + body[at:],
                "cut": body[:at]}[what]
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms.filter(bool), boundaries)
def test_a_browsers_form_takes_the_fast_path_to_werkzeugs_answer(form, boundary):
    form = [(n, f, d.replace(boundary.encode(), b"")) for n, f, d in form]
    body = body_of(form, boundary)
    assert plain_form(body, boundary, None, None) is not None
    agree(body, boundary)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_parts, boundaries, ends, ends, st.sampled_from([None, 0, 3]),
       st.sampled_from([None, 50, 200_000]))
def test_other_clients_bodies_read_as_werkzeug_reads_them(parts, boundary, preamble, epilogue,
                                                          max_parts, max_text):
    agree(odd_body(parts, boundary, preamble, epilogue), boundary,
          max_form_parts=max_parts, max_form_memory_size=max_text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms, boundaries, edits, st.sampled_from([None, 0, 3]), st.sampled_from([None, 50]))
def test_broken_bodies_read_as_werkzeug_reads_them(form, boundary, changes, max_parts,
                                                   max_text):
    agree(edited(body_of(form, boundary), changes), boundary,
          max_form_parts=max_parts, max_form_memory_size=max_text)


def test_a_browsers_form_is_read_whole():
    image = bytes(range(256)) * 64
    body = body_of([("k", None, b"5"), ("image", "q.png", image), ("note", None, b"")], "B")
    fields, files = plain_form(body, "B", max_parts=None, max_text=None)
    assert fields == [("k", "5"), ("note", "")]
    assert [(name, f.filename, f.content_type, f.read()) for name, f in files] == [
        ("image", "q.png", "application/octet-stream", image)]


GOOD = body_of([("k", None, b"5"), ("image", "q.png", b"IMG")], "B")


@pytest.mark.parametrize("body", [
    # Werkzeug's test client writes an empty field with no line break before the next
    # boundary; the push parser would read the next part into it.
    b'--B\r\nContent-Disposition: form-data; name="k"\r\n\r\n--B\r\n'
    b'Content-Disposition: form-data; name="image"; filename="q.png"\r\n\r\nIMG\r\n--B--\r\n',
    GOOD[:-9],  # cut short
    GOOD.replace(b'name="k"', b'name="k%22"'),  # Werkzeug reads %22 as a quote
    GOOD.replace(b'name="k"', b'name="k"\r\nContent-Type: text/plain; charset=latin-1'),
    GOOD.replace(b"Content-Type: application/octet-stream",
                 b"Content-Type: image/png\r\nContent-Type: image/gif"),  # Werkzeug: the first
    GOOD.replace(b"Content-Type: application/octet-stream", b"Content-Type: image/png  "),
    GOOD.replace(b"Content-Type: application/octet-stream", b"X-Extra: 1"),
    b"preamble\r\n" + GOOD,
    GOOD + b"epilogue",
])
def test_what_is_not_plain_goes_to_werkzeug(body):
    assert plain_form(body, "B", max_parts=None, max_text=None) is None
    agree(body, "B")


def test_a_preamble_or_epilogue_counts_against_the_text_limit_as_werkzeug_counts_it():
    assert agree(GOOD + b"x" * 600_000, "B",
                 max_form_memory_size=500_000) is RequestEntityTooLarge


def test_a_body_without_a_length_is_werkzeugs(monkeypatch):
    """Chunked: Werkzeug's stream ends at MAX_CONTENT_LENGTH with a 413 only as it reads."""
    monkeypatch.setattr("web.uploads.plain_form", lambda *args: pytest.fail("fast path"))
    assert (read_with(MultipartFormParser, GOOD, "B", content_length=None)
            == read_with(FormDataParser, GOOD, "B", content_length=None))


def test_the_limits_are_werkzeugs_413():
    many = body_of([(f"f{i}", None, b"1") for i in range(6)], "b")
    assert agree(many, "b", max_form_parts=6)[0][-1] == ("f5", "1")
    assert agree(many, "b", max_form_parts=5) is RequestEntityTooLarge
    long_text = body_of([("note", None, b"x" * 200_001)], "b")
    assert plain_form(long_text, "b", None, 200_000) is None  # the fast path's own check
    assert agree(long_text, "b", max_form_memory_size=200_000) is RequestEntityTooLarge


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
