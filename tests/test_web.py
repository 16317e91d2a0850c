"""The web app through Flask's test client: every endpoint, every error code.

One tiny model and index are built per module (a few seconds); tests that
change files or the data dir get their own copy.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from flask import Flask, request
from PIL import Image, features
from sqlalchemy import select
from werkzeug.http import parse_options_header

import web
from indexer.encoder import TorchEncoder
from indexer.model import AEConfig, build_model, load_checkpoint, save_checkpoint
from search.catalog import ImageRecord
from search.engine import code_of
from search.store import Store
from web import create_app
from indexer.settings import MB, Settings

try:
    from tests.webfixtures import clean_environment  # noqa: F401 (fixtures)
    from tests.webfixtures import (HOSTILE_NAME, TINY_MODEL, Library, build_library, draw,
                                   index_more, png_bytes, png_claiming_pixels, private_copy,
                                   write_collection)
except ImportError:  # tests/ is not a package: pytest put the folder itself on sys.path
    from webfixtures import clean_environment  # type: ignore  # noqa: F401
    from webfixtures import (HOSTILE_NAME, TINY_MODEL, Library, build_library,  # type: ignore
                             draw, index_more, png_bytes, png_claiming_pixels,
                             private_copy, write_collection)


# -- fixtures (flaskr style: library → app → client) ------------------------------------------

@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("web"), extra={HOSTILE_NAME: "circle"})


def make_app(data_dir: Path, **settings) -> Flask:
    return create_app({"TESTING": True, "LOOKALIKE_DATA_DIR": str(data_dir), **settings})


@pytest.fixture
def app(library):
    app = make_app(library.data_dir)
    yield app
    app.extensions["lookalike"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def own_library(tmp_path, library) -> Library:
    """A private copy (collection + data dir) for tests that change files or the index."""
    return private_copy(library, tmp_path)


@pytest.fixture
def own_client(own_library):
    app = make_app(own_library.data_dir)
    yield app.test_client()
    app.extensions["lookalike"].close()


def row_for(data_dir: Path, path: Path) -> ImageRecord:
    store = Store.open(data_dir)
    with store.sessions() as s:
        return s.scalars(select(ImageRecord).where(ImageRecord.path == str(path.resolve()))).one()


def upload(client, data: bytes, name: str = "query.png", **fields):
    return client.post("/api/search", data={"image": (io.BytesIO(data), name), **fields},
                       content_type="multipart/form-data")


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


# -- settings ----------------------------------------------------------------------------------

def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 20 * MB
    # relative defaults are anchored to the working directory once, at start-up
    assert app.config["LOOKALIKE_DATA_DIR"] == str(tmp_path / "lookalike-data")
    assert app.instance_path == str(Path(web.__file__).resolve().parent.parent / "instance")
    assert app.config["LOOKALIKE_MODEL"] is None


def test_settings_precedence_defaults_instance_environment_overrides(tmp_path):
    (tmp_path / "config.py").write_text(
        "LOOKALIKE_DATA_DIR = '/from-instance'\n"
        "LOOKALIKE_MODEL = '/instance/model.pt'\n"
        "MAX_CONTENT_LENGTH = 123\n")
    environ = {"LOOKALIKE_DATA_DIR": "/from-env", "LOOKALIKE_MAX_CONTENT_LENGTH": "456",
               "LOOKALIKE_INSTANCE_PATH": str(tmp_path)}

    settings = Settings.load(None, environ)
    assert settings["LOOKALIKE_DATA_DIR"] == "/from-env"
    assert settings.model_path == Path("/instance/model.pt")
    assert settings["MAX_CONTENT_LENGTH"] == 456
    assert settings["LOOKALIKE_DEVICE"] == "auto"  # default survives

    settings = Settings.load({"LOOKALIKE_DATA_DIR": "/from-test"}, environ)
    assert settings.data_dir == Path("/from-test")
    assert settings.index_path == Path("/from-test/index.faiss")


def test_relative_paths_are_anchored_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.load({"LOOKALIKE_DATA_DIR": "d", "LOOKALIKE_MODEL": "m/model.pt",
                              "LOOKALIKE_DATABASE_URL": "sqlite:///db/c.sqlite"}, {})
    monkeypatch.chdir("/")
    assert settings.data_dir == tmp_path / "d"
    assert settings.model_path == tmp_path / "m" / "model.pt"
    assert settings.database_url == f"sqlite:///{tmp_path / 'db' / 'c.sqlite'}"
    store = settings.open_store()  # the layout inside the data dir is the store's
    assert store.thumbnail_path("0" * 64) == tmp_path / "d" / "thumbs" / f"{'0' * 64}.jpg"
    assert store.model_path == settings.model_path
    store.close()


def test_environment_reaches_the_app(monkeypatch, library):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(library.data_dir))
    monkeypatch.setenv("LOOKALIKE_MAX_CONTENT_LENGTH", "1000")
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 1000
    assert app.test_client().get("/api/stats").get_json()["data_dir"] == str(library.data_dir)


def test_bad_environment_value_fails_at_start(monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MAX_CONTENT_LENGTH", "twenty")
    with pytest.raises(ValueError, match="LOOKALIKE_MAX_CONTENT_LENGTH"):
        create_app()


def test_index_and_model_paths_from_settings(tmp_path, library):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(library.data_dir / "index.faiss", moved / "vectors.faiss")
    shutil.copy(library.data_dir / "model.pt", moved / "weights.pt")
    data = tmp_path / "data"
    shutil.copytree(library.data_dir, data)
    (data / "index.faiss").unlink()
    (data / "model.pt").unlink()
    client = make_app(data, LOOKALIKE_INDEX_PATH=str(moved / "vectors.faiss"),
                      LOOKALIKE_MODEL=str(moved / "weights.pt")).test_client()
    stats = client.get("/api/stats").get_json()
    assert stats["ready"] and stats["model"] == str(moved / "weights.pt")
    assert upload(client, library.files["square"][0].read_bytes()).status_code == 200


def test_flask_cli_finds_the_factory():
    from flask.cli import ScriptInfo

    assert isinstance(ScriptInfo(app_import_path="web").load_app(), Flask)


# -- health, stats, OpenAPI --------------------------------------------------------------------

def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "ready": True, "message": None}


def test_stats(client, library):
    stats = client.get("/api/stats").get_json()
    n = len(library.all_files())
    assert stats["images"] == n and stats["index_vectors"] == n
    assert stats["index_type"] == "IndexFlatIP" and stats["metric"] == "cosine"
    assert stats["latent_dim"] == 16 and stats["model_kind"] == "ae"
    assert stats["model"] == str(library.data_dir / "model.pt")
    assert stats["ready"] is True and stats["message"] is None
    assert re.fullmatch(r"[0-9a-f]{64}", stats["model_sha256"])


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
    assert query["reconstruction_error"] == pytest.approx(row.recon_error, abs=1e-4)
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
    assert upload(client, png_bytes(img, fmt), name="q.bin").status_code == 200


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


def test_upload_over_the_limit_is_413(library):
    client = make_app(library.data_dir, MAX_CONTENT_LENGTH=2000).test_client()
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


def test_uploads_stay_in_memory(app, client, monkeypatch):
    """A 1 MB+ upload (over Werkzeug's 500 KB spooling threshold) never becomes a file."""
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (640, 640, 3), np.uint8))
    data = png_bytes(noise)
    assert len(data) > 1 * MB
    with app.test_request_context("/api/search", method="POST",
                                  data={"image": (io.BytesIO(data), "big.png")}):
        assert isinstance(request.files["image"].stream, io.BytesIO)

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
    assert body["query"]["reconstruction_error"] == row.recon_error
    assert body["query"]["anomalous"] is (row.recon_error > body["query"]["anomaly_threshold"])
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
    assert body["reconstruction_error"] == row.recon_error
    assert body["indexed_at"].endswith("+00:00")
    assert body["original_url"] == f"/images/{row.id}/original"


