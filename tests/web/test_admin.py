"""The operator endpoints: off by default, token-guarded, and writers like ``lookalike index``.

One tiny model and index are built per module; every test that writes
gets its own_library copy of the collection and the data dir.
"""
from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.lock import DataDirBusy, WriterLock
from search.settings import Settings
from search.store import Store, outermost
from web.security import token_matches

from ..synthetic import draw
from .conftest import (HOSTILE_NAME, Library, assert_error, build_library, close_app, image_id,
                       index_more, make_app)

TOKEN = "correct-horse-battery-staple-Ω"  # non-ASCII on purpose: compared as bytes
AUTH = {"Authorization": f"Bearer {TOKEN}".encode().decode("latin-1")}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("admin"), per_class=8,
                         extra={HOSTILE_NAME: "circle"})


@pytest.fixture
def clients(apps):
    """``clients(data_dir, **settings)``: a client of a new app, closed (its jobs done) after."""
    return lambda data_dir, **settings_: apps(data_dir, **settings_).test_client()


def wait_until_done(job_id: str, client, limit: float = 120.0) -> dict:
    """Poll the job until it is no longer running (bounded, so a hang fails the test)."""
    deadline = time.monotonic() + limit
    while True:
        response = client.get(f"/api/admin/jobs/{job_id}", headers=AUTH)
        body = response.get_json()
        assert response.status_code == 200, body
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, f"job still running after {limit} s: {body}"
        time.sleep(0.05)


def assert_consistent(data_dir: Path) -> set[int]:
    """The saved index holds exactly the catalog's ids, and says it is current."""
    store = Store.open(data_dir)
    ids = store.catalog_ids()
    assert sorted(store.load_index().ids().tolist()) == sorted(ids)
    assert store.index_is_current()
    store.close()
    return ids


def search_ids(client, data: bytes, k: int = 100) -> list[int]:
    response = client.post("/api/search", data={"image": (io.BytesIO(data), "q.png"), "k": k,
                                                "reconstruction": "false"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [hit["id"] for hit in response.get_json()["results"]]


# -- off by default, then token-guarded ----------------------------------------------------------

ADMIN_CALLS = [("post", "/api/admin/reindex"), ("get", "/api/admin/jobs/0123456789abcdef"),
               ("delete", "/api/admin/images/1"), ("get", "/api/admin/exclusions"),
               ("delete", "/api/admin/exclusions/1")]


@pytest.mark.parametrize("method,url", ADMIN_CALLS)
def test_disabled_without_a_token(clients, library, method, url):
    client = clients(library.data_dir)
    for headers in ({}, AUTH, {"Authorization": "Bearer "}):
        message = assert_error(getattr(client, method)(url, headers=headers), 403,
                               "admin_disabled")
        assert "LOOKALIKE_ADMIN_TOKEN" in message
    assert client.get("/api/images/1").status_code == 200  # nothing was deleted


def test_an_empty_token_setting_keeps_them_disabled(clients, library, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_ADMIN_TOKEN", "")
    client = clients(library.data_dir)
    assert_error(client.delete("/api/admin/images/1", headers={"Authorization": "Bearer "}),
                 403, "admin_disabled")


@pytest.mark.parametrize("method,url", ADMIN_CALLS)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN[:-1]}", "Bearer",
                                    f"Basic {TOKEN}", TOKEN, "Bearer  ", f"bearer {TOKEN}x"])
def test_401_without_the_right_token(clients, library, method, url, header):
    client = clients(library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    headers = {} if header is None else {"Authorization": header.encode().decode("latin-1")}
    response = getattr(client, method)(url, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/images/1").status_code == 200


def test_token_from_the_environment(clients, library, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_ADMIN_TOKEN", "from-env")
    client = clients(library.data_dir)
    assert_error(client.get("/api/admin/jobs/x", headers={"Authorization": "Bearer from-env"}),
                 404, "not_found")  # past the guard: the job does not exist


@pytest.fixture(scope="module")
def guarded(library):
    app = make_app(library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    yield app.test_client()
    close_app(app)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(
    st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=60),
    st.builds(lambda scheme, tail: scheme + tail,
              st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Bearer " + AUTH[
                  "Authorization"][7:-3]]),
              st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20))))
