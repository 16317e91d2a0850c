"""Hostile input against the JSON API: every request gets a 4xx JSON error or a valid 200.

Hypothesis generates bodies, uploads, parameters and ids; hand-made cases
cover what random bytes never hit: unusual pixel modes, markup posing as a
PNG, lying data URLs, path traversal. A 500, an exception escaping the
app, a non-JSON error or a malformed 200 fails the test. Bodies over the
limit and decompression bombs: tests/web/test_body_limits.py.
"""
from __future__ import annotations

import functools
import io
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ..synthetic import png_bytes as encoded
from .hostile import SECRETS, b64, check, error_code, post_json, sample, upload

# Damaged files make Pillow warn ("Truncated File Read", "Corrupt EXIF data"); expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


@pytest.fixture(scope="module")
def client(fuzz_client):
    """The fuzzed app's client, for the whole module (tests/web/conftest.py)."""
    return fuzz_client

# Sized so the module runs in well under a minute on two busy cores.
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=40)

# Subnormals off: the model sets flush-to-zero on this thread (Backend._prepare_thread),
# and hypothesis refuses to generate floats the CPU can no longer represent.
floats = st.floats(allow_subnormal=False)
TRAVERSAL = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
             "/etc/passwd", "file:///etc/passwd", "....//....//etc/passwd",
             "..\\..\\windows\\win.ini", "C:\\Windows\\win.ini", "\x00/etc/passwd",
             "~/.ssh/id_rsa", "/proc/self/environ"]

CONTENT_TYPES = ["application/json", "application/json; charset=latin-1", "multipart/form-data",
                 "multipart/form-data; boundary=xyz", "multipart/form-data; boundary=",
                 "multipart/mixed; boundary=xyz", "application/x-www-form-urlencoded",
                 "image/png", "image/svg+xml", "text/html", "text/plain",
                 "application/octet-stream", ""]
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xee", b"GIF89a",
              b"GIF87a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
              b"BM", b"II*\x00", b"MM\x00*", b"<svg", b"<?xml", b"%PDF-", b"P6\n"]


# -- images, good and bad ----------------------------------------------------------------------

@functools.cache
def unusual_images() -> dict[str, bytes]:
    """Every pixel mode and container oddity a query may come in; each must be searchable."""
    rgb = sample()
    grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
    alpha = rgb.copy()
    alpha.putalpha(Image.linear_gradient("L").resize(rgb.size))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    return {
        "cmyk-jpeg": encoded(rgb.convert("CMYK"), "JPEG"),
        "cmyk-tiff": encoded(rgb.convert("CMYK"), "TIFF"),
        "16-bit-png": encoded(Image.fromarray(grey), "PNG"),
        "16-bit-tiff": encoded(Image.fromarray(grey), "TIFF"),
        "float-tiff": encoded(Image.fromarray(grey.astype(np.float32) / 7.0), "TIFF"),
        "rgba-png": encoded(alpha, "PNG"),
        "la-png": encoded(alpha.convert("LA"), "PNG"),
        "palette-transparent-png": encoded(palette, "PNG", transparency=0),
        "palette-gif": encoded(palette, "GIF"),
        "1-bit-png": encoded(rgb.convert("1"), "PNG"),
        "1-bit-bmp": encoded(rgb.convert("1"), "BMP"),
        "rgba-webp": encoded(alpha, "WEBP"),
        "progressive-jpeg": encoded(rgb, "JPEG", progressive=True, quality=70),
        "exif-rotated-jpeg": rotated_jpeg(rgb),
        "tiny-1x1-png": encoded(Image.new("RGB", (1, 1), "red"), "PNG"),
        "wide-4000x1-png": encoded(Image.new("L", (4000, 1), 200), "PNG"),
        "multipage-tiff": encoded(rgb, "TIFF", save_all=True, append_images=[sample("square")]),
    }


def rotated_jpeg(img: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(img, "JPEG", exif=exif.tobytes())


VALID = {"png": encoded(sample(), "PNG"), "jpeg": encoded(sample(), "JPEG"),
         "gif": encoded(sample(), "GIF"), "webp": encoded(sample(), "WEBP"),
         "bmp": encoded(sample(), "BMP"), "tiff": encoded(sample(), "TIFF")}


# -- generated: bodies, uploads, JSON, parameters, ids -------------------------------------------

@FUZZ
@given(body=st.binary(max_size=3000), content_type=st.sampled_from(CONTENT_TYPES))
def test_any_body_with_any_content_type(client, body, content_type):
    check(client.post("/api/search", data=body, content_type=content_type))


upload_bytes = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda sig, rest: sig + rest, st.sampled_from(SIGNATURES), st.binary(max_size=2000)))