# -- /images/<id>/... --------------------------------------------------------------------------

def test_thumbnail_is_made_once_and_cached_by_sha256(client, library):
    path = library.files["circle"][1]
    row = row_for(library.data_dir, path)
    cache = library.data_dir / "thumbs" / f"{row.sha256}.jpg"
    cache.unlink(missing_ok=True)
    response = client.get(f"/images/{row.id}/thumbnail")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.data))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256
    assert cache.is_file() and cache.read_bytes() == response.data
    assert not list(cache.parent.glob(".thumb-*"))  # no temp files left behind
    again = client.get(f"/images/{row.id}/thumbnail",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_reconstruction_decodes_the_stored_code(client, library):
    row = row_for(library.data_dir, library.files["square"][4])
    response = client.get(f"/images/{row.id}/reconstruction")
    assert response.status_code == 200 and response.mimetype == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"))
    encoder = TorchEncoder.from_path(library.data_dir / "model.pt", "cpu")
    expected = encoder.decode(np.array(code_of(row))[None])[0]
    assert pixels.shape == (32, 32, 3)
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 1
    again = client.get(f"/images/{row.id}/reconstruction",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_original_streams_the_catalog_file(client, library):
    path = library.files["stripes"][5]
    row = row_for(library.data_dir, path)
    response = client.get(f"/images/{row.id}/original")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.data == path.read_bytes()
    assert path.name in response.headers["Content-Disposition"]
    response.close()


def test_original_of_a_hostile_file_name(client, library):
    path = library.collection / HOSTILE_NAME
    row = row_for(library.data_dir, path)
    body = client.get(f"/api/images/{row.id}").get_json()
    assert body["name"] == HOSTILE_NAME  # JSON carries it verbatim; the page escapes it
    response = client.get(f"/images/{row.id}/original")
    assert response.status_code == 200 and response.data == path.read_bytes()
    disposition, options = parse_options_header(response.headers["Content-Disposition"])
    assert (disposition, options["filename"]) == ("inline", HOSTILE_NAME)  # quoted, intact
    response.close()


@pytest.mark.parametrize("kind", ["thumbnail", "reconstruction", "original"])
def test_images_of_unknown_ids_are_404(client, kind):
    assert_error(client.get(f"/images/999999/{kind}"), 404, "not_found")
    assert_error(client.get(f"/images/abc/{kind}"), 404, "not_found")


@pytest.mark.parametrize("url", [
    "/images/..%2F..%2F..%2Fetc%2Fpasswd/original",
    "/images/../../etc/passwd",
    "/images/%2Fetc%2Fpasswd/original",
    "/static/..%2Fapi.py",
    "/static/../web/api.py",
    "/static/index.html",
])
def test_request_paths_never_reach_the_filesystem(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert b"root:" not in response.data and b"Blueprint" not in response.data


def test_query_parameters_cannot_choose_the_file(client, library):
    path = library.files["square"][0]
    row = row_for(library.data_dir, path)
    response = client.get(f"/images/{row.id}/original?path=/etc/passwd&file=/etc/passwd")
    assert response.data == path.read_bytes()
    response.close()


def test_gone_original_is_404_but_cached_thumbnail_survives(own_client, own_library):
    path = own_library.files["circle"][0]
    row = row_for(own_library.data_dir, path)
    assert own_client.get(f"/images/{row.id}/thumbnail").status_code == 200
    other = own_library.files["circle"][1]
    other_row = row_for(own_library.data_dir, other)
    path.unlink()
    other.unlink()
    assert_error(own_client.get(f"/images/{row.id}/original"), 404, "not_found")
    assert own_client.get(f"/images/{row.id}/thumbnail").status_code == 200  # from the cache
    assert_error(own_client.get(f"/images/{other_row.id}/thumbnail"), 404, "not_found")
    # the reconstruction comes from the stored code and needs no file
    assert own_client.get(f"/images/{row.id}/reconstruction").status_code == 200


def test_original_replaced_by_a_non_image_is_not_served(own_client, own_library, tmp_path):
    path = own_library.files["stripes"][1]
    row = row_for(own_library.data_dir, path)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    path.unlink()
    path.symlink_to(secret)
    response = own_client.get(f"/images/{row.id}/original")
    assert_error(response, 404, "not_found")
    assert b"hunter2" not in response.data


def test_changed_file_is_thumbnailed_but_not_cached(own_client, own_library):
    path = own_library.files["square"][3]
    row = row_for(own_library.data_dir, path)
    draw("stripes", np.random.default_rng(9)).save(path)  # the catalog's sha256 is now stale
    response = own_client.get(f"/images/{row.id}/thumbnail")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert not (own_library.data_dir / "thumbs" / f"{row.sha256}.jpg").exists()


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


# -- not ready: no model, no index, empty, mismatched --------------------------------------------

def test_empty_data_dir_says_what_to_run(tmp_path, library):
    data = tmp_path / "nothing"
    client = make_app(data).test_client()
    image = library.files["square"][0].read_bytes()
    message = assert_error(upload(client, image), 503, "not_ready")
    assert f"lookalike --data-dir {data} index FOLDER" in message
    assert_error(client.get("/api/images/1/similar"), 503, "not_ready")
    assert_error(client.get("/images/1/reconstruction"), 503, "not_ready")
    assert_error(client.get("/api/images/1"), 404, "not_found")
    stats = client.get("/api/stats").get_json()
    assert stats["images"] == 0 and stats["ready"] is False and "index FOLDER" in stats["message"]
    assert client.get("/healthz").get_json()["ready"] is False

    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"<code>lookalike --data-dir {data} index FOLDER</code>" in html
    assert "Traceback" not in html and 'data-ready="false"' in html


def test_model_without_index(tmp_path, library):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(library.data_dir / "model.pt", data / "model.pt")
    client = make_app(data).test_client()
    message = assert_error(upload(client, library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "No index" in message and "index FOLDER" in message
    assert "No index" in client.get("/").get_data(as_text=True)


def test_empty_collection(tmp_path, library):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(library.data_dir / "model.pt", data / "model.pt")
    (tmp_path / "empty").mkdir()
    index_more(data, tmp_path / "empty")
    client = make_app(data).test_client()
    message = assert_error(upload(client, library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "empty" in message


def test_model_that_does_not_fit_the_index(own_library, own_client):
    other = build_model(AEConfig(image_size=32, latent_dim=8, widths=(8, 16)))
    save_checkpoint(own_library.data_dir / "model.pt", other, {})
    message = assert_error(upload(own_client, own_library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "--reencode" in message
    row = row_for(own_library.data_dir, own_library.files["square"][0])
    assert_error(own_client.get(f"/api/images/{row.id}/similar"), 503, "not_ready")
    assert_error(own_client.get(f"/images/{row.id}/reconstruction"), 503, "not_ready")


def test_retrained_model_is_refused_until_reencoded(own_library, own_client):
    """Same code size, other weights: comparing its codes with the index would be noise."""
    square = own_library.files["square"][0]
    row = row_for(own_library.data_dir, square)
    assert upload(own_client, square.read_bytes()).status_code == 200
    save_checkpoint(own_library.data_dir / "model.pt", build_model(TINY_MODEL), {})
    message = assert_error(upload(own_client, square.read_bytes()), 503, "not_ready")
    assert "index --reencode FOLDER" in message
    assert_error(own_client.get(f"/api/images/{row.id}/similar"), 503, "not_ready")
    assert_error(own_client.get(f"/images/{row.id}/reconstruction"), 503, "not_ready")
    assert own_client.get(f"/images/{row.id}/thumbnail").status_code == 200  # needs no model

    index_more(own_library.data_dir, own_library.collection)  # encodes with the new model
    assert upload(own_client, square.read_bytes()).status_code == 200
    new_row = row_for(own_library.data_dir, square)
    assert new_row.id == row.id and new_row.model_id != row.model_id
    assert own_client.get(f"/api/images/{row.id}/similar").status_code == 200


def test_unreadable_model(own_library, own_client):
    (own_library.data_dir / "model.pt").write_bytes(b"not a checkpoint")
    message = assert_error(upload(own_client, own_library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "train" in message


# -- a running app follows the data dir ----------------------------------------------------------

def test_reindex_is_seen_without_restart(tmp_path, own_library, own_client):
    before = own_client.get("/api/stats").get_json()
    more = tmp_path / "more"
    added = write_collection(more, per_class=4, seed=7)
    index_more(own_library.data_dir, more)

    after = own_client.get("/api/stats").get_json()
    assert after["images"] == before["images"] + 12
    assert after["generation"] > before["generation"]
    new_file = added["circle"][2]
    new_row = row_for(own_library.data_dir, new_file)
    top = upload(own_client, new_file.read_bytes()).get_json()["results"][0]
    assert top["id"] == new_row.id and top["similarity"] > 0.999


def test_new_model_file_is_loaded_without_restart(own_library, own_client):
    before = own_client.get("/api/stats").get_json()["model_sha256"]
    checkpoint = load_checkpoint(own_library.data_dir / "model.pt")
    save_checkpoint(own_library.data_dir / "model.pt", checkpoint.model, {"note": "retrained"})
    after = own_client.get("/api/stats").get_json()["model_sha256"]
    assert after != before
    assert after == hashlib.sha256((own_library.data_dir / "model.pt").read_bytes()).hexdigest()


def test_keeps_answering_while_lookalike_index_runs(tmp_path, own_library, own_client):
    more = tmp_path / "more"
    write_collection(more, per_class=40, seed=8)
    query = own_library.files["stripes"][0].read_bytes()
    generation = own_client.get("/api/stats").get_json()["generation"]
    command = [sys.executable, "-m", "web.cli", "--data-dir", str(own_library.data_dir), "-q",
               "index", str(more), "--workers", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    statuses, during = [], 0
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            statuses.append(upload(own_client, query, k="5").status_code)
            statuses.append(own_client.get("/api/stats").status_code)
            during += process.poll() is None
            time.sleep(0.02)  # leave the indexer some of the two CPUs
    finally:
        output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output
    assert during > 0 and set(statuses) == {200}
    stats = own_client.get("/api/stats").get_json()
    assert stats["generation"] > generation
    assert stats["images"] == len(own_library.all_files()) + 120
    assert upload(own_client, query).status_code == 200


# -- the page ------------------------------------------------------------------------------------

def test_page(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for needle in ('id="file-input"', 'id="drop-zone"', 'id="k-input"', 'max="100"',
                   'value="10"', "/static/app.js", "/static/style.css", 'data-ready="true"'):
        assert needle in html
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name,mimetype", [("app.js", "text/javascript"),
                                           ("style.css", "text/css"),
                                           ("favicon.svg", "image/svg+xml")])
def test_static_assets_load_nothing_from_the_network(client, name, mimetype):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200 and response.mimetype == mimetype
    text = response.get_data(as_text=True)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    if name == "app.js":
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text


# -- lookalike serve -------------------------------------------------------------------------------

def test_serve_runs_waitress(monkeypatch, library):
    from click.testing import CliRunner

    from web.cli import serving as web_cli
    from web.cli import cli

    seen = {}

    class FakeServer:
        effective_port = 5123

        def run(self):
            seen["ran"] = True

        def close(self):
            seen["closed"] = True

    def create_server(app, **kwargs):
        seen["app"], seen["kwargs"] = app, kwargs
        return FakeServer()

    monkeypatch.setattr(web_cli, "create_server", create_server)
    result = CliRunner().invoke(cli, ["--data-dir", str(library.data_dir), "serve"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:5123/" in result.output
    assert seen["kwargs"] == {"host": "127.0.0.1", "port": 5000, "threads": 4,
                              "max_request_body_size": 40 * MB,  # twice MAX_CONTENT_LENGTH
                              "inbuf_overflow": 40 * MB,  # bodies stay in memory
                              "connection_limit": 25}  # 25 × 40 MB within the 1 GiB budget
    assert seen["app"].config["LOOKALIKE_DATA_DIR"] == str(library.data_dir)
    assert seen["ran"] and seen["closed"]


def test_serve_reports_what_is_missing(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from web.cli import serving as web_cli
    from web.cli import cli

    class FakeServer:
        effective_port = 8080

        def run(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(web_cli, "create_server", lambda app, **kw: FakeServer())
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "serve", "--host",
                                      "0.0.0.0", "--port", "8080"])
    assert result.exit_code == 0
    assert "http://0.0.0.0:8080/" in result.output and "index FOLDER" in result.output