def test_any_authorization_header_is_401(guarded, header):
    response = guarded.delete("/api/admin/images/1", headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")


def test_token_matches():
    """Header values arrive as latin-1 text (WSGI); the token is compared as UTF-8 bytes."""
    wire = AUTH["Authorization"]
    assert token_matches(wire, TOKEN)
    assert token_matches(f"  bearer   {wire[7:]}  ", TOKEN)
    assert not token_matches(wire, TOKEN + "x")
    assert not token_matches(f"Bearer {TOKEN}", TOKEN)  # not latin-1: never from a client
    assert not token_matches("Bearer \udcff", TOKEN)  # no TypeError on odd characters
    assert not token_matches("", TOKEN)


# -- DELETE /api/admin/images/<id> -------------------------------------------------------------

def test_delete_removes_row_and_vector_but_not_the_file(clients, own_library):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    path = own_library.files["square"][3]
    doomed = image_id(own_library.data_dir, path)
    before = assert_consistent(own_library.data_dir)
    assert search_ids(client, path.read_bytes())[0] == doomed
    assert client.get(f"/images/{doomed}/thumbnail").status_code == 200  # now cached

    response = client.delete(f"/api/admin/images/{doomed}", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body == {"id": doomed, "path": str(path.resolve()), "deleted": True,
                    "file_deleted": False, "excluded": True,
                    "exclusion_id": body["exclusion_id"]}
    assert isinstance(body["exclusion_id"], int)

    assert path.is_file()  # the file on disk is left alone
    assert assert_consistent(own_library.data_dir) == before - {doomed}
    assert doomed not in search_ids(client, path.read_bytes())  # the running app reloads
    assert_error(client.get(f"/api/images/{doomed}"), 404, "not_found")
    assert_error(client.get(f"/images/{doomed}/thumbnail"), 404, "not_found")
    # its cached thumbnail went too
    assert not list((own_library.data_dir / "thumbs").glob("*.jpg"))
    assert_error(client.delete(f"/api/admin/images/{doomed}", headers=AUTH), 404, "not_found")


def test_delete_keeps_a_thumbnail_another_file_shares(clients, own_library):
    copy = own_library.collection / "copy-of-a-square.png"
    shutil.copy(own_library.files["square"][0], copy)
    index_more(own_library.data_dir, own_library.collection)
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    doomed = image_id(own_library.data_dir, copy)
    assert client.get(f"/images/{doomed}/thumbnail").status_code == 200
    assert client.delete(f"/api/admin/images/{doomed}", headers=AUTH).status_code == 200
    assert len(list((own_library.data_dir / "thumbs").glob("*.jpg"))) == 1
    survivor = image_id(own_library.data_dir, own_library.files["square"][0])
    assert client.get(f"/images/{survivor}/thumbnail").status_code == 200
    assert_consistent(own_library.data_dir)


def test_delete_with_a_stale_index_leaves_the_rebuild_to_the_next_indexer(clients, own_library):
    """An index behind the catalog (an indexer killed before saving) is not patched: the
    row goes, searches skip its id, and the next `lookalike index` rebuilds from the catalog."""
    store = Store.open(own_library.data_dir)
    with store.sessions() as session, session.begin():
        store.mark_catalog_changed(session)
    path = own_library.files["circle"][2]
    doomed = image_id(own_library.data_dir, path)
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    assert client.delete(f"/api/admin/images/{doomed}", headers=AUTH).status_code == 200
    assert doomed in store.load_index().ids().tolist()  # untouched
    assert doomed not in search_ids(client, path.read_bytes())
    path.unlink()  # else the next run would add it back
    index_more(own_library.data_dir, own_library.collection)
    assert doomed not in assert_consistent(own_library.data_dir)


def test_a_deleted_image_stays_out_of_reindexing_until_its_exclusion_is_lifted(clients,
                                                                              own_library):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    path = own_library.files["circle"][1]
    doomed = image_id(own_library.data_dir, path)
    deleted = client.delete(f"/api/admin/images/{doomed}", headers=AUTH).get_json()
    assert deleted["excluded"] is True
    # A plain re-index skips it, and a renamed copy of it too; nothing else changes.
    shutil.copy(path, own_library.collection / "renamed-copy.png")
    summary = index_more(own_library.data_dir, own_library.collection)
    assert summary["excluded"] == 2 and summary["added"] == 0 and summary["removed"] == 0
    assert doomed not in assert_consistent(own_library.data_dir)
    listed = client.get("/api/admin/exclusions", headers=AUTH).get_json()["exclusions"]
    assert [(e["id"], e["path"]) for e in listed] == [(deleted["exclusion_id"],
                                                       str(path.resolve()))]
    stats = client.get("/api/stats").get_json()
    assert stats["excluded"] == 1
    # Lifted: the next run adds the file and its copy back, under new ids.
    lifted = client.delete(f"/api/admin/exclusions/{deleted['exclusion_id']}", headers=AUTH)
    assert lifted.status_code == 200 and lifted.get_json()["lifted"] is True
    assert client.get("/api/admin/exclusions", headers=AUTH).get_json() == {"exclusions": []}
    assert index_more(own_library.data_dir, own_library.collection)["added"] == 2
    back = image_id(own_library.data_dir, path)
    assert back != doomed and back in assert_consistent(own_library.data_dir)
    assert_error(client.delete(f"/api/admin/exclusions/{deleted['exclusion_id']}",
                               headers=AUTH), 404, "not_found")


def test_delete_without_exclusion_lets_reindexing_add_the_file_back(clients, own_library):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    path = own_library.files["square"][1]
    doomed = image_id(own_library.data_dir, path)
    assert_error(client.delete(f"/api/admin/images/{doomed}?exclude=maybe", headers=AUTH),
                 400, "bad_parameter")
    assert doomed in assert_consistent(own_library.data_dir)  # the bad request changed nothing
    body = client.delete(f"/api/admin/images/{doomed}?exclude=false", headers=AUTH).get_json()
    assert body["excluded"] is False and body["exclusion_id"] is None
    assert index_more(own_library.data_dir, own_library.collection)["added"] == 1
    assert image_id(own_library.data_dir, path) in assert_consistent(own_library.data_dir)


def test_moving_an_indexed_copy_of_an_excluded_image_keeps_it(clients, own_library):
    """Exclusion by content stops new copies, not ones already indexed that are moved."""
    copy = own_library.collection / "copy.png"
    shutil.copy(own_library.files["stripes"][0], copy)
    index_more(own_library.data_dir, own_library.collection)
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    kept = image_id(own_library.data_dir, copy)
    original = image_id(own_library.data_dir, own_library.files["stripes"][0])
    assert client.delete(f"/api/admin/images/{original}", headers=AUTH).status_code == 200
    moved = own_library.collection / "moved-copy.png"
    copy.rename(moved)
    summary = index_more(own_library.data_dir, own_library.collection)
    assert summary["moved"] == 1 and summary["excluded"] == 1  # the deleted original's path
    assert image_id(own_library.data_dir, moved) == kept


@pytest.mark.parametrize("raw", ["999999", "-1", "0x1", "1.0", "..%2f..%2fetc%2fpasswd",
                                 "%2Fetc%2Fpasswd", "9" * 30])
def test_delete_unknown_or_malformed_id_is_404(clients, own_library, raw):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    before = assert_consistent(own_library.data_dir)
    assert_error(client.delete(f"/api/admin/images/{raw}", headers=AUTH), 404, "not_found")
    assert assert_consistent(own_library.data_dir) == before


# -- POST /api/admin/reindex and its job ----------------------------------------------------------

def start_reindex(client, **kwargs) -> dict:
    response = client.post("/api/admin/reindex", headers=AUTH, **kwargs)
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/admin/jobs/{body['id']}")
    assert body["status_url"] == response.headers["Location"]
    return body


def test_reindex_picks_up_a_new_file_in_the_configured_folder(clients, own_library):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                     LOOKALIKE_INDEX_FOLDERS=[str(own_library.collection)])
    new = own_library.collection / "circle" / "brand-new.png"
    draw("circle", np.random.default_rng(99)).save(new)
    job = start_reindex(client)
    assert job["folders"] == [str(own_library.collection)]

    done = wait_until_done(job["id"], client)
    assert done["status"] == "done" and done["error"] is None, done
    (result,) = done["results"]
    assert result["status"] == "done" and result["added"] == 1 and result["failed"] == 0
    assert done["finished_at"] >= done["started_at"]
    new_id = image_id(own_library.data_dir, new)
    assert search_ids(client, new.read_bytes())[0] == new_id
    assert new_id in assert_consistent(own_library.data_dir)


def test_reindex_defaults_to_the_catalogs_folders_and_drops_vanished_files(clients,
                                                                           own_library):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    gone = own_library.files["stripes"][1]
    gone_id = image_id(own_library.data_dir, gone)
    gone.unlink()
    job = start_reindex(client)
    # circle/, square/... and a file
    assert job["folders"] == [str(own_library.collection.resolve())]
    done = wait_until_done(job["id"], client)
    assert done["status"] == "done" and done["results"][0]["removed"] == 1, done
    assert gone_id not in assert_consistent(own_library.data_dir)


def test_reindex_ignores_folders_in_the_request(clients, own_library, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    draw("square", np.random.default_rng(5)).save(elsewhere / "planted.png")
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                     LOOKALIKE_INDEX_FOLDERS=[str(own_library.collection)])
    job = start_reindex(client, json={"folder": str(elsewhere), "folders": [str(elsewhere)]},
                        query_string={"folder": str(elsewhere)})
    assert job["folders"] == [str(own_library.collection)]
    wait_until_done(job["id"], client)
    store = Store.open(own_library.data_dir)
    with store.sessions() as s:
        from sqlalchemy import select

        from search.catalog import ImageRecord

        paths = list(s.scalars(select(ImageRecord.path)))
    assert not any(p.startswith(str(elsewhere)) for p in paths)


def test_reindex_skips_a_missing_folder_and_keeps_its_images(clients, own_library, tmp_path):
    missing = tmp_path / "unmounted"
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                     LOOKALIKE_INDEX_FOLDERS=os.pathsep.join([str(missing),
                                                              str(own_library.collection)]))
    before = assert_consistent(own_library.data_dir)
    done = wait_until_done(start_reindex(client)["id"], client)
    assert done["status"] == "done"
    assert [r["status"] for r in done["results"]] == ["skipped", "done"]
    assert "kept" in done["results"][0]["reason"]
    assert assert_consistent(own_library.data_dir) == before


