"""One settings object for both front ends: every ``LOOKALIKE_*`` variable the README documents
reaches the command line and the web app alike, as the same typed value; and the one that
the command line once ignored (``LOOKALIKE_DEVICE``) changes what a command does."""
from __future__ import annotations

import os
import re
from pathlib import Path

import click
import pytest
import torch

from search.settings import ENVIRONMENT, Settings
from web.app import create_app
from web.backend import current_settings
from web.cli import cli

from .conftest import invoke

README = Path(__file__).resolve().parents[2] / "README.md"

# environment variable → (its text, the Settings field, the value that field then holds);
# every value differs from the default, so a variable that does not arrive is seen.
EXAMPLES = {
    "LOOKALIKE_DATA_DIR": ("{tmp}/d", "data_dir", Path("{tmp}/d")),
    "LOOKALIKE_DATABASE_URL": ("sqlite:///{tmp}/c.sqlite", "database_url",
                               "sqlite:///{tmp}/c.sqlite"),
    "LOOKALIKE_INDEX_PATH": ("{tmp}/v.faiss", "index_path", Path("{tmp}/v.faiss")),
    "LOOKALIKE_MODEL": ("{tmp}/m.pt", "model_path", Path("{tmp}/m.pt")),
    "LOOKALIKE_DEVICE": ("cpu", "device", "cpu"),
    "LOOKALIKE_INFERENCE_THREADS": ("3", "inference_threads", 3),
    "LOOKALIKE_MAX_CONTENT_LENGTH": ("1234", "max_content_length", 1234),
    "LOOKALIKE_MAX_DECODE_BYTES": ("5678", "max_decode_bytes", 5678),
    "LOOKALIKE_UPLOAD_MEMORY": ("9999", "upload_memory", 9999),
    "LOOKALIKE_REQUEST_TIMEOUT": ("2.5", "request_timeout", 2.5),
    "LOOKALIKE_CLIENT_CONNECTIONS": ("0", "client_connections", 0),
    "LOOKALIKE_ADMIN_TOKEN": ("a-token", "admin_token", "a-token"),
    "LOOKALIKE_READ_TOKEN": ("r-token", "read_token", "r-token"),
    "LOOKALIKE_TRUSTED_HOSTS": ("a.example, b.example", "trusted_hosts",
                                ("a.example", "b.example")),
    "LOOKALIKE_INDEX_FOLDERS": (f"{{tmp}}/x{os.pathsep}{{tmp}}/y", "index_folders",
                                ("{tmp}/x", "{tmp}/y")),
    "LOOKALIKE_WATCH_INTERVAL": ("7.5", "watch_interval", 7.5),
    "LOOKALIKE_WATCH_SETTLE": ("0", "watch_settle", 0.0),
}


def filled(value, tmp: Path):
    """*value* with ``{tmp}`` replaced, whatever its type."""
    if isinstance(value, tuple):
        return tuple(filled(v, tmp) for v in value)
    if isinstance(value, Path):
        return Path(str(value).format(tmp=tmp))
    return value.format(tmp=tmp) if isinstance(value, str) else value


def cli_settings() -> Settings:
    """The settings a real command runs with (``lookalike stats``, on an empty data dir)."""
    with cli.make_context("lookalike", ["stats"]) as ctx:
        with pytest.raises(click.ClickException, match="nothing indexed"):
            cli.invoke(ctx)
        return ctx.obj.settings


def web_settings() -> Settings:
    app = create_app()
    with app.app_context():
        return current_settings()


def test_every_variable_is_documented_and_has_an_example():
    documented = set(re.findall(r"LOOKALIKE_[A-Z_]+[A-Z]", README.read_text()))
    assert set(ENVIRONMENT) <= documented
    assert set(EXAMPLES) == set(ENVIRONMENT)


@pytest.mark.parametrize("variable", sorted(EXAMPLES))
def test_each_variable_reaches_the_command_line_and_the_app_alike(variable, tmp_path,
                                                                    monkeypatch):
    text, field, expected = EXAMPLES[variable]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, filled(text, tmp_path))
    default = getattr(Settings.load(None, {}), field)
    seen = getattr(cli_settings(), field), getattr(web_settings(), field)
    assert seen == (filled(expected, tmp_path),) * 2
    assert seen[0] != default


def test_a_bad_value_stops_both_front_ends_with_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOKALIKE_INFERENCE_THREADS", "many")
    result = invoke(tmp_path / "d", "stats")
    assert result.exit_code == 1
    assert "bad settings: environment variable LOOKALIKE_INFERENCE_THREADS must be an " \
           "integer, not 'many'" in result.output
    with pytest.raises(ValueError, match="LOOKALIKE_INFERENCE_THREADS"):
        create_app()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_device_setting_reaches_the_commands_that_load_a_model(data_dir, collection,
                                                                  monkeypatch):
    """Before #25 the command line always loaded models on "auto"."""
    query = str(sorted(collection.rglob("*.png"))[0])
    assert invoke(data_dir, "denoise", query, "-o", str(data_dir / "out.png")).exit_code == 0
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cuda")
    result = invoke(data_dir, "denoise", query, "-o", str(data_dir / "out2.png"))
    assert result.exit_code != 0
    assert "CUDA was requested but no CUDA device is available" in str(result.exception or "") \
        + result.output
