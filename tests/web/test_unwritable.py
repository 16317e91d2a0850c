"""The web app over a data dir that cannot be written: every page and read answers, every
write is the documented 503 ``read_only`` or 507 ``disk_full`` (never a 500), and a full
disk leaves nothing locked: once there is room, writes work again without a restart."""
from __future__ import annotations

import shutil

import pytest

from search.lock import WriterLock

from ..mounts import fill, read_only_view, tmpfs
from .conftest import Library, assert_error, image_id, ok_json, upload

pytestmark = pytest.mark.sqlite_only  # about SQLite's files and the data dir's folder

TOKEN = "let-me-write"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def decide_and_remove(client, library: Library) -> None:
    """A decision (id 1) and an exclusion (id 1), written while the data dir still can be."""
    ids = [image_id(library.data_dir, p) for p in library.files["stripes"][:2]]
    assert client.post("/api/duplicates/decisions", json={"kind": "not_duplicates",
                                                          "images": ids}).status_code == 201
    victim = image_id(library.data_dir, library.files["circle"][1])
    assert client.delete(f"/api/admin/images/{victim}", headers=AUTH).status_code == 200


def reads_answer(client, library: Library) -> None:
    first = library.files["circle"][0]
    known = image_id(library.data_dir, first)
    assert ok_json(client, "/api/stats")["images"] == len(library.all_files()) - 1
    hits = upload(client, first.read_bytes(), k=3)
    assert hits.status_code == 200, hits.get_data(as_text=True)
    assert hits.get_json()["results"][0]["id"] == known
    assert len(ok_json(client, "/api/library")["images"]) > 0
    assert "groups" in ok_json(client, "/api/duplicates")
    for url in (f"/images/{known}/thumbnail", f"/images/{known}/reconstruction",
                f"/images/{known}/original", "/library", "/search", "/duplicates"):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.get_data(as_text=True)[:300])


def writes_refused(client, library: Library, status: int, code: str) -> None:
    ids = [image_id(library.data_dir, p) for p in library.files["square"][:2]]
    answers = [client.post("/api/duplicates/decisions", json={"kind": "not_duplicates",
                                                              "images": ids}),
               client.delete("/api/duplicates/decisions/1"),
               client.delete(f"/api/admin/images/{ids[0]}", headers=AUTH),
               client.delete("/api/admin/exclusions/1", headers=AUTH),
               client.post("/api/admin/reindex", headers=AUTH)]
    for answer in answers:
        message = assert_error(answer, status, code)
        assert "free some space" in message if code == "disk_full" else "read-only" in message


def test_a_read_only_data_dir_is_served_and_writes_are_503_read_only(apps, own_library,
                                                                     tmp_path):
    decide_and_remove(apps(own_library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN).test_client(),
                      own_library)
    with read_only_view(own_library.data_dir, tmp_path / "backup") as view:
        shown = Library(view, own_library.collection, own_library.files)
        client = apps(view, LOOKALIKE_ADMIN_TOKEN=TOKEN).test_client()
        reads_answer(client, shown)
        writes_refused(client, shown, 503, "read_only")


def test_a_full_disk_is_507_and_frees_the_lock_for_the_next_writer(apps, own_library, tmp_path):
    with tmpfs(tmp_path / "disk", "16m") as disk:
        data_dir = shutil.copytree(own_library.data_dir, disk / "data")
        shown = Library(data_dir, own_library.collection, own_library.files)
        client = apps(data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN).test_client()
        decide_and_remove(client, shown)
        filler = fill(disk)
        reads_answer(client, shown)
        writes_refused(client, shown, 507, "disk_full")
        filler.unlink()
        # Room again: the server holds no lock, so it and every other writer can write.
        lifted = client.delete("/api/admin/exclusions/1", headers=AUTH)
        assert lifted.status_code == 200, lifted.get_data(as_text=True)
        WriterLock(data_dir).acquire().release()
