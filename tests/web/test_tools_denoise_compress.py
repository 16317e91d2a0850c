"""The model-as-a-tool endpoints that take an upload, through Flask's test client: denoise
(alone and before a search), compress and decompress, and every error code.

Two tiny libraries serve the package (tests/web/conftest.py): one with a
denoising model (``dae``) and one with a variational one (``vae``), so each
feature is seen both with the kind it is made for and with another. A
3-epoch model does not denoise well yet; these tests check that the app
does what the model says, not how good the model is
(tests/cli/test_tools.py trains longer and checks that denoising helps).
Anomalies and latent exploration: test_tools_anomalies_explore.py.
"""
from __future__ import annotations

import base64
import io
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from indexer.compression import compress_code, decompress_code, psnr
from indexer.images import load_image
from search.store import codebook_path
from web.cli import cli

from .conftest import (assert_error, close, data_url_pixels, encoder_of, pixels_of,
                       upload)


@pytest.fixture
def client(dae_client):
    """The denoising library's client: these endpoints are made for its kind."""
    return dae_client


def post_image(client, url: str, data: bytes, **fields):
    """POST *data* as the multipart ``image`` field (and *fields*) to *url*."""
    return upload(client, data, url=url, **fields)


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
    codebook = codebook_path(own_dae, encoder_of(own_dae).sha256)  # where the CLI looks for it
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
