"""GET /api/duplicates (groups a page at a time) and the decisions on them: recorded by
content, honoured by later requests, a restarted app and the CLI, undone on request."""
from __future__ import annotations

import json

import pytest
from PIL import Image

import search.duplicates as duplicates
from search.decisions import list_decisions
from search.store import Store

from ..cli.conftest import run
from .conftest import Library, assert_error, image_id, index_more, ok_json

EXACT = "0.9999"  # only identical content (and numerically identical codes) passes


@pytest.fixture
def copies(own_library) -> Library:
    """The library plus two identical copies of one circle and a larger copy of a square."""
    folder = own_library.collection / "copies"
    folder.mkdir()
    circle, square = own_library.files["circle"][0], own_library.files["square"][0]
    for name in ("circle-again.png", "circle-once-more.png"):
        (folder / name).write_bytes(circle.read_bytes())
    Image.open(square).resize((96, 96), Image.NEAREST).save(folder / "square-large.png")
    index_more(own_library.data_dir, folder)
    return own_library


@pytest.fixture
def copies_client(apps, copies):
    return apps(copies.data_dir).test_client()


def groups(client, **params) -> dict:
    return ok_json(client, "/api/duplicates", **params)


def group_of(body: dict, path) -> dict:
    return next(g for g in body["groups"] if str(path) in [i["path"] for i in g["images"]])


def decide(client, **body):
    return client.post("/api/duplicates/decisions", json=body)


def test_groups_show_the_copies_with_their_facts_and_links(copies_client, copies):
    body = groups(copies_client, threshold=EXACT)
    assert body["threshold"] == float(EXACT) and body["status"] == "pending"
    circle = group_of(body, copies.files["circle"][0])
    assert circle["exact"] and circle["size"] == 3 and circle["decision"] is None
    first = circle["images"][0]
    assert first["largest"] and first["width"] > 0 and first["bytes"] > 0
    assert first["name"] in {"circle-again.png", "circle-once-more.png",
                             copies.files["circle"][0].name}
    for url in ("thumbnail_url", "reconstruction_url", "original_url"):
        assert copies_client.get(first[url]).status_code == 200


def test_groups_come_a_page_at_a_time(copies_client):
    whole = groups(copies_client, threshold="0.9", per_page=100)
    assert whole["total"] >= 2 and whole["pages"] == 1
    seen = []
    for page in range(1, whole["total"] + 1):
        body = groups(copies_client, threshold="0.9", per_page=1, page=page)
        assert body["pages"] == whole["total"] and len(body["groups"]) == 1
        seen += body["groups"]
    assert [g["id"] for g in seen] == [g["id"] for g in whole["groups"]]
    past = groups(copies_client, threshold="0.9", per_page=1, page=whole["total"] + 1)
    assert past["groups"] == [] and past["total"] == whole["total"]
    assert "per_page" in assert_error(copies_client.get("/api/duplicates?per_page=0"), 400,
                                      "bad_parameter")


def test_one_images_copies_are_its_group_alone(copies_client, copies):
    """duplicates?image=ID (the lightbox's "Its copies"): that image's group, or none."""
    circle = image_id(copies.data_dir, copies.files["circle"][0])
    body = groups(copies_client, threshold=EXACT, image=circle, status="all")
    assert body["total"] == 1 and circle in [i["id"] for i in body["groups"][0]["images"]]
    alone = image_id(copies.data_dir, copies.files["square"][-1])
    assert groups(copies_client, threshold=EXACT, image=alone, status="all")["total"] == 0
    assert "image" in assert_error(copies_client.get("/api/duplicates?image=-1"), 400,
                                   "bad_parameter")


def test_a_new_copy_shows_on_the_next_request(copies_client, copies):
    circle = copies.files["circle"][0]
    assert group_of(groups(copies_client, threshold=EXACT), circle)["size"] == 3
    later = copies.collection / "later"
    later.mkdir()
    (later / "circle-later.png").write_bytes(circle.read_bytes())
    index_more(copies.data_dir, later)  # the catalog changed: the kept candidates are stale
    assert group_of(groups(copies_client, threshold=EXACT), circle)["size"] == 4


def test_undone_decision_ids_are_not_given_again(copies_client, copies):
    """A page still showing an undone decision must not undo the next one by its id."""
    circle = group_of(groups(copies_client, threshold=EXACT), copies.files["circle"][0])
    ids = [i["id"] for i in circle["images"]]
    first = decide(copies_client, kind="keep", images=ids, keep=ids[0]).get_json()["decision"]
    copies_client.delete(f"/api/duplicates/decisions/{first['id']}")
    second = decide(copies_client, kind="not_duplicates", images=ids).get_json()["decision"]
    assert second["id"] != first["id"]
    dismissed = group_of(groups(copies_client, threshold=EXACT, status="reviewed"),
                         copies.files["circle"][0])
    assert dismissed["decision"]["kind"] == "not_duplicates"
    assert not any(i["kept"] for i in dismissed["images"])