def test_reindex_with_nothing_to_index_is_409(clients, tmp_path, library):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(library.data_dir / "model.pt", data / "model.pt")
    client = clients(data, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    assert_error(client.post("/api/admin/reindex", headers=AUTH), 409, "nothing_to_index")


def test_reindex_without_a_model_is_503(clients, tmp_path):
    client = clients(tmp_path / "empty", LOOKALIKE_ADMIN_TOKEN=TOKEN)
    assert_error(client.post("/api/admin/reindex", headers=AUTH), 503, "not_ready")


@pytest.mark.parametrize("job_id", ["nope", "0" * 16, "../../etc/passwd", "%2e%2e%2f", "é",
                                    "x" * 500])
def test_unknown_job_is_404(clients, library, job_id):
    client = clients(library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    assert_error(client.get(f"/api/admin/jobs/{job_id}", headers=AUTH), 404, "not_found")


# -- one writer at a time --------------------------------------------------------------------------

def test_409_while_another_writer_holds_the_lock(clients, own_library):
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                     LOOKALIKE_INDEX_FOLDERS=[str(own_library.collection)])
    victim = image_id(own_library.data_dir, own_library.files["circle"][0])
    with WriterLock(own_library.data_dir, "indexing"):  # as `lookalike index` would
        message = assert_error(client.post("/api/admin/reindex", headers=AUTH), 409, "busy")
        assert "indexing" in message
        assert_error(client.delete(f"/api/admin/images/{victim}", headers=AUTH), 409, "busy")
    assert client.get(f"/api/images/{victim}").status_code == 200
    assert client.delete(f"/api/admin/images/{victim}", headers=AUTH).status_code == 200
    exclusion = client.get("/api/admin/exclusions", headers=AUTH).get_json()["exclusions"][0]
    with WriterLock(own_library.data_dir, "indexing"):  # lifting one writes to the catalog too
        assert_error(client.delete(f"/api/admin/exclusions/{exclusion['id']}", headers=AUTH),
                     409, "busy")
    assert client.get("/api/admin/exclusions", headers=AUTH).get_json()["exclusions"] == [
        exclusion]
    wait_until_done(start_reindex(client)["id"], client)


def test_a_running_job_holds_the_lock(clients, own_library, monkeypatch):
    """While a job runs, other writers (this app's delete, `lookalike index`) get 409."""
    import threading

    import indexer.job

    release = threading.Event()
    real = indexer.job.index_folder

    def slow_index_folder(*args, **kwargs):
        release.wait(60)
        return real(*args, **kwargs)

    # the call the job makes (indexer.job.reindex_folder), held until released
    monkeypatch.setattr(indexer.job, "index_folder", slow_index_folder)
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                     LOOKALIKE_INDEX_FOLDERS=[str(own_library.collection)])
    job = start_reindex(client)
    try:
        assert_error(client.post("/api/admin/reindex", headers=AUTH), 409, "busy")
        assert_error(client.delete("/api/admin/images/1", headers=AUTH), 409, "busy")
        with pytest.raises(DataDirBusy, match="re-indexing"):
            WriterLock(own_library.data_dir).acquire()
        assert client.get(f"/api/admin/jobs/{job['id']}", headers=AUTH).get_json()[
            "status"] == "running"
    finally:
        release.set()
    assert wait_until_done(job["id"], client)["status"] == "done"
    with WriterLock(own_library.data_dir):  # released when the job ended
        pass
    assert_consistent(own_library.data_dir)


