"""GET /api/library and /api/folders (the collection without a query), and the filters and
region that POST /api/search and /similar share with them."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from ..synthetic import draw
from .conftest import Library, assert_error, image_id, index_more, ok_json, upload

TAKEN = "2001:02:03 04:05:06"  # EXIF DateTimeOriginal of the two dated photos


def dated_jpeg(path, kind: str, seed: int) -> None:
    img = draw(kind, np.random.default_rng(seed)).convert("RGB")
    exif = img.getexif()
    exif.get_ifd(0x8769)[36867] = TAKEN
    img.save(path, "JPEG", exif=exif, quality=95)


@pytest.fixture
def dated(own_library) -> Library:
    """The library plus two JPEGs taken (by their EXIF) on 3 February 2001."""
    folder = own_library.collection / "2001"
    folder.mkdir()
    for i in range(2):
        dated_jpeg(folder / f"taken-{i}.jpg", "circle", 100 + i)
    index_more(own_library.data_dir, folder)
    return own_library


@pytest.fixture
def dated_client(apps, dated):
    return apps(dated.data_dir).test_client()


def listing(client, **params) -> dict:
    return ok_json(client, "/api/library", **params)


def test_the_library_comes_a_page_at_a_time_sorted(client, library):
    everything = listing(client, per_page=500, sort="name", order="asc")
    assert everything["total"] == len(library.all_files())
    paths = [i["path"] for i in everything["images"]]
    assert paths == sorted(paths)
    pages = [listing(client, per_page=7, page=p, sort="name", order="asc")["images"]
             for p in range(1, everything["total"] // 7 + 2)]
    assert [i["path"] for page in pages for i in page] == paths
    first = everything["images"][0]
    assert client.get(first["thumbnail_url"]).status_code == 200 and first["file_date"]
    errors = [i["reconstruction_error"] for i in listing(client, sort="error",
                                                         per_page=500)["images"]]
    assert errors == sorted(errors, reverse=True)
    assert "per_page" in assert_error(client.get("/api/library?per_page=0"), 400,
                                      "bad_parameter")
    assert "sort" in assert_error(client.get("/api/library?sort=size"), 400, "bad_parameter")


def test_folders_and_the_folder_filter(client, library):
    found = {f["path"]: f["images"] for f in client.get("/api/folders").get_json()["folders"]}
    circles = str(library.collection / "circle")
    in_circles = [p for p in library.files["circle"] if p.parent.name == "circle"]
    assert found[circles] == len(in_circles)
    assert found[str(library.collection)] == len(library.all_files())  # subfolders included
    only = listing(client, folder=circles, per_page=500)
    assert only["total"] == len(in_circles)
    assert all(i["path"].startswith(circles + "/") for i in only["images"])
    # The whole collection includes its subfolders; a folder name's prefix is not a folder.
    assert listing(client, folder=str(library.collection))["total"] == len(library.all_files())
    assert listing(client, folder=circles[:-1])["total"] == 0


def test_the_folder_filter_is_exact_about_names(apps, own_library):
    """Case counts (LIKE would not), and names that are not UTF-8 are inside their folder."""
    upper = own_library.collection / "CIRCLE"
    upper.mkdir()
    source = own_library.files["circle"][0]
    (upper / "shouty.png").write_bytes(source.read_bytes())
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    (own_library.collection / "circle" / odd).write_bytes(source.read_bytes())
    index_more(own_library.data_dir, own_library.collection)
    client = apps(own_library.data_dir).test_client()
    circles = listing(client, folder=str(own_library.collection / "circle"), per_page=500)
    names = {i["name"] for i in circles["images"]}
    assert "shouty.png" not in names and odd in names
    assert listing(client, folder=str(upper))["total"] == 1
    found = {f["path"] for f in client.get("/api/folders").get_json()["folders"]}
    assert str(upper) in found and str(own_library.collection / "circle") in found


def test_file_dates_are_exif_capture_times_else_mtime(dated_client, dated):
    day = {"date_from": "2001-02-03", "date_to": "2001-02-03"}
    taken = listing(dated_client, **day)
    assert taken["total"] == 2
    assert all(i["file_date"].startswith("2001-02-03T04:05:06") for i in taken["images"])
    assert listing(dated_client, date_to="2001-02-02")["total"] == 0
    oldest = listing(dated_client, sort="date", order="asc")["images"][0]
    assert oldest["taken_at"] is not None and "/2001/" in oldest["path"]
    newest = listing(dated_client, sort="date")["images"][0]
    assert newest["taken_at"] is None  # the PNGs: their mtime, today
    assert "date_from" in assert_error(dated_client.get("/api/library?date_from=3.2.2001"),
                                       400, "bad_parameter")


def test_search_and_similar_take_the_same_filters(dated_client, dated):
    query = dated.files["circle"][0].read_bytes()
    circles = str(dated.collection / "circle")
    hits = upload(dated_client, query, k="10", folder=circles).get_json()["results"]
    assert len(hits) == 10 and all(h["path"].startswith(circles + "/") for h in hits)
    taken = upload(dated_client, query, k="10", date_to="2001-12-31").get_json()["results"]
    assert sorted(h["path"] for h in taken) == sorted(
        str(p) for p in (dated.collection / "2001").iterdir())  # all that pass, though k is 10
    squares = str(dated.collection / "square")
    some = image_id(dated.data_dir, dated.files["circle"][0])
    similar = dated_client.get(f"/api/images/{some}/similar?k=5&folder={squares}").get_json()
    assert len(similar["results"]) == 5
    assert all(h["path"].startswith(squares + "/") for h in similar["results"])
    assert_error(upload(dated_client, query, date_from="yesterday"), 400, "bad_parameter")


def halves(left: str, right: str) -> bytes:
    """A 96×48 PNG: a *left* shape beside a *right* one."""
    img = Image.new("RGB", (96, 48))
    img.paste(draw(left, np.random.default_rng(1)).convert("RGB").resize((48, 48)), (0, 0))
    img.paste(draw(right, np.random.default_rng(2)).convert("RGB").resize((48, 48)), (48, 0))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_a_region_of_the_query_is_searched_alone(client):
    data = halves("circle", "stripes")
    left = upload(client, data, k="5", box="0,0,48,48").get_json()
    right = upload(client, data, k="5", box="96,48,48,0").get_json()  # other corners, same idea
    assert left["query"]["box"] == [0, 0, 48, 48] and right["query"]["box"] == [48, 0, 96, 48]
    assert [h["id"] for h in left["results"]] != [h["id"] for h in right["results"]]
    assert "circle" in left["results"][0]["path"] and "stripes" in right["results"][0]["path"]
    clipped = upload(client, data, k="5", box="48,0,500,500").get_json()
    assert [h["id"] for h in clipped["results"]] == [h["id"] for h in right["results"]]
    edge = upload(client, data, k="5", box="95,47,300,300").get_json()  # one pixel is on it
    assert edge["query"]["box"] == [95, 47, 96, 48]
    for off in ("96,0,300,300", "500,500,900,900", "0,48,10,60"):  # no pixel of it is
        message = assert_error(upload(client, data, k="5", box=off), 400, "bad_parameter")
        assert "outside the image, which is 96×48 pixels" in message
    assert "box" in assert_error(upload(client, data, box="1,2,3"), 400, "bad_parameter")


def test_a_small_region_of_a_large_photo(client):
    """A 24 MP JPEG: a full-scale decode would not fit the decode budget, so a region is
    decoded only as finely as it needs (libjpeg's DCT scaling)."""
    img = Image.new("RGB", (6000, 4000), (40, 90, 160))
    img.paste((230, 200, 40), (0, 0, 3000, 2000))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    answer = upload(client, out.getvalue(), "big.jpg", k="3", box="10,10,110,110")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["query"]["box"] == [10, 10, 110, 110]