def test_keep_this_one_is_remembered_and_undone(apps, copies_client, copies):
    circle = group_of(groups(copies_client, threshold=EXACT), copies.files["circle"][0])
    ids = [i["id"] for i in circle["images"]]
    answer = decide(copies_client, kind="keep", images=ids, keep=ids[-1])
    assert answer.status_code == 201, answer.get_data(as_text=True)
    decision = answer.get_json()["decision"]
    assert decision["kind"] == "keep" and decision["keep_id"] == ids[-1]

    pending = groups(copies_client, threshold=EXACT)
    assert all(g["id"] != circle["id"] for g in pending["groups"])
    assert pending["counts"]["reviewed"] == 1
    # A restarted app reads it back from the catalog.
    reviewed = groups(apps(copies.data_dir).test_client(), threshold=EXACT, status="reviewed")
    kept = group_of(reviewed, copies.files["circle"][0])
    assert kept["decision"]["id"] == decision["id"] and kept["images"][0]["id"] == ids[-1]
    assert [i["kept"] for i in kept["images"]] == [True, False, False]
    assert kept["images"][0]["largest"] is (ids[-1] == ids[0])

    undone = copies_client.delete(f"/api/duplicates/decisions/{decision['id']}")
    assert undone.status_code == 200 and undone.get_json() == {"id": decision["id"],
                                                               "undone": True}
    assert group_of(groups(copies_client, threshold=EXACT), copies.files["circle"][0])
    assert_error(copies_client.delete(f"/api/duplicates/decisions/{decision['id']}"), 404,
                 "not_found")


def test_not_duplicates_keeps_contents_apart_in_later_runs(copies_client, copies):
    square, large = copies.files["square"][0], copies.collection / "copies" / "square-large.png"
    circle = copies.files["circle"][0]
    ids = [image_id(copies.data_dir, p) for p in (square, large, circle)]
    threshold = "-1"  # every pair passes: only decisions can keep images apart
    together = group_of(groups(copies_client, threshold=threshold), square)
    assert {str(large), str(circle)} <= {i["path"] for i in together["images"]}
    assert decide(copies_client, kind="not_duplicates", images=ids).status_code == 201

    body = groups(copies_client, threshold=threshold, status="all", per_page=100)
    for group in body["groups"]:
        paths = {i["path"] for i in group["images"]}
        assert len(paths & {str(square), str(large), str(circle)}) <= 1, group
    # Identical files stay a group: a decision keeps different contents apart, not bytes.
    assert group_of(groups(copies_client, threshold=EXACT), circle)["size"] == 3
    # The CLI, a later run in another process, honours it too.
    cli = json.loads(run(copies.data_dir, "duplicates", "--json", "--threshold", threshold,
                         "--status", "all").stdout)
    for group in cli["groups"]:
        assert len({i["path"] for i in group["images"]} & {str(square), str(large)}) <= 1


def test_dismissing_identical_files_makes_them_reviewed(copies_client, copies):
    circle = group_of(groups(copies_client, threshold=EXACT), copies.files["circle"][0])
    ids = [i["id"] for i in circle["images"]]
    assert decide(copies_client, kind="not_duplicates", images=ids).status_code == 201
    assert all(g["id"] != circle["id"] for g in groups(copies_client, threshold=EXACT)["groups"])
    reviewed = groups(copies_client, threshold=EXACT, status="reviewed")["groups"]
    assert [g["id"] for g in reviewed] == [circle["id"]]
    assert reviewed[0]["decision"]["kind"] == "not_duplicates"
    cli = json.loads(run(copies.data_dir, "duplicates", "--json", "--threshold", EXACT,
                         "--status", "reviewed").stdout)
    assert [g["decision"]["kind"] for g in cli["groups"]] == ["not_duplicates"]


@pytest.mark.parametrize("body, status, code", [
    ({"kind": "maybe", "images": [1, 2]}, 400, "bad_parameter"),
    ({"kind": "keep", "images": [1, 2]}, 400, "bad_parameter"),  # which one?
    ({"kind": "keep", "images": [1, 2], "keep": 10**9}, 404, "not_found"),
    ({"kind": "not_duplicates", "images": [1, 2], "keep": 1}, 400, "bad_parameter"),
    ({"kind": "not_duplicates", "images": [1]}, 400, "bad_parameter"),
    ({"kind": "not_duplicates", "images": [1, 1]}, 400, "bad_parameter"),
    ({"images": [1, 2]}, 400, "bad_parameter"),
    ([1, 2], 400, "bad_request"),
    ({"kind": "not_duplicates", "images": ["1", "2"]}, 400, "bad_parameter"),
    ({"kind": "not_duplicates", "images": [1, 10**9]}, 404, "not_found"),
])
def test_bad_decisions_are_refused_and_record_nothing(copies_client, copies, body, status, code):
    assert_error(copies_client.post("/api/duplicates/decisions", json=body), status, code)
    store = Store.open(copies.data_dir)
    assert list_decisions(store) == []
    store.close()


def test_decisions_take_json_from_this_site_only(copies_client):
    form = copies_client.post("/api/duplicates/decisions",
                              data={"kind": "not_duplicates", "images": "1"})
    assert_error(form, 415, "unsupported_media_type")
    body = {"kind": "not_duplicates", "images": [1, 2]}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        assert_error(copies_client.post("/api/duplicates/decisions", json=body,
                                        headers=headers), 403, "cross_site")
        assert_error(copies_client.delete("/api/duplicates/decisions/1", headers=headers), 403,
                     "cross_site")
    same = copies_client.post("/api/duplicates/decisions", json=body,
                              headers={"Origin": "http://localhost", "Sec-Fetch-Site":
                                       "same-origin"})
    assert same.status_code == 201, same.get_data(as_text=True)


def test_a_threshold_too_low_for_the_library_is_a_clear_400(copies_client, monkeypatch):
    monkeypatch.setattr(duplicates, "MAX_PAIRS", 10)
    message = assert_error(copies_client.get("/api/duplicates?threshold=-1"), 400,
                           "bad_parameter")
    assert "raise the threshold" in message