def test_a_failed_job_says_why_and_releases_the_lock(clients, own_library, monkeypatch):
    import indexer.job

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(indexer.job, "index_folder", broken)
    client = clients(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                     LOOKALIKE_INDEX_FOLDERS=[str(own_library.collection)])
    done = wait_until_done(start_reindex(client)["id"], client)
    assert done["status"] == "failed" and "disk on fire" in done["error"]
    with WriterLock(own_library.data_dir):
        pass


# -- settings and helpers --------------------------------------------------------------------------

def test_settings_from_the_environment():
    environ = {"LOOKALIKE_ADMIN_TOKEN": "t", "LOOKALIKE_INDEX_FOLDERS":
               os.pathsep.join(["/srv/photos", "", "/mnt/more photos"])}
    settings = Settings.load(None, environ)
    assert settings.admin_token == "t"
    assert settings.index_folders == ("/srv/photos", "/mnt/more photos")
    unset = Settings.load(None, {"LOOKALIKE_ADMIN_TOKEN": "", "LOOKALIKE_INDEX_FOLDERS": ""})
    assert unset.admin_token is None and unset.index_folders is None


def test_outermost_folders():
    assert outermost(["/a/b", "/a", "/a-b", "/a/b/c", "/c/d", "/c/e", "/c/d/e"]) == [
        "/a", "/a-b", "/c/d", "/c/e"]
    assert outermost(["/x/.hidden/y", "/x"]) == ["/x"]
    assert outermost([]) == []


def test_openapi_documents_the_admin_endpoints(clients, library):
    doc = clients(library.data_dir).get("/api/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    for path, method in [("/api/admin/reindex", "post"), ("/api/admin/jobs/{job_id}", "get"),
                         ("/api/admin/images/{image_id}", "delete")]:
        operation = doc["paths"][path][method]
        assert operation["security"] == [{"adminToken": []}]
        assert {"401", "403"} <= set(operation["responses"])
