"""`lookalike train` into a data dir that serves: the model that built the index is kept, and
searches go on with it through the whole re-encode, which then switches atomically (#23:
every search answered 503 until a full re-encode, with no way back)."""
from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import delete

from indexer.encoding import LocalEncoding, TorchEncoder
from indexer.job import index_folder
from search.catalog import MetaRecord
from search.store import INDEX_MODEL, Store

from ..cli.conftest import run
from .conftest import image_id, ok_json, upload

NEW_MODEL = ("--budget", "4", "--image-size", "32", "--latent-dim", "16", "--widths",
             "16,32,64", "--batch-size", "16", "--invariance", "0", "--seed", "5")


class PausedEncoding(LocalEncoding):
    """Encodes like ``lookalike index`` but stops after its first batch until told to go on."""

    def __init__(self, encoder: TorchEncoder):
        super().__init__(encoder, batch_size=8, workers=0)
        self.paused, self.go_on = threading.Event(), threading.Event()

    def __call__(self, paths):
        for number, chunk in enumerate(super().__call__(paths)):
            yield chunk
            if number == 0:
                self.paused.set()
                assert self.go_on.wait(120)


def first_hit(client, path) -> int:
    answer = upload(client, path.read_bytes(), k=1, reconstruction="false")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["results"][0]["id"]


def test_a_new_model_waits_for_its_re_encode_while_the_old_one_serves(apps, own_library):
    data_dir, query = own_library.data_dir, own_library.files["circle"][2]
    client = apps(data_dir).test_client()
    known = image_id(data_dir, query)
    assert first_hit(client, query) == known
    old_sha = ok_json(client, "/api/stats")["model_sha256"]

    trained = run(data_dir, "train", str(own_library.collection), *NEW_MODEL)
    kept = data_dir / "models" / f"{old_sha[:16]}.pt"
    assert f"kept at {kept}" in trained.output and "reindex" in trained.output
    assert kept.is_file()

    # Searches still answer, with the model that built the index.
    assert first_hit(client, query) == known
    stats = ok_json(client, "/api/stats")
    assert stats["model_waiting_for_reencode"] is True and stats["index_model"] == str(kept)
    found = run(data_dir, "search", str(query), "-k", "1")
    assert str(query.resolve()) in found.output

    # The re-encode: half-way through, searches still answer with the old index and model.
    store = Store.open(data_dir)
    encoder = TorchEncoder.from_path(store.model_path, "cpu")
    encoding = PausedEncoding(encoder)
    summaries = []
    job = threading.Thread(target=lambda: summaries.append(index_folder(
        store, own_library.collection, encoder, progress=False, save_every=0,
        encoding=encoding)))
    job.start()
    try:
        assert encoding.paused.wait(120)
        for _ in range(3):
            assert first_hit(client, query) == known
        # ... also for a server or a command that starts now, mid-way
        assert first_hit(apps(data_dir).test_client(), query) == known
        assert str(query.resolve()) in run(data_dir, "search", str(query), "-k", "1").output
        assert ok_json(client, "/api/stats")["model_waiting_for_reencode"] is True
    finally:
        encoding.go_on.set()
        job.join(120)
    store.close()
    assert summaries and summaries[0].failed == 0 and not summaries[0].warnings

    # Done: the index holds the new model's codes, searches use it, the old model is gone.
    stats = ok_json(client, "/api/stats")
    assert stats["model_waiting_for_reencode"] is False
    assert stats["model_sha256"] == encoder.sha256 != old_sha
    assert first_hit(client, query) == known
    assert not kept.exists()
    assert "ok" in run(data_dir, "check").output


@pytest.mark.parametrize("repair", [False, True])
def test_check_while_a_new_model_waits_keeps_the_index_that_serves(apps, own_library, repair):
    data_dir, query = own_library.data_dir, own_library.files["square"][1]
    run(data_dir, "train", str(own_library.collection), *NEW_MODEL)
    args = ["check", "--repair"] if repair else ["check"]
    report = run(data_dir, *args, ok=False).output
    assert "still to be re-encoded with the new model" in report and "rebuilt" not in report
    client = apps(data_dir).test_client()
    assert first_hit(client, query) == image_id(data_dir, query)


def test_the_admin_reindex_switches_to_the_new_model(apps, own_library):
    """The web's re-index encodes with the new model, not the one still serving."""
    data_dir, query = own_library.data_dir, own_library.files["stripes"][3]
    client = apps(data_dir, LOOKALIKE_ADMIN_TOKEN="t").test_client()
    old_sha = ok_json(client, "/api/stats")["model_sha256"]
    run(data_dir, "train", str(own_library.collection), *NEW_MODEL)
    started = client.post("/api/admin/reindex", headers={"Authorization": "Bearer t"})
    assert started.status_code == 202, started.get_data(as_text=True)
    done = wait_for_job(client, started.get_json()["id"])
    assert done["status"] == "done", done
    stats = ok_json(client, "/api/stats")
    assert stats["model_waiting_for_reencode"] is False and stats["model_sha256"] != old_sha
    assert first_hit(client, query) == image_id(data_dir, query)


def test_images_that_cannot_be_re_encoded_do_not_hold_the_switch_back(apps, own_library):
    """Rows kept for files that are away (their folder is there but empty, as an unmounted
    disk's mount point is) keep the previous model's codes; the new model serves all the
    same, those images are left out of searches, and the run says so."""
    data_dir = own_library.data_dir
    client = apps(data_dir).test_client()
    run(data_dir, "train", str(own_library.collection), *NEW_MODEL)
    for path in own_library.files["stripes"]:
        path.unlink()
    report = json.loads(run(data_dir, "reindex", "--json").output)
    assert report[0]["removed"] == 0 and report[0]["kept"] == len(own_library.files["stripes"])
    assert any("left out of searches" in w for r in report for w in r["warnings"]), report
    assert ok_json(client, "/api/stats")["model_waiting_for_reencode"] is False
    query = own_library.files["square"][2]
    assert first_hit(client, query) == image_id(data_dir, query)


def test_a_data_dir_from_before_keeps_its_model_too(apps, own_library):
    """An index saved before the store recorded which model built it: judged by its rows."""
    data_dir, query = own_library.data_dir, own_library.files["square"][4]
    store = Store.open(data_dir)
    with store.sessions() as session, session.begin():
        session.execute(delete(MetaRecord).where(MetaRecord.key == INDEX_MODEL))
    store.close()
    trained = run(data_dir, "train", str(own_library.collection), *NEW_MODEL)
    assert "kept at" in trained.output
    assert first_hit(apps(data_dir).test_client(), query) == image_id(data_dir, query)


def wait_for_job(client, job_id: str, limit: float = 120.0) -> dict:
    deadline = time.monotonic() + limit
    while True:
        body = client.get(f"/api/admin/jobs/{job_id}", headers={"Authorization": "Bearer t"}
                          ).get_json()
        if body["status"] != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)