@FUZZ
@given(data=upload_bytes, name=st.text(max_size=80),
       mimetype=st.sampled_from([None, "image/png", "image/jpeg", "text/html", "image/svg+xml",
                                 "application/octet-stream"]))
def test_any_upload(client, data, name, mimetype):
    check(upload(client, data, name or "x", mimetype))


@st.composite
def damaged_images(draw_):
    """A valid image of some type, cut short and/or with a few bytes overwritten."""
    data = bytearray(VALID[draw_(st.sampled_from(sorted(VALID)))])
    for _ in range(draw_(st.integers(0, 6))):
        at = draw_(st.integers(0, len(data) - 1))
        data[at] = draw_(st.integers(0, 255))
    cut = draw_(st.one_of(st.none(), st.integers(0, len(data))))
    return bytes(data[:cut])


@settings(FUZZ, max_examples=300)
@given(data=damaged_images())
def test_damaged_images(client, data):
    response = upload(client, data)
    check(response)
    assert response.status_code in (200, 400, 413, 415)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12)
search_fields = st.fixed_dictionaries({}, optional={
    "image_base64": st.one_of(json_values, st.sampled_from(
        [b64(VALID["png"]), "data:image/png;base64," + b64(VALID["gif"])])),
    "k": json_values, "reconstruction": json_values, "denoise": json_values})


@FUZZ
@given(body=st.one_of(json_values, search_fields))
def test_any_json(client, body):
    check(post_json(client, body))


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(["data:", "data:image/png;base64,", "data:;base64,", "data:text/html,",
                     "data:image/png;base64", " data:image/png;base64,"]),
    st.text(alphabet="ABCDabcd0123+/-_=%., \n\t", max_size=200))))
def test_any_base64_text(client, text):
    check(post_json(client, {"image_base64": text}))


parameter = st.one_of(st.text(max_size=30), st.integers(), floats, st.booleans(),
                      st.sampled_from(TRAVERSAL + ["1e3", "-1", "0", "101", "3.5", "0x10", "٣",
                                                   "１", " 5 ", "5\x00", "NaN", "inf"]))


@FUZZ
@given(k=parameter, flag=parameter,
       where=st.sampled_from(["form", "query", "json"]))
def test_any_k_and_flags(client, catalog_ids, k, flag, where):
    fields = {"k": k, "reconstruction": flag, "denoise": flag}
    if where == "json":
        response = post_json(client, {"image_base64": b64(VALID["png"]), **fields})
    elif where == "query":
        query = "&".join(f"{name}={quote(str(value), safe='')}" for name, value in fields.items())
        response = client.post(f"/api/search?{query}", data={"image": (io.BytesIO(
            VALID["png"]), "q.png")}, content_type="multipart/form-data")
    else:
        response = upload(client, VALID["png"], **{n: str(v) for n, v in fields.items()})
    body = check(response)
    if response.status_code == 200:
        assert len(body["results"]) == min(body["k"], len(catalog_ids))
    else:
        assert error_code(response) == "bad_parameter"


ID_URLS = ["/api/images/{}", "/api/images/{}/similar", "/images/{}/thumbnail",
           "/images/{}/reconstruction", "/images/{}/original"]
weird_ids = st.one_of(st.text(min_size=1, max_size=40), st.integers().map(str),
                      st.integers(0, 40).map(str), st.sampled_from(TRAVERSAL))


@settings(FUZZ, max_examples=250)
@given(raw=weird_ids, url=st.sampled_from(ID_URLS), k=st.one_of(st.none(), parameter))
def test_any_id(client, raw, url, k):
    path = url.format(quote(raw, safe=""))
    query = "" if k is None else f"?k={quote(str(k), safe='')}"
    check(client.get(path + query), image_ok=True)


@FEW
@given(raw=st.sampled_from(TRAVERSAL), method=st.sampled_from(["get", "post", "delete", "put"]),
       url=st.sampled_from(ID_URLS + ["/api/admin/images/{}", "/static/{}", "/{}",
                                      "/api/{}", "/images/{}"]))
def test_traversal_in_any_url(client, raw, method, url):
    """Raw (unquoted) traversal strings, as a client could send them, never reach a file."""
    response = getattr(client, method)(url.format(raw))
    assert response.status_code in (400, 401, 403, 404, 405), response.status_code
    assert not any(secret in response.get_data() for secret in SECRETS)


# -- hand-made cases -------------------------------------------------------------------------------

def test_empty_upload_is_400(client):
    assert error_code(upload(client, b"")) == "bad_image"
    assert error_code(post_json(client, {"image_base64": ""})) == "bad_image"
    assert error_code(client.post("/api/search", data=b"",
                                  content_type="application/json")) == "bad_request"


