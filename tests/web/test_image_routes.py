"""The image routes (thumbnail, reconstruction, original) and the search page, through
Flask's test client: what they serve, what they cache, and that no request path or
parameter reaches a file the catalog does not name.
"""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from werkzeug.http import parse_options_header

from search.engine import code_of

from ..cli.conftest import run
from ..synthetic import draw
from .conftest import HOSTILE_NAME, assert_error, encoder_of, row_for


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
    encoder = encoder_of(library.data_dir)
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


def test_a_changed_file_is_not_served(own_client, own_library):
    path = own_library.files["square"][3]
    row = row_for(own_library.data_dir, path)
    draw("stripes", np.random.default_rng(9)).save(path)  # not the content indexed any more
    for part in ("thumbnail", "original"):
        message = assert_error(own_client.get(f"/images/{row.id}/{part}"), 404, "not_found")
        assert "re-index" in message
    assert not (own_library.data_dir / "thumbs" / f"{row.sha256}.jpg").exists()


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_an_indexed_file_swapped_for_a_link_to_another_image_is_not_served(
        own_client, own_library, tmp_path, target):
    """Anyone who may write to a shared folder could link an indexed name to any image the
    server's user can read (#23): served neither as the original nor as a thumbnail, and
    `lookalike check` reports it."""
    path = own_library.files["circle"][5]
    row = row_for(own_library.data_dir, path)
    if target == "outside":
        private = tmp_path / "private" / "passport.png"
        private.parent.mkdir()
        draw("square", np.random.default_rng(77)).save(private)
    else:  # another image of the collection: inside the folder indexed, but not this file
        private = own_library.files["stripes"][4]
    path.unlink()
    path.symlink_to(private)
    for part in ("original", "thumbnail"):
        response = own_client.get(f"/images/{row.id}/{part}")
        assert_error(response, 404, "not_found")
        assert private.read_bytes()[:64] not in response.data
    result = run(own_library.data_dir, "check", "--json", ok=False)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["changed_files"] == [{"id": row.id, "path": row.path}]


# -- the page ------------------------------------------------------------------------------------

def test_page(client):
    response = client.get("/search")
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
