"""The model-as-a-tool endpoints that read the catalog, through Flask's test client:
anomalies and latent exploration (sample, interpolate, arithmetic), the tools' pages and
scripts, and their part of the API description.

On the package's two tiny libraries (tests/web/conftest.py), a denoising one (``dae``)
and a variational one (``vae``); the upload tools: test_tools_denoise_compress.py.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from indexer.compression import DTYPES
from indexer.model import load_checkpoint, sample_prior, save_checkpoint

from .conftest import (Library, assert_error, catalog_errors, close, data_url_pixels, encoder_of,
                       image_id, index_more, pixels_of)


@pytest.fixture
def client(dae_client):
    """The denoising library's client: these endpoints are made for its kind."""
    return dae_client


def catalog_id(library: Library, kind: str, i: int) -> int:
    return image_id(library.data_dir, library.files[kind][i])


# -- GET /api/anomalies ----------------------------------------------------------------------------

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


def test_anomalies_without_a_model_threshold(apps, own_dae, dae):
    """A checkpoint from before models recorded their anomaly threshold, its codes indexed."""
    checkpoint = load_checkpoint(own_dae / "model.pt")
    old_facts = {k: v for k, v in checkpoint.facts.items() if k != "anomaly_threshold"}
    save_checkpoint(own_dae / "model.pt", checkpoint.model, old_facts)
    for folder in (dae.collection, dae.files["odd"][0].parent):
        index_more(own_dae, folder)  # re-encoded with it, as `lookalike index` would
    client = apps(own_dae).test_client()
    assert "top=N" in assert_error(client.get("/api/anomalies"), 400, "bad_parameter")
    body = client.get("/api/anomalies?top=2").get_json()
    assert body["model_threshold"] is None
    assert [a["anomalous"] for a in body["anomalies"]] == [None, None]


def test_anomalies_not_ready(apps, model_only):
    assert_error(apps(model_only).test_client().get("/api/anomalies"), 503, "not_ready")


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

NAV = ('href="/library"', 'href="/search"', 'href="/denoise"', 'href="/anomalies"',
       'href="/duplicates"', 'href="/explore"')


@pytest.mark.parametrize("url,needles", [
    ("/search", ('id="denoise-input"', 'name="denoise"')),
    ("/denoise", ('id="file-input"', 'id="noise-input"', 'max="0.5"', 'id="dtype-select"',
                  'id="denoised-image"', 'id="code-input"', "/static/denoise.js")),
    ("/anomalies", ('id="top-input"', 'id="threshold-input"', "/static/anomalies.js")),
    ("/explore", ('id="sample-button"', 'id="interp-a"', 'id="arith-c"', "/static/explore.js",
                  "--kind vae", 'class="pick"')),
    ("/library", ('id="library"', 'id="lightbox"', "/static/library.js")),
    ("/duplicates", ('id="groups"', 'id="pager"', "/static/duplicates.js")),
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
    assert "lookalike --data-dir" in html and "train --kind vae FOLDER" in html  # what to run
    assert "index --reencode FOLDER" in html


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
