"""The backend's snapshot of what serves searches: immutable, swapped whole when the model
file changes, so a request keeps one consistent encoder, engine and model id; and every
thread that asks while the file changes gets one snapshot or the other, never a mix."""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading

import pytest
import torch

from indexer.model import build_model, save_checkpoint
from search.regular_files import sha256_file

from ..conftest import TINY
from .conftest import make_app


def snapshot(app):
    with app.app_context():
        return app.extensions["lookalike"].serving()


def test_a_snapshot_never_changes_and_a_new_model_file_brings_a_new_one(own_library, tmp_path):
    app = make_app(own_library.data_dir)
    first = snapshot(app)
    assert snapshot(app) is first  # nothing changed: the same one, not a reload
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.engine = None
    old_sha, old_id = first.encoder.sha256, first.model_id
    assert old_id is not None

    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model(TINY), {"seed": 99})
    os.replace(other, own_library.data_dir / "model.pt")  # as `lookalike train` writes it
    second = snapshot(app)
    assert second is not first and second.encoder.sha256 != old_sha
    assert second.model_id is None  # the new model has no rows yet
    # The first request's snapshot is untouched: its encoder and ids still belong together.
    assert first.encoder.sha256 == old_sha and first.model_id == old_id
    app.extensions["lookalike"].close()


def test_threads_asking_while_the_model_changes_each_get_one_whole_snapshot(own_library,
                                                                          tmp_path):
    app = make_app(own_library.data_dir)
    model = own_library.data_dir / "model.pt"
    versions = [tmp_path / "a.pt", tmp_path / "b.pt"]
    shutil.copy(model, versions[0])
    # Another size too: two copies within one tick of the file system's clock onto a reused
    # inode would otherwise look like the same file (search.files.file_key).
    save_checkpoint(versions[1], build_model(TINY), {"seed": 7, "note": "x" * 4096})
    indexed = snapshot(app)
    model_ids = {indexed.encoder.sha256: indexed.model_id, sha256_file(versions[1]): None}
    seen, errors, stop = [], [], threading.Event()

    def ask():
        while not stop.is_set():
            try:
                seen.append(snapshot(app))
            except Exception as exc:  # a torn snapshot would show up here
                errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for turn in range(12):
        shutil.copy(versions[turn % 2], tmp_path / "next.pt")
        os.replace(tmp_path / "next.pt", model)
        while len(seen) < (turn + 1) * 8 and not errors:
            pass
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert {s.encoder.sha256 for s in seen} == set(model_ids)
    for s in seen:  # encoder, engine and model id of one snapshot belong together
        assert s.engine.encoder is s.encoder and s.model_id == model_ids[s.encoder.sha256]
    app.extensions["lookalike"].close()


def test_a_broken_model_is_503_once_read_not_per_request_and_a_good_one_serves_again(
        own_library, tmp_path, monkeypatch):
    import indexer.model

    app = make_app(own_library.data_dir)
    client = app.test_client()
    model = own_library.data_dir / "model.pt"
    good = model.read_bytes()
    model.write_bytes(b"not a checkpoint")
    reads = []
    read = indexer.model.read_checkpoint
    monkeypatch.setattr(indexer.model, "read_checkpoint",
                        lambda *a, **k: reads.append(1) or read(*a, **k))
    for _ in range(3):
        answer = client.get("/api/stats").get_json()
        assert answer["ready"] is False and "cannot be loaded" in answer["message"]
        assert client.get(f"/api/images/{1}/similar").status_code == 503
    assert len(reads) == 1  # the same broken file is not read again on every request
    (tmp_path / "m.pt").write_bytes(good)
    os.replace(tmp_path / "m.pt", model)
    assert client.get("/api/stats").get_json()["ready"] is True
    app.extensions["lookalike"].close()


def test_a_device_that_is_not_there_says_which_setting_to_change(own_library):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    app = make_app(own_library.data_dir, LOOKALIKE_DEVICE="cuda")
    message = app.test_client().get("/api/stats").get_json()["message"]
    assert "LOOKALIKE_DEVICE is 'cuda'" in message and "Train" not in message
    app.extensions["lookalike"].close()
