"""Bodies over the limit and images that cost too much to decode: refused with the JSON 413,
early, without the process growing, through the test client and streamed to a real
waitress server with ``lookalike serve``'s body cap (test_serve.py checks the command
applies it). Every answer is a 200 or a 4xx JSON error (tests/web/hostile.py).
"""
from __future__ import annotations

import http.client
import io
import json
import resource
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from flask import Flask
from PIL import Image
from waitress import create_server

from web.server import server_limits
from web.uploads import decode_cost

from ..synthetic import flat_png, png_claiming_pixels
from ..synthetic import png_bytes as encoded
from .conftest import MB, SMALL_LIMIT, close_app, fuzzed_app
from .hostile import b64, check, error_code, multipart_head, post_json, stream, upload

# Damaged files make Pillow warn ("Truncated File Read", "Corrupt EXIF data"); expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


@pytest.fixture(scope="module")
def client(fuzz_client):
    """The fuzzed app's client, for the whole module (tests/web/conftest.py)."""
    return fuzz_client


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


# -- through the test client -------------------------------------------------------------------

def test_gif_with_a_thousand_frames(client):
    data = many_frame_gif(1000)
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == 1000
    response, growth = peak_growth(lambda: upload(client, data))
    body = check(response)
    assert response.status_code == 200 and body["query"]["format"] == "GIF"
    assert growth < 64 * MB  # only the first frame is decoded


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
def budget_client(process_state, library):
    app = fuzzed_app(library, LOOKALIKE_MAX_DECODE_BYTES=BUDGET)
    yield app.test_client()
    close_app(app)


# (bit depth, PNG colour type, Pillow mode): the cheapest and the costliest modes to decode
MODES = [(1, 0, "1"), (8, 2, "RGB"), (8, 6, "RGBA"), (16, 0, "I;16")]


@pytest.mark.parametrize("bits,colour,mode", MODES)
def test_images_under_the_decode_budget_stay_in_it(budget_client, bits, colour, mode):
    """Uploads just under the memory budget decode within it; just over, they are refused
    before decoding, however few bytes they are."""
    per_pixel = decode_cost(Image.open(io.BytesIO(flat_png(1, 1, bits, colour))))[3]
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

@contextmanager
def waitress_serving(app: Flask, threads: int) -> Iterator[int]:
    """*app* under waitress with ``lookalike serve``'s body cap, on 127.0.0.1, in a thread;
    its port."""
    server = create_server(app, host="127.0.0.1", port=0, threads=threads,
                           **server_limits(app.config["MAX_CONTENT_LENGTH"]))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.close()
        thread.join(timeout=5)
        close_app(app)


@pytest.fixture(scope="module")
def served(process_state, library):
    """The fuzzed app with a 256 KB limit, under waitress; its port."""
    with waitress_serving(fuzzed_app(library, MAX_CONTENT_LENGTH=256 * 1024), 2) as port:
        yield port


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


def test_big_upload_stays_in_memory_under_lookalike_serve_limits(process_state, library,
                                                                 monkeypatch):
    """waitress spools bodies over 512 KB to a temp file unless told otherwise; uploads
    must never touch the disk, so ``lookalike serve`` keeps them in memory up to its cap:
    no temporary file is made while one is served."""
    made = []

    def recording(make):
        def wrapper(*args, **kwargs):
            made.append(make.__name__)
            return make(*args, **kwargs)
        return wrapper

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, recording(getattr(tempfile, name)))
    noise = np.random.default_rng(3).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    png = encoded(Image.fromarray(noise), "PNG", compress_level=0)
    assert len(png) > 1 * MB  # well past waitress's 512 KB spooling threshold

    with waitress_serving(fuzzed_app(library, MAX_CONTENT_LENGTH=2 * MB), 1) as port:
        head, opening, closing = multipart_head(None)
        head["Content-Length"] = str(len(opening) + len(png) + len(closing))
        status, _, body = stream(port, head, [opening, png, closing], chunked=False)
    assert status == 200, body[:300]
    assert json.loads(body)["results"]
    assert made == []
