"""Hostile input against the JSON API: every request gets a 4xx JSON error or a valid 200.

Hypothesis generates bodies, uploads, parameters and ids; hand-made cases
cover what random bytes never hit: decompression bombs, a 1,000-frame GIF,
unusual pixel modes, markup posing as a PNG, path traversal, bodies over
the limit (through the test client, and streamed to a real waitress
server). A 500, an exception escaping the app, a non-JSON error or a
malformed 200 fails the test; so does a bomb that makes the process grow.
"""
from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import os
import resource
import select
import socket
import struct
import threading
import zlib
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from web import create_app

try:
    from tests.webfixtures import HOSTILE_NAME, Library, build_library, draw, png_claiming_pixels
except ImportError:  # tests/ is not a package: pytest put the folder itself on sys.path
    from webfixtures import (HOSTILE_NAME, Library, build_library, draw,  # type: ignore
                             png_claiming_pixels)

# Damaged files make Pillow warn ("Truncated File Read", "Corrupt EXIF data"); expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

MB = 1024 * 1024
LIMIT = 512 * 1024  # the test apps' MAX_CONTENT_LENGTH; one app uses a far smaller one
SMALL_LIMIT = 4096

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
SECRETS = (b"root:", b"[fonts]", b"PATH=")  # what a leaked file would contain

CONTENT_TYPES = ["application/json", "application/json; charset=latin-1", "multipart/form-data",
                 "multipart/form-data; boundary=xyz", "multipart/form-data; boundary=",
                 "multipart/mixed; boundary=xyz", "application/x-www-form-urlencoded",
                 "image/png", "image/svg+xml", "text/html", "text/plain",
                 "application/octet-stream", ""]
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xee", b"GIF89a",
              b"GIF87a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
              b"BM", b"II*\x00", b"MM\x00*", b"<svg", b"<?xml", b"%PDF-", b"P6\n"]


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def clean_process_state():
    """No LOOKALIKE_* setting from the shell; torch's and FAISS's thread counts restored after.

    The apps here use one inference thread (ten times faster on a busy
    two-core box than torch's default), which is process-wide state.
    """
    import faiss
    import torch

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LOOKALIKE_")}
    threads, omp = torch.get_num_threads(), faiss.omp_get_max_threads()
    yield
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(omp)
    os.environ.update(saved)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("fuzz"), per_class=8,
                         extra={HOSTILE_NAME: "circle"})


def make_client(library: Library, **settings_):
    app = create_app({"TESTING": True, "LOOKALIKE_DATA_DIR": str(library.data_dir),
                      "LOOKALIKE_INFERENCE_THREADS": 1, "MAX_CONTENT_LENGTH": LIMIT,
                      **settings_})
    return app, app.test_client()


@pytest.fixture(scope="module")
def client(library):
    app, client = make_client(library)
    yield client
    app.extensions["lookalike"].close()


@pytest.fixture(scope="module")
def small_client(library):
    app, client = make_client(library, MAX_CONTENT_LENGTH=SMALL_LIMIT)
    yield client
    app.extensions["lookalike"].close()


@pytest.fixture(scope="module")
def ids(library) -> list[int]:
    from search.store import Store

    return sorted(Store.open(library.data_dir).catalog_ids())


# -- what every answer must look like --------------------------------------------------------------

def check(response, image_ok: bool = False) -> dict[str, Any] | None:
    """A 200 (JSON results, or an image when *image_ok*) or a 4xx JSON error; else fail."""
    status = response.status_code
    data = response.get_data()
    assert status < 500, data[:500]
    assert not any(secret in data for secret in SECRETS)
    if status in (200, 304) and image_ok and response.mimetype.startswith("image/"):
        return None
    assert response.mimetype == "application/json", (status, response.mimetype, data[:200])
    body = json.loads(data)
    if status == 200:
        check_results(body)
        return body
    assert 400 <= status < 500, status
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def check_results(body: dict[str, Any]) -> None:
    """A search or similar answer: a k, a query, at most k well-formed hits."""
    if "results" not in body:  # GET /api/images/<id>
        assert isinstance(body["id"], int) and isinstance(body["name"], str)
        return
    assert set(body) == {"query", "k", "results"}
    assert isinstance(body["k"], int) and 1 <= body["k"] <= 100
    assert len(body["results"]) <= body["k"]
    for hit in body["results"]:
        assert isinstance(hit["id"], int) and isinstance(hit["name"], str)
        assert isinstance(hit["similarity"], float) and -1.001 <= hit["similarity"] <= 1.001


def error_code(response) -> str:
    body = check(response)
    assert body is not None and "error" in body, body
    return body["error"]["code"]


def upload(client, data: bytes, name: str = "query.png", mimetype: str | None = None,
           **fields):
    file = (io.BytesIO(data), name, mimetype) if mimetype else (io.BytesIO(data), name)
    return client.post("/api/search", data={"image": file, "reconstruction": "false", **fields},
                       content_type="multipart/form-data")


def post_json(client, body: Any, **kwargs):
    return client.post("/api/search", data=json.dumps(body), content_type="application/json",
                       **kwargs)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- images, good and bad ----------------------------------------------------------------------

