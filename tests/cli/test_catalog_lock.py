"""A catalog on PostgreSQL has one writer, from the command line too (the lock itself:
tests/search/test_catalog_lock.py)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from search.lock import WriterLock
from web.cli import cli

pytestmark = pytest.mark.postgresql_only


def test_a_second_indexer_on_another_data_dir_is_refused(tmp_path, catalog_url, collection,
                                                          data_dir):
    env = {"LOOKALIKE_DATABASE_URL": catalog_url}
    with WriterLock(tmp_path / "elsewhere", "indexing", catalog_url):
        result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "-q", "index",
                                          str(collection), "--workers", "0"], env=env)
    assert result.exit_code == 1
    assert "holds the catalog" in result.output and "wait for it to finish" in result.output
    assert not (data_dir / "index.faiss").exists()  # refused before any work
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "-q", "index",
                                      str(collection), "--workers", "0"], env=env)
    assert result.exit_code == 0, result.output
