"""The model-as-a-tool endpoints through Flask's test client: denoise, anomalies,
compression, latent exploration, their pages, and every error code.

Two tiny libraries are built per module (a few seconds each): one with a
denoising model (``dae``) and one with a variational one (``vae``), so each
feature is seen both with the kind it is made for and with another. A
3-epoch model does not denoise well yet; these tests check that the app
does what the model says, not how good the model is (tests/test_applications.py
trains longer and checks that denoising helps).
"""
from __future__ import annotations

import base64
import io
import re
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask
from PIL import Image
from sqlalchemy import select

from indexer.compression import DTYPES, compress_code, decompress_code, psnr
from indexer.encoder import TorchEncoder
from indexer.images import load_image
from indexer.latent import sample_prior
from search.catalog import ImageRecord
from search.store import Store
from web import create_app

try:
    from tests.webfixtures import clean_environment  # noqa: F401 (fixtures)
    from tests.webfixtures import TINY_MODEL, Library, build_library, image_id, index_more
except ImportError:  # tests/ is not a package: pytest put the folder itself on sys.path
    from webfixtures import clean_environment  # type: ignore  # noqa: F401
    from webfixtures import (TINY_MODEL, Library, build_library, image_id,  # type: ignore
                             index_more)

PER_CLASS = 12  # 36 images: enough for a PQ codebook (32), small enough to train in seconds


# -- fixtures ------------------------------------------------------------------------------------

def _library(root: Path, kind: str) -> Library:
    library = build_library(root, per_class=PER_CLASS, config=replace(TINY_MODEL, kind=kind))
    # One image unlike the rest (all have dark backgrounds), indexed with the same model.
    odd = root / "odd"
    odd.mkdir()
    Image.new("RGB", (48, 48), (255, 255, 255)).save(odd / "white.png")
    index_more(library.data_dir, odd)
    library.files["odd"] = [odd / "white.png"]
    return library


@pytest.fixture(scope="module")
def dae(tmp_path_factory) -> Library:
    return _library(tmp_path_factory.mktemp("dae"), "dae")


@pytest.fixture(scope="module")
def vae(tmp_path_factory) -> Library:
    return _library(tmp_path_factory.mktemp("vae"), "vae")


def make_app(data_dir: Path, **settings) -> Flask:
    return create_app({"TESTING": True, "LOOKALIKE_DATA_DIR": str(data_dir), **settings})


@pytest.fixture
def apps():
    made: list[Flask] = []

    def app_for(data_dir: Path, **settings) -> Flask:
        made.append(make_app(data_dir, **settings))
        return made[-1]

    yield app_for
    for app in made:
        app.extensions["lookalike"].close()


@pytest.fixture
def client(apps, dae):
    return apps(dae.data_dir).test_client()


@pytest.fixture
def vae_client(apps, vae):
    return apps(vae.data_dir).test_client()


@pytest.fixture
def own_dae(tmp_path, dae) -> Path:
    """A private copy of the dae data dir (catalog, index, model), for tests that write to it."""
    data = tmp_path / "data"
    shutil.copytree(dae.data_dir, data)
    for stale in data.glob("pq-*.faiss"):
        stale.unlink()
    return data


@pytest.fixture
def model_only(tmp_path, dae) -> Path:
    """A data dir with the dae model and nothing indexed."""
    data = tmp_path / "model-only"
    data.mkdir()
    shutil.copy(dae.data_dir / "model.pt", data / "model.pt")
    return data


def encoder_of(data_dir: Path) -> TorchEncoder:
    return TorchEncoder.from_path(data_dir / "model.pt", "cpu")


def post_image(client, url: str, data: bytes, **fields):
    return client.post(url, data={"image": (io.BytesIO(data), "query.png"), **fields},
                       content_type="multipart/form-data")


