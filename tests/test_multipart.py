"""The in-memory multipart reader (web.multipart) against Werkzeug's parser.

Where the fast reader answers, it must answer exactly what Werkzeug
would; where a body is not in its plain shape it must decline (None) so
that Werkzeug decides. Hypothesis builds bodies from parts with hostile
data (CRLFs, dashes, pieces of the boundary) and then bends them the ways
real clients and attackers do: preambles, bare LF line breaks, padding
after a boundary, folded headers, missing closing delimiters, truncation.
"""
from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.formparser import MultiPartParser

from web import multipart

BOUNDARY_CHARS = "abcXYZ019-_'()+,./:=?"
names = st.sampled_from(["image", "k", "reconstruction", "denoise", "x", "", "ima\"ge", "é",
                         "a%22b", "a\\b", "a;b", "k*", "C:\\dir\\k"])
part_data = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from([b"\r\n", b"--", b"-", b"\r", b"\n", b"a", b"\x00", b"\xff",
                              b"BOUND", b"--BOUND", b"\r\n--BOUND", b"--BOUND--"]),
             max_size=12).map(b"".join),
)


@st.composite
def parts(draw):
    name = draw(names)
    disposition = 'form-data; name="%s"' % name.replace('"', '\\"')
    is_file = draw(st.booleans())
    if is_file:
        disposition += '; filename="%s"' % draw(st.sampled_from(
            ["q.png", "", "a b.jpg", "C:\\Users\\q.png", "100%.png", "a;b.png", "é.png"]))
    if draw(st.integers(0, 6)) == 0:
        disposition = disposition.replace("; ", ";", 1).replace("form-data", "Form-Data")
    headers = [("Content-Disposition", disposition)]
    if draw(st.booleans()):
        headers.append(("Content-Type", draw(st.sampled_from(
            ["image/png", "text/plain; charset=latin-1", "application/octet-stream"]))))
    if draw(st.integers(0, 5)) == 0:
        headers.reverse()
    return headers, draw(part_data)


@st.composite
def bodies(draw):
    boundary = draw(st.text(BOUNDARY_CHARS, min_size=1, max_size=40))
    items = draw(st.lists(parts(), max_size=5))
    raw = b""
    for headers, data in items:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
        raw += b"--" + boundary.encode() + b"\r\n" + head + b"\r\n"
        raw += data.replace(b"BOUND", boundary.encode()) + b"\r\n"
    raw += b"--" + boundary.encode() + b"--\r\n"
    mutation = draw(st.sampled_from(["none"] * 4 + [
        "preamble", "lf", "padding", "fold", "truncate", "no_close", "epilogue", "case"]))
    if mutation == "preamble":
        raw = b"some preamble\r\n" + raw
    elif mutation == "lf":
        raw = raw.replace(b"\r\n", b"\n")
    elif mutation == "padding":
        raw = raw.replace(boundary.encode() + b"\r\n", boundary.encode() + b" \t\r\n", 1)
    elif mutation == "fold":
        raw = raw.replace(b"Content-Disposition: form-data;", b"Content-Disposition: form-data;"
                          b"\r\n ", 1)
    elif mutation == "truncate":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif mutation == "no_close":
        raw = raw[:-len(boundary) - 6]
    elif mutation == "epilogue":
        raw += b"trailing epilogue --" + boundary.encode()
    elif mutation == "case":
        raw = raw.replace(b"Content-Disposition", b"content-DISPOSITION")
    return boundary, raw


def werkzeug_parse(boundary: str, body: bytes) -> tuple[dict, dict] | None:
    """What Flask would see: first value per name; None where Werkzeug rejects the body."""
    try:
        form, files = MultiPartParser(max_form_memory_size=500_000).parse(
            io.BytesIO(body), boundary.encode("ascii"), len(body))
    except ValueError:
        return None
    return ({k: form.get(k) for k in form}, {k: files.get(k).read() for k in files})


@settings(max_examples=600, deadline=None)
@given(bodies())
def test_fast_reader_agrees_with_werkzeug_or_declines(case):
    boundary, body = case
    fast = multipart.parse(body, boundary)
    if fast is None:
        return
    assert werkzeug_parse(boundary, body) == (fast.fields, fast.files)


def test_plain_browser_body_is_read_without_werkzeug():
    """The shape Chrome, Firefox, curl and requests send is the one the reader handles."""
    boundary = "----WebKitFormBoundaryT1r2c3w4X5y6Z7a8"
    png = b"\x89PNG\r\n\x1a\n\r\n--not-a-boundary\r\n" + bytes(range(256))
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n7\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"shoe.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += png + f"\r\n--{boundary}--\r\n".encode()
    fast = multipart.parse(body, boundary)
    assert fast is not None
    assert fast.fields == {"k": "7"} and fast.files == {"image": png}
    assert werkzeug_parse(boundary, body) == (fast.fields, fast.files)


def test_unusual_shapes_are_left_to_werkzeug():
    ok = b'--b\r\nContent-Disposition: form-data; name="k"\r\n\r\n3\r\n--b--\r\n'
    assert multipart.parse(ok, "b") is not None
    for body, boundary in [
        (b"preamble\r\n" + ok, "b"),                      # text before the first boundary
        (ok.replace(b"\r\n", b"\n"), "b"),                # bare LF line breaks
        (ok.replace(b"--b\r\n", b"--b  \r\n"), "b"),      # transport padding
        (ok[:-8], "b"),                                   # no closing delimiter
        (ok, "é"),                                        # a boundary that is not ASCII
        (ok, ""),                                         # no boundary
        (ok.replace(b"3\r\n", b"x" * 2000 + b"\r\n"), "b"),  # a big text field: form limits
        (ok.replace(b"\r\n\r\n3", b"\r\n\r\n3\n--b\n"), "b"),  # a looser delimiter inside data
    ]:
        assert multipart.parse(body, boundary) is None, body
