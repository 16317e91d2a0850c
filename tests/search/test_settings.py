"""Where each setting comes from (defaults → instance file → environment → overrides), its
type, and paths anchored once; what the front ends do with them is tests/cli/test_settings.py
and tests/web/test_settings.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from search.settings import Settings


def test_settings_precedence_defaults_instance_environment_overrides(tmp_path):
    (tmp_path / "config.py").write_text(
        "LOOKALIKE_DATA_DIR = '/from-instance'\n"
        "LOOKALIKE_MODEL = '/instance/model.pt'\n"
        "MAX_CONTENT_LENGTH = 123\n")
    environ = {"LOOKALIKE_DATA_DIR": "/from-env", "LOOKALIKE_MAX_CONTENT_LENGTH": "456",
               "LOOKALIKE_INSTANCE_PATH": str(tmp_path)}

    settings = Settings.load(None, environ)
    assert settings.data_dir == Path("/from-env")
    assert settings.model_path == Path("/instance/model.pt")
    assert settings.max_content_length == 456
    assert settings.device == "auto"  # default survives

    settings = Settings.load({"LOOKALIKE_DATA_DIR": "/from-test"}, environ)
    assert settings.data_dir == Path("/from-test")
    assert settings.index_path == Path("/from-test/index.faiss")


def test_relative_paths_are_anchored_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.load({"LOOKALIKE_DATA_DIR": "d", "LOOKALIKE_MODEL": "m/model.pt",
                              "LOOKALIKE_DATABASE_URL": "sqlite:///db/c.sqlite"}, {})
    monkeypatch.chdir("/")
    assert settings.data_dir == tmp_path / "d"
    assert settings.model_path == tmp_path / "m" / "model.pt"
    assert settings.database_url == f"sqlite:///{tmp_path / 'db' / 'c.sqlite'}"
    store = settings.open_store()  # the layout inside the data dir is the store's
    assert store.thumbnail_path("0" * 64) == tmp_path / "d" / "thumbs" / f"{'0' * 64}.jpg"
    assert store.model_path == settings.model_path
    store.close()


def test_values_are_typed_and_checked(tmp_path):
    (tmp_path / "config.py").write_text("LOOKALIKE_TRUSTED_HOSTS = 'a, b'\n"
                                        "LOOKALIKE_INDEX_FOLDERS = ['x']\n"
                                        "LOOKALIKE_READ_TOKEN = ''\n")
    settings = Settings.load(None, {"LOOKALIKE_REQUEST_TIMEOUT": "0.5"}, tmp_path)
    assert settings.trusted_hosts == ("a", "b")
    assert settings.index_folders == (str(Path("x").absolute()),)
    assert settings.request_timeout == 0.5 and settings.read_token is None
    with pytest.raises(ValueError, match="LOOKALIKE_CLIENT_CONNECTIONS must be 0 or more"):
        Settings.load({"LOOKALIKE_CLIENT_CONNECTIONS": -1}, {}, tmp_path)
    with pytest.raises(ValueError, match="LOOKALIKE_UPLOAD_MEMORY must be an integer"):
        Settings.load({"LOOKALIKE_UPLOAD_MEMORY": "lots"}, {}, tmp_path)


def test_config_py_values_are_checked_as_the_environment_s_and_flask_s_own_pass_through(
        tmp_path):
    (tmp_path / "config.py").write_text("LOOKALIKE_ADMIN_TOKEN = 12345\n"
                                        "MAX_FORM_PARTS = 50\n"
                                        "LOOKALIKE_CLIENT_CONNECTIONS = 2.0\n")
    settings = Settings.load(None, {}, tmp_path)
    assert settings.admin_token == "12345"  # text, as a token read from the environment is
    assert settings.client_connections == 2
    assert settings.flask == {"MAX_FORM_PARTS": 50}  # Flask's own, for the app
    for bad in ("2.5", "True"):
        (tmp_path / "config.py").write_text(f"LOOKALIKE_CLIENT_CONNECTIONS = {bad}\n")
        with pytest.raises(ValueError, match=f"LOOKALIKE_CLIENT_CONNECTIONS in "
                                             f"{tmp_path / 'config.py'} must be an integer"):
            Settings.load(None, {}, tmp_path)
    with pytest.raises(ValueError, match="LOOKALIKE_REQUEST_TIMEOUT must be a number"):
        Settings.load(None, {"LOOKALIKE_REQUEST_TIMEOUT": "nan"}, tmp_path)
