"""The JSON API through Flask's test client: health, stats, the OpenAPI document, search by
upload and by id, image metadata, and every error code.

One tiny model and index serve the whole package (tests/web/conftest.py); tests that
change files or the data dir get their own copy.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tempfile

import numpy as np
import pytest
from PIL import Image, features
from sqlalchemy import select

from search.catalog import ImageRecord
from search.engine import code_of
from search.settings import MB
from search.store import Store
from search.vector_index import normalise

from ..conftest import TINY
from ..synthetic import draw, png_bytes, png_claiming_pixels
from .conftest import assert_error, index_more, row_for, upload

# -- health, stats, OpenAPI --------------------------------------------------------------------

def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "ready": True, "message": None}


def test_stats(client, library):
    stats = client.get("/api/stats").get_json()
    n = len(library.all_files())
    assert stats["images"] == n and stats["index_vectors"] == n
    assert stats["index_choice"] == "auto" and stats["metric"] == "cosine"
    assert stats["latent_dim"] == TINY.latent_dim and stats["model_kind"] == "ae"
    assert stats["model"] == str(library.data_dir / "model.pt")
    assert stats["ready"] is True and stats["message"] is None
    assert re.fullmatch(r"[0-9a-f]{64}", stats["model_sha256"])


def test_a_small_collection_is_searched_exactly(client, library):
    """Similar images rank as a brute-force cosine ranking of the stored codes does: every
    other image, best first, each at its true similarity."""
    store = Store.open(library.data_dir)
    with store.sessions() as s:
        codes = {row.id: normalise(code_of(row)[None])[0]
                 for row in s.scalars(select(ImageRecord))}
    store.close()
    query = min(codes)
    truth = {i: float(code @ codes[query]) for i, code in codes.items() if i != query}
    hits = client.get(f"/api/images/{query}/similar?k=100").get_json()["results"]
    assert sorted(hit["id"] for hit in hits) == sorted(truth)  # none left out
    assert [hit["similarity"] for hit in hits] == pytest.approx(
        sorted(truth.values(), reverse=True), abs=1e-5)
    for hit in hits:
        assert hit["similarity"] == pytest.approx(truth[hit["id"]], abs=1e-5)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([a-z_]+)>", r"{\1}", rule)


def test_openapi_documents_every_route(app, client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("pages."):  # HTML pages and their assets
            continue
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        routes.setdefault(_openapi_path(rule.rule), set()).update(methods)
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    assert documented == routes
    refs = re.findall(r'"#/components/schemas/([A-Za-z]+)"', json.dumps(doc))
    assert refs and set(refs) <= set(doc["components"]["schemas"])


# -- POST /api/search ----------------------------------------------------------------------------

def test_search_by_upload_finds_the_image_itself(client, library):
    path = library.files["circle"][3]
    row = row_for(library.data_dir, path)
    response = upload(client, path.read_bytes(), k="10")
    assert response.status_code == 200
    body = response.get_json()
    assert body["k"] == 10 and len(body["results"]) == 10
    scores = [hit["similarity"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    top = body["results"][0]
    assert top["id"] == row.id and top["similarity"] > 0.999
    assert top["name"] == path.name and top["path"] == str(path.resolve())
    assert top["thumbnail_url"] == f"/images/{row.id}/thumbnail"
    assert top["reconstruction_url"] == f"/images/{row.id}/reconstruction"
    assert top["original_url"] == f"/images/{row.id}/original"
    assert top["similar_url"] == f"/api/images/{row.id}/similar"

    query = body["query"]
    assert (query["width"], query["height"], query["format"]) == (48, 48, "PNG")
    assert query["reconstruction"].startswith("data:image/png;base64,")
    recon = Image.open(io.BytesIO(base64.b64decode(query["reconstruction"].split(",", 1)[1])))
    assert recon.size == (32, 32)
    # the same error the indexer stored, up to rounding the reconstruction to 8 bits
    assert query["reconstruction_error"] == pytest.approx(row.reconstruction_error, abs=1e-4)
    assert isinstance(query["anomaly_threshold"], float)
    assert query["anomalous"] is (query["reconstruction_error"] > query["anomaly_threshold"])


def test_unusual_image_is_flagged_as_anomalous(client):
    white = Image.new("RGB", (48, 48), (255, 255, 255))  # the collection is all dark backgrounds
    query = upload(client, png_bytes(white)).get_json()["query"]
    assert query["anomalous"] is True
    assert query["reconstruction_error"] > query["anomaly_threshold"]


def test_search_without_reconstruction(client, library):
    data = library.files["square"][0].read_bytes()
    body = upload(client, data, reconstruction="false").get_json()
    assert "reconstruction" not in body["query"] and "reconstruction_error" not in body["query"]
    assert len(body["results"]) == 10


def test_search_by_json_base64_matches_multipart(client, library):
    data = library.files["stripes"][2].read_bytes()
    expected = [h["id"] for h in upload(client, data, k="7").get_json()["results"]]
    encoded = base64.b64encode(data).decode()
    for value in (encoded, "data:image/png;base64," + encoded,
                  base64.urlsafe_b64encode(data).decode().rstrip("=")):
        response = client.post("/api/search", json={"image_base64": value, "k": 7})
        assert response.status_code == 200, response.get_json()
        assert [h["id"] for h in response.get_json()["results"]] == expected


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_search_accepts_every_supported_type(client, fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    img = draw("square", np.random.default_rng(5))
    as_png = upload(client, png_bytes(img), k="5").get_json()["results"]
    response = upload(client, png_bytes(img, fmt), name="q.bin", k="5")
    assert response.status_code == 200, response.get_json()
    # Decoded as the picture it is: the same images come first as for the PNG (lossy
    # formats may swap close neighbours further down).
    found = response.get_json()["results"]
    assert found[0]["id"] == as_png[0]["id"]
    assert len({h["id"] for h in found} & {h["id"] for h in as_png}) >= 4


def test_search_accepts_transparency_and_greyscale(client):
    rgba = draw("circle", np.random.default_rng(6)).convert("RGBA")
    rgba.putalpha(128)
    assert upload(client, png_bytes(rgba)).status_code == 200
    assert upload(client, png_bytes(rgba.convert("L"))).status_code == 200


@pytest.mark.parametrize("where", ["query", "form", "json"])
@pytest.mark.parametrize("k,expected", [(None, 10), (1, 1), (100, None)])
def test_k(client, library, where, k, expected):
    data = library.files["square"][1].read_bytes()
    if where == "json":
        body = {"image_base64": base64.b64encode(data).decode()}
        if k is not None:
            body["k"] = k
        response = client.post("/api/search", json=body)
    elif where == "form":
        response = upload(client, data, **({"k": str(k)} if k is not None else {}))
    else:
        query = f"?k={k}" if k is not None else ""
        response = client.post("/api/search" + query,
                               data={"image": (io.BytesIO(data), "q.png")})
    assert response.status_code == 200
    expected = len(library.all_files()) if expected is None else expected
    assert len(response.get_json()["results"]) == expected


@pytest.mark.parametrize("k", ["0", "101", "-1", "abc", "1.5", "1e2", "10; DROP"])
def test_bad_k_in_form_or_query_is_400(client, library, k):
    data = library.files["square"][1].read_bytes()
    assert_error(upload(client, data, k=k), 400, "bad_parameter")
    response = client.post(f"/api/search?k={k}", data={"image": (io.BytesIO(data), "q.png")})
    assert_error(response, 400, "bad_parameter")


@pytest.mark.parametrize("k", [0, 101, "ten", True, 2.5, [3]])
def test_bad_k_in_json_is_400(client, library, k):
    data = base64.b64encode(library.files["square"][1].read_bytes()).decode()
    assert_error(client.post("/api/search", json={"image_base64": data, "k": k}),
                 400, "bad_parameter")


def test_bad_reconstruction_flag_is_400(client, library):
    data = library.files["square"][1].read_bytes()
    assert_error(upload(client, data, reconstruction="maybe"), 400, "bad_parameter")


def _png_prefix() -> bytes:
    return png_bytes(draw("square", np.random.default_rng(1)))


@pytest.mark.parametrize("data,status,code", [
    (b"", 400, "bad_image"),
    (_png_prefix()[:60], 400, "bad_image"),                         # truncated PNG
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, 400, "bad_image"),       # PNG signature, junk
    (b"\xff\xd8\xff\xe0" + os.urandom(300), 400, "bad_image"),       # JPEG signature, junk
    (b"hello, this is not an image\n" * 4, 415, "unsupported_media_type"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", 415, "unsupported_media_type"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', 415, "unsupported_media_type"),
    (b"P6\n2 2\n255\n" + bytes(12), 415, "unsupported_media_type"),  # PPM: Pillow, not us
])
def test_bad_uploads(client, data, status, code):
    message = assert_error(upload(client, data), status, code)
    if code == "unsupported_media_type":
        assert "PNG" in message  # says what to send instead


def test_declared_type_and_name_are_ignored(client, library):
    """The bytes decide: a PNG named .txt is searched, text named .png is refused."""
    data = library.files["square"][0].read_bytes()
    response = client.post("/api/search", data={
        "image": (io.BytesIO(data), "notes.txt", "text/plain")})
    assert response.status_code == 200
    response = client.post("/api/search", data={
        "image": (io.BytesIO(b"just text"), "photo.png", "image/png")})
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("kwargs", [
    {"data": {"k": "3"}, "content_type": "multipart/form-data"},            # no image field
    {"data": {"picture": (io.BytesIO(b"x"), "x.png")}},                     # wrong field name
    {"json": {"k": 3}},                                                     # no image_base64
    {"json": {"image_base64": 12}},
    {"json": {"image_base64": "not*base64!"}},
    {"json": {"image_base64": "data:image/png,rawtext"}},
    {"json": [1, 2, 3]},
    {"data": b"{not json", "content_type": "application/json"},
])
def test_malformed_requests_are_400(client, kwargs):
    assert_error(client.post("/api/search", **kwargs), 400, "bad_request")


@pytest.mark.parametrize("content_type",
                         ["text/plain", "image/png", "application/x-www-form-urlencoded"])
def test_other_request_types_are_415(client, library, content_type):
    data = library.files["square"][0].read_bytes()
    response = client.post("/api/search", data=data, content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_upload_over_the_limit_is_413(apps, library):
    client = apps(library.data_dir, MAX_CONTENT_LENGTH=2000).test_client()
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    data = png_bytes(noise)
    assert len(data) > 2000
    assert_error(upload(client, data), 413, "too_large")
    response = client.post("/api/search", json={"image_base64": base64.b64encode(data).decode()})
    assert_error(response, 413, "too_large")


def test_default_limit_is_20_mb(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(20 * MB + 1)
    assert_error(upload(client, big), 413, "too_large")


def test_decompression_bomb_is_refused(client):
    bomb = png_claiming_pixels(20_000, 20_000)  # 400 Mpx claimed in ~100 bytes
    assert len(bomb) < 2000
    message = assert_error(upload(client, bomb), 413, "too_large")
    assert "pixels" in message


def test_uploads_stay_in_memory(client, monkeypatch):
    """A 1 MB+ upload (over Werkzeug's 500 KB spooling threshold) never becomes a file:
    with every way to a temporary file refused, it is still searched."""
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (640, 640, 3), np.uint8))
    data = png_bytes(noise)
    assert len(data) > 1 * MB

    def no_files(*args, **kwargs):
        raise AssertionError("an upload was about to be written to disk")

    import werkzeug.formparser

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp",
                 "mkdtemp"):
        monkeypatch.setattr(tempfile, name, no_files)
    for name in ("SpooledTemporaryFile", "TemporaryFile"):
        monkeypatch.setattr(werkzeug.formparser, name, no_files, raising=False)
    assert upload(client, data).status_code == 200


# -- GET /api/images/<id>/similar and /api/images/<id> -----------------------------------------

def test_similar(client, library):
    row = row_for(library.data_dir, library.files["stripes"][0])
    response = client.get(f"/api/images/{row.id}/similar?k=5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"]["id"] == row.id and body["query"]["name"] == row.path.split("/")[-1]
    assert body["query"]["reconstruction_error"] == row.reconstruction_error
    assert body["query"]["anomalous"] is (row.reconstruction_error > body["query"]["anomaly_threshold"])
    ids = [hit["id"] for hit in body["results"]]
    assert len(ids) == 5 and row.id not in ids
    scores = [hit["similarity"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert len(client.get(f"/api/images/{row.id}/similar").get_json()["results"]) == 10


@pytest.mark.parametrize("url", ["/api/images/999999/similar", "/api/images/abc/similar",
                                 "/api/images/-1/similar", f"/api/images/{10 ** 30}/similar",
                                 "/api/images/999999", "/api/images/1.5"])
def test_unknown_image_is_404(client, url):
    assert_error(client.get(url), 404, "not_found")


@pytest.mark.parametrize("k", ["0", "101", "x"])
def test_similar_bad_k_is_400(client, library, k):
    row = row_for(library.data_dir, library.files["stripes"][0])
    assert_error(client.get(f"/api/images/{row.id}/similar?k={k}"), 400, "bad_parameter")


def test_image_metadata(client, library):
    path = library.files["square"][2]
    row = row_for(library.data_dir, path)
    body = client.get(f"/api/images/{row.id}").get_json()
    assert body["id"] == row.id and body["name"] == path.name
    assert body["path"] == str(path.resolve())
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (body["width"], body["height"], body["format"]) == (48, 48, "PNG")
    assert body["size"] == path.stat().st_size
    assert body["reconstruction_error"] == row.reconstruction_error
    assert body["indexed_at"].endswith("+00:00")
    assert body["original_url"] == f"/images/{row.id}/original"


# -- generic errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("method,url,allowed", [
    ("get", "/api/search", "POST"),
    ("post", "/api/stats", "GET"),
    ("delete", "/api/images/1", "GET"),
    ("put", "/images/1/original", "GET"),
    ("post", "/healthz", "GET"),
])
def test_wrong_method_is_405_json(client, method, url, allowed):
    response = getattr(client, method)(url)
    assert_error(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"]


def test_unknown_api_path_is_404_json_and_page_404_is_html(client):
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    response = client.get("/nothing-here")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_unexpected_error_is_500_json_without_internals(app, client, monkeypatch):
    backend = app.extensions["lookalike"]

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(backend, "record", broken)
    message = assert_error(client.get("/api/images/1"), 500, "internal_error")
    assert "secret" not in message


# -- collapse=true: near-duplicates folded under the hit they copy --------------------------------

def test_collapse_folds_copies_under_the_hit_they_copy(apps, own_library):
    original = own_library.files["circle"][0]
    copies = own_library.collection / "copies"
    copies.mkdir()
    for name in ("again.png", "once-more.png"):  # the same bytes: the same code
        (copies / name).write_bytes(original.read_bytes())
    index_more(own_library.data_dir, copies)
    client = apps(own_library.data_dir).test_client()
    data = original.read_bytes()
    plain = upload(client, data, k="5").get_json()["results"]
    same = {str(original), str(copies / "again.png"), str(copies / "once-more.png")}
    assert same <= {h["path"] for h in plain}  # without collapse the copies take three places
    folded = upload(client, data, k="5", collapse="true").get_json()["results"]
    assert len(folded) == 5
    first = folded[0]
    assert same <= {first["path"], *(c["path"] for c in first["copies"])}
    assert all(c["similarity"] <= first["similarity"] + 1e-6 for c in first["copies"])
    shown = [h["path"] for h in folded]
    assert len(set(shown)) == 5 and not same - {first["path"]} & set(shown)


def test_collapse_is_a_flag(client, library):
    data = library.files["circle"][0].read_bytes()
    assert "copies" not in upload(client, data, k="3").get_json()["results"][0]
    message = assert_error(upload(client, data, collapse="maybe"), 400, "bad_parameter")
    assert "collapse" in message
    body = {"image_base64": base64.b64encode(data).decode(), "collapse": True, "k": 3}
    answer = client.post("/api/search", json=body).get_json()
    assert len(answer["results"]) == 3 and all("copies" in h for h in answer["results"])
