"""``/api/trash``: reading is for readers; moving files is for the admin, from this site only;
a trashed image leaves the search at once and comes back with the same id."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from search.trash import TRASH_FOLDER

from .conftest import assert_error, image_id

TOKEN = "trash-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MOVES = [("/api/trash", {"images": [1]}), ("/api/trash/restore", {"images": [1]}),
         ("/api/trash/empty", {})]


@pytest.fixture
def admin_client(apps, own_library):
    return apps(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN).test_client()


def found_ids(client, data: bytes) -> list[int]:
    response = client.post("/api/search", data={"image": (io.BytesIO(data), "q.png"), "k": 100,
                                                "reconstruction": "false"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [hit["id"] for hit in response.get_json()["results"]]


@pytest.mark.parametrize("url,body", MOVES)
def test_moves_need_the_admin_token_and_this_site(apps, own_library, url, body):
    disabled = apps(own_library.data_dir).test_client()
    assert_error(disabled.post(url, json=body, headers=AUTH), 403, "admin_disabled")
    client = apps(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        assert_error(client.post(url, json=body, headers=headers), 401, "unauthorized")
    for foreign in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert_error(client.post(url, json=body, headers={**AUTH, **foreign}), 403,
                     "cross_site")
    assert client.get("/api/trash").get_json() == {"trash": []}
    assert all(p.exists() for p in own_library.all_files())


def test_trash_list_thumbnail_restore(admin_client, own_library):
    victim_file = own_library.files["circle"][0]
    victim = image_id(own_library.data_dir, victim_file)
    content = victim_file.read_bytes()
    assert found_ids(admin_client, content)[0] == victim

    moved = admin_client.post("/api/trash", json={"images": [victim]},
                              headers={**AUTH, "Origin": "http://localhost"})
    assert moved.status_code == 200, moved.get_json()
    [item] = moved.get_json()["trashed"]
    assert item["id"] == victim and item["path"] == str(victim_file) and item["present"]
    assert item["trash_path"].startswith(str(own_library.collection / TRASH_FOLDER))
    assert not victim_file.exists()
    assert victim not in found_ids(admin_client, content)
    assert_error(admin_client.get(f"/images/{victim}/thumbnail"), 404, "not_found")

    listed = admin_client.get("/api/trash").get_json()["trash"]
    assert [t["id"] for t in listed] == [victim]
    thumb = admin_client.get(listed[0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.data)).size[0] > 0

    again = admin_client.post("/api/trash", json={"images": [victim]}, headers=AUTH)
    assert_error(again, 404, "not_found")
    back = admin_client.post("/api/trash/restore", json={"images": [victim]}, headers=AUTH)
    assert back.status_code == 200
    assert back.get_json() == {"restored": [{"id": victim, "path": str(victim_file),
                                             "reencode": False}]}
    assert victim_file.read_bytes() == content
    assert found_ids(admin_client, content)[0] == victim
    assert admin_client.get("/api/trash").get_json() == {"trash": []}


def test_bad_requests_move_nothing(admin_client, own_library):
    files = own_library.all_files()
    ids = [image_id(own_library.data_dir, f) for f in files[:2]]
    for body, status, code in (({"images": []}, 400, "bad_parameter"),
                               ({"images": [ids[0], ids[0]]}, 400, "bad_parameter"),
                               ({"images": ["1"]}, 400, "bad_parameter"),
                               ({"ids": [1]}, 400, "bad_request"),
                               ({"images": [ids[0], 10**9]}, 404, "not_found")):
        assert_error(admin_client.post("/api/trash", json=body, headers=AUTH), status, code)
    assert_error(admin_client.post("/api/trash", data="images=1", headers=AUTH), 415,
                 "unsupported_media_type")
    files[1].write_bytes(files[1].read_bytes() + b"\0")  # swapped since indexed
    assert_error(admin_client.post("/api/trash", json={"images": ids}, headers=AUTH), 409,
                 "cannot_move")
    assert all(f.exists() for f in files)
    assert_error(admin_client.post("/api/trash/empty", query_string={"older_than_days": "-1"},
                                   headers=AUTH), 400, "bad_parameter")
    for bad in ({"older_than_days": -1}, {"older_than_days": "1"}, {"days": 1},
                {"older_than_days": None}):  # null must not mean "everything"
        response = admin_client.post("/api/trash/empty", json=bad, headers=AUTH)
        assert response.status_code == 400, bad
    assert admin_client.get("/api/trash").get_json() == {"trash": []}


def test_empty_deletes_only_what_is_old_enough(admin_client, own_library):
    victim_file = own_library.files["square"][0]
    victim = image_id(own_library.data_dir, victim_file)
    admin_client.post("/api/trash", json={"images": [victim]}, headers=AUTH)
    kept = admin_client.post("/api/trash/empty", json={"older_than_days": 1}, headers=AUTH)
    assert kept.get_json() == {"deleted": []}
    by_query = admin_client.post("/api/trash/empty?older_than_days=1", json={}, headers=AUTH)
    assert by_query.get_json() == {"deleted": []}  # a body without the field: the query's
    [trashed] = admin_client.get("/api/trash").get_json()["trash"]
    emptied = admin_client.post("/api/trash/empty", headers=AUTH).get_json()["deleted"]
    assert [t["id"] for t in emptied] == [victim]
    assert not victim_file.exists() and not (own_library.collection / TRASH_FOLDER / (
        trashed["trash_path"].rsplit("/", 1)[1])).exists()
    assert_error(admin_client.get(trashed["thumbnail_url"]), 404, "not_found")
