"""The app's settings and its readiness: where each setting comes from, and what the app
says, instead of failing, when the data dir lacks a model or an index or they do not fit.

Through Flask's test client, on the web tests' default library (tests/web/conftest.py).
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

import web
from indexer.model import build_model, save_checkpoint
from search.settings import MB
from web.app import create_app

from ..conftest import TINY
from .conftest import assert_error, index_more, row_for, upload

# -- settings ----------------------------------------------------------------------------------

def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 20 * MB  # Flask's own limit, from the settings
    settings = app.extensions["lookalike"].settings
    # relative defaults are anchored to the working directory once, at start-up
    assert settings.data_dir == tmp_path / "lookalike-data"
    assert app.instance_path == str(Path(web.__file__).resolve().parent.parent / "instance")
    assert not settings.model_is_explicit


def test_environment_reaches_the_app(monkeypatch, library):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(library.data_dir))
    monkeypatch.setenv("LOOKALIKE_MAX_CONTENT_LENGTH", "1000")
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 1000
    assert app.test_client().get("/api/stats").get_json()["data_dir"] == str(library.data_dir)


def test_flask_s_own_settings_in_the_instance_file_reach_flask(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text("MAX_FORM_PARTS = 7\nLOOKALIKE_READ_TOKEN = 't'\n")
    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(tmp_path))
    app = create_app({"LOOKALIKE_DATA_DIR": str(tmp_path / "d")})
    assert app.config["MAX_FORM_PARTS"] == 7
    assert "LOOKALIKE_READ_TOKEN" not in app.config  # ours are the settings object's
    assert app.extensions["lookalike"].settings.read_token == "t"


def test_bad_environment_value_fails_at_start(monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MAX_CONTENT_LENGTH", "twenty")
    with pytest.raises(ValueError, match="LOOKALIKE_MAX_CONTENT_LENGTH"):
        create_app()


def test_index_and_model_paths_from_settings(apps, tmp_path, library, copy_data_dir):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(library.data_dir / "index.faiss", moved / "vectors.faiss")
    shutil.copy(library.data_dir / "model.pt", moved / "weights.pt")
    data = tmp_path / "data"
    copy_data_dir(library.data_dir, data)
    (data / "index.faiss").unlink()
    (data / "model.pt").unlink()
    client = apps(data, LOOKALIKE_INDEX_PATH=str(moved / "vectors.faiss"),
                  LOOKALIKE_MODEL=str(moved / "weights.pt")).test_client()
    stats = client.get("/api/stats").get_json()
    assert stats["ready"] and stats["model"] == str(moved / "weights.pt")
    assert upload(client, library.files["square"][0].read_bytes()).status_code == 200


def test_flask_cli_finds_the_factory():
    from flask.cli import ScriptInfo

    assert isinstance(ScriptInfo(app_import_path="web.app").load_app(), Flask)


# -- not ready: no model, no index, empty, mismatched --------------------------------------------

def test_empty_data_dir_says_what_to_run(apps, tmp_path, library):
    data = tmp_path / "nothing"
    client = apps(data).test_client()
    image = library.files["square"][0].read_bytes()
    message = assert_error(upload(client, image), 503, "not_ready")
    assert f"lookalike --data-dir {data} index FOLDER" in message
    assert_error(client.get("/api/images/1/similar"), 503, "not_ready")
    assert_error(client.get("/images/1/reconstruction"), 503, "not_ready")
    assert_error(client.get("/api/images/1"), 404, "not_found")
    stats = client.get("/api/stats").get_json()
    assert stats["images"] == 0 and stats["ready"] is False and "index FOLDER" in stats["message"]
    assert client.get("/healthz").get_json()["ready"] is False

    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"<code>lookalike --data-dir {data} index FOLDER</code>" in html
    assert "Traceback" not in html and 'data-ready="false"' in html


def test_model_without_index(apps, tmp_path, library):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(library.data_dir / "model.pt", data / "model.pt")
    client = apps(data).test_client()
    message = assert_error(upload(client, library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "No index" in message and "index FOLDER" in message
    assert "No index" in client.get("/").get_data(as_text=True)


def test_empty_collection(apps, tmp_path, library):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(library.data_dir / "model.pt", data / "model.pt")
    (tmp_path / "empty").mkdir()
    index_more(data, tmp_path / "empty")
    client = apps(data).test_client()
    message = assert_error(upload(client, library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "empty" in message


def test_model_that_does_not_fit_the_index(own_library, own_client):
    other = build_model(replace(TINY, latent_dim=8))
    save_checkpoint(own_library.data_dir / "model.pt", other, {})
    message = assert_error(upload(own_client, own_library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "--reencode" in message
    row = row_for(own_library.data_dir, own_library.files["square"][0])
    assert_error(own_client.get(f"/api/images/{row.id}/similar"), 503, "not_ready")
    assert_error(own_client.get(f"/images/{row.id}/reconstruction"), 503, "not_ready")


def test_retrained_model_is_refused_until_reencoded(own_library, own_client):
    """Same code size, other weights: comparing its codes with the index would be noise."""
    square = own_library.files["square"][0]
    row = row_for(own_library.data_dir, square)
    assert upload(own_client, square.read_bytes()).status_code == 200
    save_checkpoint(own_library.data_dir / "model.pt", build_model(TINY), {})
    message = assert_error(upload(own_client, square.read_bytes()), 503, "not_ready")
    assert "index --reencode FOLDER" in message
    assert_error(own_client.get(f"/api/images/{row.id}/similar"), 503, "not_ready")
    assert_error(own_client.get(f"/images/{row.id}/reconstruction"), 503, "not_ready")
    assert own_client.get(f"/images/{row.id}/thumbnail").status_code == 200  # needs no model

    index_more(own_library.data_dir, own_library.collection)  # encodes with the new model
    assert upload(own_client, square.read_bytes()).status_code == 200
    new_row = row_for(own_library.data_dir, square)
    assert new_row.id == row.id and new_row.model_id != row.model_id
    assert own_client.get(f"/api/images/{row.id}/similar").status_code == 200


def test_unreadable_model(own_library, own_client):
    (own_library.data_dir / "model.pt").write_bytes(b"not a checkpoint")
    message = assert_error(upload(own_client, own_library.files["square"][0].read_bytes()), 503,
                           "not_ready")
    assert "train" in message