def sample(kind: str = "circle", seed: int = 0, size: int = 48) -> Image.Image:
    return draw(kind, np.random.default_rng(seed), size)


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


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


def flat_png(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG of one flat colour, built a row at a time: megapixels in a few KB, cheaply."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + bytes((width * channels * bit_depth + 7) // 8)
    squeeze = zlib.compressobj(9)
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body)
            + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def many_frame_gif(frames: int = 1000) -> bytes:
    """An animated GIF whose consecutive frames differ, so none are merged away."""
    images = [Image.new("L", (32, 32), (i * 37) % 256) for i in range(frames)]
    return encoded(images[0], "GIF", save_all=True, append_images=images[1:], duration=10)


# -- peak memory -----------------------------------------------------------------------------------

def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise KeyError(key)


def peak_growth(action: Callable[[], Any]) -> tuple[Any, int]:
    """(*action*'s result, bytes the process's peak RSS rose by while it ran).

    Linux lets a process reset its own high-water mark (clear_refs 5), so
    the peak is measured from now; elsewhere ru_maxrss only shows growth
    past the process's earlier peak, a weaker check.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kb("VmRSS:")
        result = action()
        return result, max(0, _status_kb("VmHWM:") - before) * 1024
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = action()
        return result, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024


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
def test_any_k_and_flags(client, ids, k, flag, where):
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
        assert len(body["results"]) == min(body["k"], len(ids))
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


def test_gif_with_a_thousand_frames(client):
    data = many_frame_gif(1000)
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == 1000
    response, growth = peak_growth(lambda: upload(client, data))
    body = check(response)
    assert response.status_code == 200 and body["query"]["format"] == "GIF"
    assert growth < 64 * MB  # only the first frame is decoded


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
def test_bad_k_in_every_place(client, ids, k):
    expected = 200 if k == "" else 400  # empty means "the default"
    assert upload(client, VALID["png"], k=k).status_code == expected
    response = client.post(f"/api/search?k={quote(k)}", data={"image": (io.BytesIO(
        VALID["png"]), "q.png")}, content_type="multipart/form-data")
    assert response.status_code == expected
    assert check(client.get(f"/api/images/{ids[0]}/similar?k={quote(k)}")) is not None
    if expected == 400:
        assert error_code(client.get(f"/api/images/{ids[0]}/similar?k={quote(k)}")) \
            == "bad_parameter"


@pytest.mark.parametrize("k", [0, -1, 101, 10**30, 3.5, 1e308, float("nan"), True, "3.0", [3],
                               {"k": 3}])
def test_bad_k_in_json(client, k):
    response = post_json(client, {"image_base64": b64(VALID["png"]), "k": k})
    assert error_code(response) == "bad_parameter"


@pytest.mark.parametrize("value", TRAVERSAL)
def test_traversal_in_every_field(client, ids, value):
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


@pytest.mark.parametrize("kind", ["multipart", "json", "raw"])
def test_body_over_the_limit_is_413(small_client, kind):
    data = encoded(Image.fromarray(np.random.default_rng(0).integers(
        0, 256, (64, 64, 3), np.uint8)), "PNG")
    assert len(data) > SMALL_LIMIT
    if kind == "multipart":
        response = upload(small_client, data)
    elif kind == "json":
        response = post_json(small_client, {"image_base64": b64(data)})
    else:  # refused for its type before its length matters: the body is never read
        response = small_client.post("/api/search", data=data, content_type="image/png")
    assert error_code(response) in (("too_large", "unsupported_media_type") if kind == "raw"
                                    else ("too_large",))


def test_a_400_megapixel_bomb_is_refused_without_growing(client):
    bomb = png_claiming_pixels(20_000, 20_000)
    assert len(bomb) < 2000
    response, growth = peak_growth(lambda: upload(client, bomb))
    assert error_code(response) == "too_large"
    assert "pixels" in response.get_json()["error"]["message"]
    assert growth < 32 * MB


BUDGET = 48 * MB


@pytest.fixture(scope="module")
def budget_client(library):
    app, client = make_client(library, LOOKALIKE_MAX_DECODE_BYTES=BUDGET)
    yield client
    app.extensions["lookalike"].close()


# (bit depth, PNG colour type, Pillow mode): the cheapest and the costliest modes to decode
MODES = [(1, 0, "1"), (8, 2, "RGB"), (8, 6, "RGBA"), (16, 0, "I;16")]


@pytest.mark.parametrize("bits,colour,mode", MODES)
def test_images_under_the_decode_budget_stay_in_it(budget_client, bits, colour, mode):
    """Uploads just under the memory budget decode within it; just over, they are refused
    before decoding, however few bytes they are."""
    from web.uploads import _DECODE_COST

    per_pixel = _DECODE_COST.get(mode, 32)
    side = int((BUDGET / per_pixel) ** 0.5)
    under, over = flat_png(side - 8, side - 8, bits, colour), flat_png(side + 8, side + 8,
                                                                        bits, colour)
    assert Image.open(io.BytesIO(under)).mode == mode
    response, growth = peak_growth(lambda: upload(budget_client, under))
    assert response.status_code == 200, response.get_data()[:300]
    assert growth < BUDGET + 32 * MB
    response, growth = peak_growth(lambda: upload(budget_client, over))
    assert error_code(response) == "too_large"
    assert "megapixels" in response.get_json()["error"]["message"]
    assert growth < 16 * MB


def test_default_budget_refuses_a_small_upload_that_is_costly_to_decode(client):
    """A 30 KB 16-bit PNG of 16 megapixels (far under the indexer's 64 Mpx limit) would
    take ~450 MB to decode; the default budget refuses it untouched."""
    data = flat_png(4000, 4000, 16, 0)
    assert len(data) < 64 * 1024
    response, growth = peak_growth(lambda: upload(client, data))
    assert error_code(response) == "too_large"
    assert growth < 32 * MB


# -- a real server: bodies streamed past the limit -------------------------------------------------

@pytest.fixture(scope="module")
def served(library):
    """The app under waitress with ``lookalike serve``'s body cap, on 127.0.0.1, in a thread."""
    from waitress import create_server

    from web.cli.serving import server_limits

    app, _ = make_client(library, MAX_CONTENT_LENGTH=256 * 1024)
    server = create_server(app, host="127.0.0.1", port=0, threads=2,
                           **server_limits(app.config["MAX_CONTENT_LENGTH"]))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server.effective_port
    server.close()
    thread.join(timeout=5)
    app.extensions["lookalike"].close()


def stream(port: int, head: dict[str, str], chunks, chunked: bool,
           path: str = "/api/search") -> tuple[int, dict[str, str], bytes]:
    """POST *chunks* one at a time, stopping as soon as the server answers; its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in
                                                             head.items())]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered early
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed its side: read its answer
        return _read_response(sock)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            block = sock.recv(65536)
            if not block:
                break
            data += block
    except OSError:
        pass  # a reset after the answer arrived
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def multipart_head(total: int | None) -> tuple[dict[str, str], bytes, bytes]:
    """Headers, and the opening and closing of a multipart body around an 'image' part."""
    boundary = "fuzz-boundary"
    opening = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
               f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    closing = f"\r\n--{boundary}--\r\n".encode()
    head = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if total is not None:
        head["Content-Length"] = str(total)
    return head, opening, closing


def test_streamed_body_over_the_limit_gets_the_json_413(served):
    payload = 384 * 1024  # over the app's 256 KB, under waitress's cap of twice that
    head, opening, closing = multipart_head(None)
    head["Content-Length"] = str(len(opening) + payload + len(closing))
    chunks = [opening, *([b"\x89PNG" + bytes(16 * 1024 - 4)] * (payload // (16 * 1024))), closing]
    status, headers, body = stream(served, head, chunks, chunked=False)
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "too_large"


@pytest.mark.parametrize("chunked", [True, False])
def test_streamed_body_far_over_the_limit_is_cut_off(served, chunked):
    """100 MB announced (or chunked without end): refused without reading it all."""
    head, opening, _ = multipart_head(None if chunked else 100 * MB)
    block = bytes(64 * 1024)
    sent = []

    def chunks():
        yield opening
        for _ in range(100 * MB // len(block)):
            sent.append(len(block))
            yield block

    status, _, _ = stream(served, head, chunks(), chunked=chunked)
    assert status == 413
    assert sum(sent) < 100 * MB  # the server answered before the client was done
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=30)
    connection.request("GET", "/healthz")  # and it still serves
    assert connection.getresponse().status == 200
    connection.close()


def test_big_upload_stays_in_memory_under_lookalike_serve_limits(library, monkeypatch):
    """waitress spools bodies over 512 KB to a temp file unless told otherwise; uploads
    must never touch the disk, so ``lookalike serve`` keeps them in memory up to its cap."""
    import waitress.buffers
    from waitress import create_server

    from web.cli.serving import server_limits

    spooled = []
    real_newfile = waitress.buffers.TempfileBasedBuffer.newfile

    def newfile(self):
        spooled.append(True)
        return real_newfile(self)

    monkeypatch.setattr(waitress.buffers.TempfileBasedBuffer, "newfile", newfile)
    noise = np.random.default_rng(3).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "PNG", compress_level=0)
    png = out.getvalue()
    assert len(png) > 1 * MB  # well past waitress's 512 KB spooling threshold

    app, _ = make_client(library, MAX_CONTENT_LENGTH=2 * MB)
    server = create_server(app, host="127.0.0.1", port=0, threads=1,
                           **server_limits(app.config["MAX_CONTENT_LENGTH"]))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        head, opening, closing = multipart_head(None)
        head["Content-Length"] = str(len(opening) + len(png) + len(closing))
        status, _, body = stream(server.effective_port, head, [opening, png, closing],
                                 chunked=False)
    finally:
        server.close()
        thread.join(timeout=5)
        app.extensions["lookalike"].close()
    assert status == 200, body[:300]
    assert json.loads(body)["results"]
    assert spooled == []