def pixels_of(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def data_url_pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return pixels_of(base64.b64decode(url.split(",", 1)[1]))


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one level of 8-bit rounding (float sums in another order)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def catalog_id(library: Library, kind: str, i: int) -> int:
    return image_id(library.data_dir, library.files[kind][i])


# -- POST /api/denoise -----------------------------------------------------------------------------

def test_denoise_returns_the_models_reconstruction_as_png(client, dae):
    path = dae.files["circle"][0]
    response = post_image(client, "/api/denoise", path.read_bytes())
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Lookalike-Model-Kind"] == "dae"
    assert "X-Lookalike-Note" not in response.headers  # a dae is what this is made for
    assert "X-Lookalike-Noise-Seed" not in response.headers
    out = pixels_of(response.data)
    assert out.shape == (32, 32, 3)
    clean = load_image(path, 32)
    assert close(out, encoder_of(dae.data_dir).reconstruct(clean[None])[0])


def test_denoise_with_another_kind_works_and_says_so(vae_client, vae):
    data = vae.files["square"][0].read_bytes()
    response = post_image(vae_client, "/api/denoise", data)
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Lookalike-Model-Kind"] == "vae"
    assert "--kind dae" in response.headers["X-Lookalike-Note"]
    body = post_image(vae_client, "/api/denoise?format=json", data).get_json()
    assert body["model_kind"] == "vae" and "--kind dae" in body["note"]


def test_denoise_json_with_added_noise(client, dae):
    path = dae.files["stripes"][1]
    response = post_image(client, "/api/denoise?format=json&add_noise=0.3&seed=7",
                          path.read_bytes())
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["model_kind"] == "dae" and body["note"] is None
    assert (body["add_noise"], body["seed"], body["image_size"]) == (0.3, 7, 32)
    assert (body["width"], body["height"], body["format"]) == (48, 48, "PNG")
    clean, noisy, denoised = (data_url_pixels(body[k]) for k in ("clean", "noisy", "denoised"))
    assert np.array_equal(clean, load_image(path, 32))
    assert not np.array_equal(noisy, clean)
    # noise of σ 0.3 on [0, 1]: the typical change is about 0.3 × 255, less where it clips
    assert 30 < np.abs(noisy.astype(int) - clean.astype(int)).mean() < 90
    assert close(denoised, encoder_of(dae.data_dir).reconstruct(noisy[None])[0])
    assert body["psnr"]["noisy"] == pytest.approx(psnr(clean, noisy), abs=1e-3)
    assert body["psnr"]["denoised"] == pytest.approx(psnr(clean, denoised), abs=1e-3)

    again = post_image(client, "/api/denoise?format=json&add_noise=0.3&seed=7",
                       path.read_bytes()).get_json()
    assert again["noisy"] == body["noisy"]  # same seed, same noise
    other = post_image(client, "/api/denoise?format=json&add_noise=0.3&seed=8",
                       path.read_bytes()).get_json()
    assert other["noisy"] != body["noisy"]


def test_denoise_without_noise(client, dae):
    path = dae.files["circle"][2]
    body = post_image(client, "/api/denoise", path.read_bytes(), format="json").get_json()
    assert body["add_noise"] == 0 and body["seed"] is None
    assert body["clean"] is None and body["psnr"] is None
    assert np.array_equal(data_url_pixels(body["noisy"]), load_image(path, 32))


def test_denoise_random_seed_is_reported(client, dae):
    data = dae.files["circle"][2].read_bytes()
    response = post_image(client, "/api/denoise?add_noise=0.1", data)
    seed = response.headers["X-Lookalike-Noise-Seed"]
    again = post_image(client, f"/api/denoise?add_noise=0.1&seed={seed}", data)
    assert again.data == response.data


def test_denoise_options_in_the_body(client, dae):
    data = dae.files["square"][3].read_bytes()
    by_query = post_image(client, "/api/denoise?format=json&add_noise=0.2&seed=1", data)
    by_form = post_image(client, "/api/denoise", data, format="json", add_noise="0.2", seed="1")
    by_json = client.post("/api/denoise", json={
        "image_base64": base64.b64encode(data).decode(), "format": "json", "add_noise": 0.2,
        "seed": 1})
    assert by_query.get_json() == by_form.get_json() == by_json.get_json()


@pytest.mark.parametrize("query", ["add_noise=0.6", "add_noise=-0.1", "add_noise=abc",
                                   "add_noise=nan", "add_noise=inf", "seed=-1", "seed=x",
                                   f"seed={2**32}", "format=gif"])
def test_denoise_bad_parameters_are_400(client, dae, query):
    response = post_image(client, f"/api/denoise?{query}", dae.files["circle"][0].read_bytes())
    message = assert_error(response, 400, "bad_parameter")
    assert query.split("=")[0] in message


@pytest.mark.parametrize("data,status,code", [
    (b"", 400, "bad_image"),
    (b"just some text", 415, "unsupported_media_type"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 400, "bad_image"),
])
def test_denoise_bad_uploads(client, data, status, code):
    assert_error(post_image(client, "/api/denoise", data), status, code)


def test_denoise_malformed_requests(client):
    assert_error(client.post("/api/denoise", data="x", content_type="text/plain"),
                 415, "unsupported_media_type")
    assert_error(client.post("/api/denoise", data={"file": (io.BytesIO(b"x"), "a.png")},
                             content_type="multipart/form-data"), 400, "bad_request")
    assert_error(client.post("/api/denoise", json={"image_base64": "***"}), 400, "bad_request")
    assert_error(client.get("/api/denoise"), 405, "method_not_allowed")


def test_denoise_needs_only_a_model(apps, model_only, tmp_path, dae):
    data = dae.files["circle"][0].read_bytes()
    assert post_image(apps(model_only).test_client(), "/api/denoise", data).status_code == 200
    assert_error(post_image(apps(tmp_path / "empty").test_client(), "/api/denoise", data),
                 503, "not_ready")


# -- POST /api/search with denoise -----------------------------------------------------------------

def test_search_with_denoise_searches_with_the_reconstruction(client, dae):
    data = dae.files["square"][4].read_bytes()
    body = post_image(client, "/api/search", data, denoise="true", k="6").get_json()
    query = body["query"]
    assert query["denoised"] is True
    assert isinstance(query["anomalous"], bool)  # the verdict is still the upload's
    # Searching with the reconstruction shown gives exactly these results.
    recon = base64.b64decode(query["reconstruction"].split(",", 1)[1])
    direct = post_image(client, "/api/search", recon, k="6").get_json()
    assert direct["query"]["denoised"] is False
    assert [(h["id"], h["similarity"]) for h in direct["results"]] == \
        [(h["id"], h["similarity"]) for h in body["results"]]


def test_search_with_denoise_and_no_reconstruction(client, dae):
    data = dae.files["square"][4].read_bytes()
    body = client.post("/api/search?k=3", json={
        "image_base64": base64.b64encode(data).decode(), "denoise": True,
        "reconstruction": False}).get_json()
    assert body["query"]["denoised"] is True and "reconstruction" not in body["query"]
    assert len(body["results"]) == 3


def test_search_bad_denoise_flag_is_400(client, dae):
    response = post_image(client, "/api/search", dae.files["circle"][0].read_bytes(),
                          denoise="maybe")
    assert "denoise" in assert_error(response, 400, "bad_parameter")


# -- GET /api/anomalies ----------------------------------------------------------------------------

def catalog_errors(data_dir: Path) -> dict[int, float]:
    with Store.open(data_dir).sessions() as s:
        return dict(s.execute(select(ImageRecord.id, ImageRecord.recon_error)).all())


def test_anomalies_default_to_the_models_threshold(client, dae):
    body = client.get("/api/anomalies").get_json()
    threshold = encoder_of(dae.data_dir).anomaly_threshold
    assert body["threshold"] == body["model_threshold"] == pytest.approx(threshold)
    above = sorted((e for e in catalog_errors(dae.data_dir).values() if e > threshold),
                   reverse=True)
    assert body["total"] == len(above) >= 1
    assert [a["reconstruction_error"] for a in body["anomalies"]] == above
    assert all(a["anomalous"] is True for a in body["anomalies"])


def test_anomalies_top_lists_the_worst_first(client, dae):
    body = client.get("/api/anomalies?top=5").get_json()
    errors = catalog_errors(dae.data_dir)
    assert body["threshold"] is None and body["top"] == 5 and body["total"] == len(errors)
    items = body["anomalies"]
    assert [a["reconstruction_error"] for a in items] == sorted(errors.values(), reverse=True)[:5]
    worst = items[0]
    assert worst["name"] == "white.png"  # the odd one out
    assert worst["id"] == image_id(dae.data_dir, dae.files["odd"][0])
    assert worst["thumbnail_url"] == f"/images/{worst['id']}/thumbnail"
    assert worst["reconstruction_url"] == f"/images/{worst['id']}/reconstruction"
    assert client.get(worst["thumbnail_url"]).status_code == 200
    assert worst["path"] == str(dae.files["odd"][0].resolve())
    assert {a["anomalous"] for a in items} <= {True, False}


def test_anomalies_threshold_and_both(client, dae):
    errors = sorted(catalog_errors(dae.data_dir).values(), reverse=True)
    threshold = errors[6]
    body = client.get(f"/api/anomalies?threshold={threshold}").get_json()
    assert body["threshold"] == threshold and body["total"] == 6
    assert [a["reconstruction_error"] for a in body["anomalies"]] == errors[:6]
    both = client.get(f"/api/anomalies?threshold={threshold}&top=2").get_json()
    assert both["total"] == 6 and len(both["anomalies"]) == 2
    assert client.get("/api/anomalies?threshold=1e9").get_json()["anomalies"] == []


@pytest.mark.parametrize("query", ["top=0", "top=1001", "top=x", "top=1.5", "threshold=-1",
                                   "threshold=abc", "threshold=nan"])
def test_anomalies_bad_parameters_are_400(client, query):
    message = assert_error(client.get(f"/api/anomalies?{query}"), 400, "bad_parameter")
    assert query.split("=")[0] in message


def test_anomalies_without_a_model_threshold(apps, dae):
    app = apps(dae.data_dir)
    app.extensions["lookalike"].search_engine().encoder.anomaly_threshold = None  # an old checkpoint
    client = app.test_client()
    assert "top=N" in assert_error(client.get("/api/anomalies"), 400, "bad_parameter")
    body = client.get("/api/anomalies?top=2").get_json()
    assert body["model_threshold"] is None
    assert [a["anomalous"] for a in body["anomalies"]] == [None, None]


def test_anomalies_not_ready(apps, model_only):
    assert_error(apps(model_only).test_client().get("/api/anomalies"), 503, "not_ready")


# -- POST /api/compress and /api/decompress --------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_compress(client, dae, dtype):
    path = dae.files["circle"][5]
    data = path.read_bytes()
    response = post_image(client, f"/api/compress?dtype={dtype}", data)
    assert response.status_code == 200
    body = response.get_json()
    encoder = encoder_of(dae.data_dir)
    blob = base64.b64decode(body["code_base64"])
    assert (body["dtype"], body["model_kind"], body["latent_dim"]) == (dtype, "dae", 16)
    header = 15  # magic, dtype, checkpoint sha prefix, dim
    payload = {"float32": 4 * 16, "float16": 2 * 16, "uint8": 8 + 16}[dtype]
    assert body["bytes"]["code"] == len(blob) == header + payload
    assert body["bytes"]["upload"] == len(data)
    assert body["ratio"]["upload"] == pytest.approx(len(data) / len(blob), abs=0.01)
    assert body["ratio"]["png"] == pytest.approx(body["bytes"]["png"] / len(blob), abs=0.01)
    # the code is the model's code of the upload, in the CLI's file format
    clean = load_image(path, 32)
    code = decompress_code(blob, encoder.sha256)
    exact = encoder.encode(clean[None])[0]
    step = {"float32": 1e-6 * np.abs(exact), "float16": 1e-3 * np.abs(exact),
            "uint8": (exact.max() - exact.min()) / 255}[dtype]
    assert np.all(np.abs(code - exact) <= step + 1e-6)
    decoded = data_url_pixels(body["decoded"])
    assert close(decoded, encoder.decode(code[None])[0])
    assert body["psnr"] == pytest.approx(psnr(clean, decoded), abs=1e-3)


def test_compress_defaults_to_float16_and_takes_json(client, dae):
    data = dae.files["square"][0].read_bytes()
    body = client.post("/api/compress", json={
        "image_base64": base64.b64encode(data).decode()}).get_json()
    assert body["dtype"] == "float16"
    assert body == post_image(client, "/api/compress", data, dtype="float16").get_json()


def test_pq_codebook_is_made_once_and_shared_with_the_cli(apps, own_dae, dae, tmp_path):
    client = apps(own_dae).test_client()
    data = dae.files["stripes"][2].read_bytes()
    assert not list(own_dae.glob("pq-*.faiss"))
    body = post_image(client, "/api/compress?dtype=pq", data).get_json()
    sha = encoder_of(own_dae).sha256
    codebook = own_dae / f"pq-{sha[:16]}.faiss"  # the CLI's file name
    assert codebook.is_file()
    stamp = codebook.stat().st_mtime_ns
    blob = base64.b64decode(body["code_base64"])
    assert body["bytes"]["code"] == len(blob) < 15 + 2 * 16  # smaller than float16
    assert post_image(client, "/api/compress?dtype=pq", data).get_json() == body
    assert codebook.stat().st_mtime_ns == stamp  # loaded, not trained again

    # the web's code decompresses with the web and with `lookalike decompress`
    response = client.post("/api/decompress", data=blob,
                           content_type="application/octet-stream")
    assert response.status_code == 200
    assert response.headers["X-Lookalike-Code-Dtype"] == "pq"
    assert np.array_equal(pixels_of(response.data), data_url_pixels(body["decoded"]))
    from web.cli import cli

    (tmp_path / "web.lkc").write_bytes(blob)
    result = CliRunner().invoke(cli, ["--data-dir", str(own_dae), "decompress",
                                      str(tmp_path / "web.lkc"), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), pixels_of(response.data))


def test_pq_needs_indexed_images(apps, model_only, dae):
    response = post_image(apps(model_only).test_client(), "/api/compress?dtype=pq",
                          dae.files["circle"][0].read_bytes())
    assert "32" in assert_error(response, 503, "not_ready")
    assert not list(model_only.glob("pq-*.faiss"))


def test_compress_errors(client, apps, tmp_path, dae):
    data = dae.files["circle"][0].read_bytes()
    assert "dtype" in assert_error(post_image(client, "/api/compress?dtype=float64", data),
                                   400, "bad_parameter")
    assert_error(post_image(client, "/api/compress", b"not an image"),
                 415, "unsupported_media_type")
    assert_error(post_image(apps(tmp_path / "empty").test_client(), "/api/compress", data),
                 503, "not_ready")


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_decompress_raw_and_json(client, dae, dtype):
    data = dae.files["square"][6].read_bytes()
    body = post_image(client, f"/api/compress?dtype={dtype}", data).get_json()
    raw = client.post("/api/decompress", data=base64.b64decode(body["code_base64"]),
                      content_type="application/octet-stream")
    as_json = client.post("/api/decompress", json={"code_base64": body["code_base64"]})
    for response in (raw, as_json):
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.headers["X-Lookalike-Model-Kind"] == "dae"
        assert response.headers["X-Lookalike-Code-Dtype"] == dtype
        assert np.array_equal(pixels_of(response.data), data_url_pixels(body["decoded"]))


def _code(client, dae) -> bytes:
    body = post_image(client, "/api/compress?dtype=float32",
                      dae.files["circle"][1].read_bytes()).get_json()
    return base64.b64decode(body["code_base64"])


def test_decompress_refuses_foreign_and_damaged_codes(client, dae):
    def send(blob: bytes):
        return client.post("/api/decompress", data=blob, content_type="application/octet-stream")

    good = _code(client, dae)
    sha = encoder_of(dae.data_dir).sha256
    foreign = compress_code(np.zeros(16, np.float32), "float16", "ab" * 32)
    assert "different model" in assert_error(send(foreign), 400, "bad_code")
    assert "truncated" in assert_error(send(good[:-3]), 400, "bad_code")
    assert "not a Lookalike code" in assert_error(send(b"PK\x03\x04" + good[4:]), 400, "bad_code")
    assert_error(send(b"LKC"), 400, "bad_code")
    unknown_type = good[:4] + bytes([9]) + good[5:]
    assert "unknown" in assert_error(send(unknown_type), 400, "bad_code")
    # a well-formed header for another code length, or numbers that are not numbers
    short = struct.pack("<4sB8sH", b"LKC1", 0, bytes.fromhex(sha[:16]), 8) + b"\x00" * 32
    assert_error(send(short), 400, "bad_code")
    nan = good[:15] + np.full(16, np.nan, np.float32).tobytes()
    assert_error(send(nan), 400, "bad_code")


def test_decompress_pq_without_a_codebook(apps, own_dae):
    sha = encoder_of(own_dae).sha256
    blob = compress_code(np.zeros(16, np.float32), "pq", sha, _FakePQ())
    response = apps(own_dae).test_client().post("/api/decompress", data=blob,
                                                content_type="application/octet-stream")
    assert "product quantiser" in assert_error(response, 400, "bad_code")


class _FakePQ:
    """Stands in for a codebook when only the code's bytes matter."""

    def encode(self, code: np.ndarray) -> bytes:
        return bytes(8)


def test_decompress_malformed_requests(client, apps, dae):
    assert "empty" in assert_error(client.post("/api/decompress", data=b"",
                                               content_type="application/octet-stream"),
                                   400, "bad_code")
    assert_error(client.post("/api/decompress", json={"code_base64": "@@@"}), 400, "bad_request")
    assert_error(client.post("/api/decompress", json={"code": "AAAA"}), 400, "bad_request")
    assert_error(client.post("/api/decompress", json=["AAAA"]), 400, "bad_request")
    assert_error(client.post("/api/decompress", data={"code": (io.BytesIO(b"x"), "c.lkc")},
                             content_type="multipart/form-data"), 415, "unsupported_media_type")
    small = apps(dae.data_dir, MAX_CONTENT_LENGTH=100).test_client()
    assert_error(small.post("/api/decompress", data=b"\x00" * 1000,
                            content_type="application/octet-stream"), 413, "too_large")


# -- GET /api/explore/* ----------------------------------------------------------------------------

def test_sample(vae_client, vae):
    body = vae_client.get("/api/explore/sample?n=4&seed=3").get_json()
    assert (body["model_kind"], body["note"], body["n"], body["seed"]) == ("vae", None, 4, 3)
    images = [data_url_pixels(u) for u in body["images"]]
    assert len(images) == 4 and all(i.shape == (32, 32, 3) for i in images)
    encoder = encoder_of(vae.data_dir)
    expected = encoder.decode(sample_prior(encoder.dim, 4, 3))
    assert all(close(a, b) for a, b in zip(images, expected))
    assert vae_client.get("/api/explore/sample?n=4&seed=3").get_json() == body
    assert vae_client.get("/api/explore/sample?n=4&seed=4").get_json()["images"] != body["images"]


def test_sample_defaults_and_random_seed(client):
    body = client.get("/api/explore/sample").get_json()
    assert body["n"] == 8 and len(body["images"]) == 8
    assert isinstance(body["seed"], int)
    assert "--kind vae" in body["note"]  # a dae runs, and is told what it is
    again = client.get(f"/api/explore/sample?seed={body['seed']}").get_json()
    assert again["images"] == body["images"]


@pytest.mark.parametrize("query", ["n=0", "n=65", "n=x", "seed=-1", "seed=1e3"])
def test_sample_bad_parameters_are_400(vae_client, query):
    message = assert_error(vae_client.get(f"/api/explore/sample?{query}"), 400, "bad_parameter")
    assert query.split("=")[0] in message


def test_interpolate(vae_client, vae):
    a, b = catalog_id(vae, "circle", 0), catalog_id(vae, "square", 0)
    body = vae_client.get(f"/api/explore/interpolate?a={a}&b={b}&steps=5").get_json()
    assert body["steps"] == 5 and len(body["images"]) == 5 and body["note"] is None
    assert body["a"]["id"] == a and body["a"]["name"] == vae.files["circle"][0].name
    assert body["b"]["thumbnail_url"] == f"/images/{b}/thumbnail"
    images = [data_url_pixels(u) for u in body["images"]]
    # the ends are the stored codes' reconstructions
    for end, image_id_ in ((images[0], a), (images[-1], b)):
        stored = pixels_of(vae_client.get(f"/images/{image_id_}/reconstruction").data)
        assert close(end, stored)
    assert not np.array_equal(images[0], images[-1])
    default = vae_client.get(f"/api/explore/interpolate?a={a}&b={b}").get_json()
    assert len(default["images"]) == 8


@pytest.mark.parametrize("query,status,code", [
    ("b=1", 400, "bad_parameter"),
    ("a=1", 400, "bad_parameter"),
    ("a=x&b=1", 400, "bad_parameter"),
    ("a=1&b=2&steps=1", 400, "bad_parameter"),
    ("a=1&b=2&steps=33", 400, "bad_parameter"),
    ("a=1&b=999999", 404, "not_found"),
    (f"a={2**63}&b=1", 400, "bad_parameter"),
])
def test_interpolate_errors(vae_client, query, status, code):
    assert_error(vae_client.get(f"/api/explore/interpolate?{query}"), status, code)


def test_arithmetic(vae_client, vae):
    a, c = catalog_id(vae, "circle", 1), catalog_id(vae, "stripes", 2)
    # a − a + c is c itself: the nearest indexed image is c, at similarity 1
    body = vae_client.get(f"/api/explore/arithmetic?a={a}&b={a}&c={c}&k=3").get_json()
    assert body["k"] == 3 and len(body["results"]) == 3
    assert body["results"][0]["id"] == c and body["results"][0]["similarity"] > 0.999
    assert [body[n]["id"] for n in "abc"] == [a, a, c]
    stored = pixels_of(vae_client.get(f"/images/{c}/reconstruction").data)
    assert close(data_url_pixels(body["result"]), stored)
    scores = [h["similarity"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)

    b = catalog_id(vae, "square", 3)
    body = vae_client.get(f"/api/explore/arithmetic?a={a}&b={b}&c={c}").get_json()
    assert len(body["results"]) == 5  # default k
    assert body["results"][0]["reconstruction_url"].startswith("/images/")


@pytest.mark.parametrize("query,status,code", [
    ("a=1&b=2", 400, "bad_parameter"),
    ("a=1&b=2&c=3&k=0", 400, "bad_parameter"),
    ("a=1&b=2&c=3&k=101", 400, "bad_parameter"),
    ("a=1&b=2&c=-3", 400, "bad_parameter"),
    ("a=1&b=2&c=999999", 404, "not_found"),
])
def test_arithmetic_errors(vae_client, query, status, code):
    assert_error(vae_client.get(f"/api/explore/arithmetic?{query}"), status, code)


def test_explore_not_ready(apps, tmp_path, model_only):
    empty = apps(tmp_path / "empty").test_client()
    for url in ("/api/explore/sample", "/api/explore/interpolate?a=1&b=2",
                "/api/explore/arithmetic?a=1&b=2&c=3"):
        assert_error(empty.get(url), 503, "not_ready")
    only_model = apps(model_only).test_client()
    assert only_model.get("/api/explore/sample").status_code == 200  # needs only the model
    assert_error(only_model.get("/api/explore/arithmetic?a=1&b=2&c=3"), 503, "not_ready")


# -- pages, assets and the API description ---------------------------------------------------------

NAV = ('href="/"', 'href="/denoise"', 'href="/anomalies"', 'href="/explore"')


@pytest.mark.parametrize("url,needles", [
    ("/", ('id="denoise-input"', 'name="denoise"')),
    ("/denoise", ('id="file-input"', 'id="noise-input"', 'max="0.5"', 'id="dtype-select"',
                  'id="denoised-image"', 'id="code-input"', "/static/denoise.js")),
    ("/anomalies", ('id="top-input"', 'id="threshold-input"', "/static/anomalies.js")),
    ("/explore", ('id="sample-button"', 'id="interp-a"', 'id="arith-c"', "/static/explore.js",
                  "--kind vae")),
])
def test_pages(client, url, needles):
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for needle in (*NAV, *needles):
        assert needle in html, needle
    assert re.search(rf'<a href="{re.escape(url)}" aria-current="page">', html)
    assert "<script>" not in html and " on" + "click=" not in html  # no inline script
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy


def test_denoise_page_notes_a_model_of_another_kind(client, vae_client):
    assert 'id="kind-note"' not in client.get("/denoise").get_data(as_text=True)
    assert 'id="kind-note"' in vae_client.get("/denoise").get_data(as_text=True)


def test_explore_page_is_prefilled_with_catalog_ids(client, dae):
    html = client.get("/explore").get_data(as_text=True)
    values = re.findall(r'id="interp-[ab]"[^>]* value="(\d+)"', html)
    ids = set(catalog_errors(dae.data_dir))
    assert len(values) == 2 and {int(v) for v in values} <= ids and values[0] != values[1]
    assert "This model is a “dae”" in html


def test_pages_without_a_model_say_what_to_run(apps, tmp_path):
    client = apps(tmp_path / "empty").test_client()
    for url in ("/denoise", "/anomalies", "/explore"):
        html = client.get(url).get_data(as_text=True)
        assert 'id="not-ready"' in html and "lookalike" in html and 'data-ready="false"' in html


@pytest.mark.parametrize("name", ["common.js", "denoise.js", "anomalies.js", "explore.js"])
def test_page_scripts_load_nothing_and_parse_no_html(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    text = response.get_data(as_text=True)
    assert not re.search(r"https?://", text)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in text


def test_openapi_describes_the_tools(client):
    doc = client.get("/api/openapi.json").get_json()
    for path in ("/api/denoise", "/api/compress", "/api/decompress", "/api/anomalies",
                 "/api/explore/sample", "/api/explore/interpolate", "/api/explore/arithmetic"):
        assert path in doc["paths"], path
    dtype = doc["paths"]["/api/compress"]["post"]["parameters"][0]["schema"]["enum"]
    assert dtype == list(DTYPES)
    schemas = doc["components"]["schemas"]
    detail = schemas["Error"]["properties"]["error"]["$ref"].rsplit("/", 1)[-1]
    assert "bad_code" in schemas[detail]["properties"]["code"]["enum"]
    search_params = [p["name"] for p in doc["paths"]["/api/search"]["post"]["parameters"]]
    assert "denoise" in search_params