@pytest.mark.parametrize("fmt", sorted(VALID))
@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.7, 0.97])
def test_truncated_images(client, fmt, fraction):
    data = VALID[fmt]
    response = upload(client, data[:max(1, int(len(data) * fraction))])
    check(response)
    assert response.status_code in (200, 400, 415)  # some formats decode a partial image


@pytest.mark.parametrize("name", sorted(unusual_images()))
def test_unusual_images_are_searched(client, name):
    response = upload(client, unusual_images()[name])
    body = check(response)
    assert response.status_code == 200 and body["results"], name


@pytest.mark.parametrize("markup", [
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9"/></svg>',
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
    b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
    b"<html><img src=x onerror=alert(1)></html>",
])
def test_markup_posing_as_a_png_is_415(client, markup):
    assert error_code(upload(client, markup, "photo.png", "image/png")) \
        == "unsupported_media_type"
    assert error_code(post_json(client, {"image_base64": "data:image/png;base64," + b64(markup)})) \
        == "unsupported_media_type"


def test_data_url_mime_type_is_not_trusted(client):
    """The bytes decide, never a declared type: a GIF labelled text/html is still a GIF."""
    response = post_json(client, {"image_base64": "data:text/html;base64," + b64(VALID["gif"])})
    assert check(response)["query"]["format"] == "GIF"
    assert error_code(post_json(client, {"image_base64": "data:image/png," + b64(VALID["png"])})) \
        == "bad_request"  # a data URL that is not base64


@pytest.mark.parametrize("value", [None, 7, 1.5, True, [b64(VALID["png"])],
                                   {"data": b64(VALID["png"])}, "====", "a", "ab=c", "é",
                                   "data:image/png;base64,!!!!", "../../etc/passwd",
                                   "file:///etc/passwd"])
def test_bad_base64_is_400(client, value):
    assert error_code(post_json(client, {"image_base64": value})) == "bad_request"


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe{}", b"{}" * 9,
                                  b'{"image_base64": "AAAA", "k": NaN}', b"nul", b"1e999999"])
def test_malformed_json_is_400(client, body):
    response = client.post("/api/search", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data()[:200]
    check(response)


@pytest.mark.parametrize("k", ["0", "-1", "101", "1000000", "9" * 40, "3.5", "1e2", "abc", "",
                               " ", "2,3", "0x10", "../../etc/passwd", "１０"])
def test_bad_k_in_every_place(client, catalog_ids, k):
    expected = 200 if k == "" else 400  # empty means "the default"
    assert upload(client, VALID["png"], k=k).status_code == expected
    response = client.post(f"/api/search?k={quote(k)}", data={"image": (io.BytesIO(
        VALID["png"]), "q.png")}, content_type="multipart/form-data")
    assert response.status_code == expected
    assert check(client.get(f"/api/images/{catalog_ids[0]}/similar?k={quote(k)}")) is not None
    if expected == 400:
        assert error_code(client.get(f"/api/images/{catalog_ids[0]}/similar?k={quote(k)}")) \
            == "bad_parameter"


@pytest.mark.parametrize("k", [0, -1, 101, 10**30, 3.5, 1e308, float("nan"), True, "3.0", [3],
                               {"k": 3}])
def test_bad_k_in_json(client, k):
    response = post_json(client, {"image_base64": b64(VALID["png"]), "k": k})
    assert error_code(response) == "bad_parameter"


@pytest.mark.parametrize("value", TRAVERSAL)
def test_traversal_in_every_field(client, catalog_ids, value):
    """Paths in file names, fields, JSON keys and ids are data, never opened."""
    good = upload(client, VALID["png"], name=value)
    assert check(good)["results"]  # the name of an upload is ignored
    for field in ("k", "reconstruction", "denoise"):
        assert error_code(upload(client, VALID["png"], **{field: value})) == "bad_parameter"
        assert error_code(post_json(client, {"image_base64": b64(VALID["png"]), field: value})) \
            == "bad_parameter"
    # '/etc/passwd' is valid base64 of some bytes, which are no image
    assert error_code(post_json(client, {"image_base64": value})) in (
        "bad_request", "unsupported_media_type")
    assert check(post_json(client, {"image_base64": b64(VALID["png"]), value: value}))
    response = client.post("/api/search", data={value: (io.BytesIO(VALID["png"]), value)},
                           content_type="multipart/form-data")
    assert error_code(response) == "bad_request"  # no field named 'image'
    for url in ID_URLS:
        assert check(client.get(url.format(quote(value, safe=""))), image_ok=True)


def test_a_doubled_slash_is_a_json_404_not_a_redirect(client):
    """An id of "0/" escaped makes "//" in the path: no HTML redirect, a JSON answer."""
    for path in ("/api/images/0%2F/similar", "/api/images/0//similar", "/images/1//thumbnail"):
        assert error_code(client.get(path)) == "not_found", path
