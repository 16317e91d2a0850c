"""A full disk while ``lookalike index`` writes its index or its catalog: a clear error (exit
status 2), nothing lost, and the next run catches up (the writers themselves:
tests/indexer/test_diskfull.py)."""
from __future__ import annotations

from pathlib import Path

import faiss
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from indexer.check import check_data_dir
from search.catalog import ImageRecord
from search.store import Store
from search.vector_index import load_index

from ..indexer.test_diskfull import _faiss_enospc, _half_then
from ..synthetic import make_collection
from .conftest import invoke

pytestmark = pytest.mark.sqlite_only


def _index_cli(data_dir: Path, folder: Path):
    """`lookalike index FOLDER` into a data dir with an untrained tiny model (untrained_data_dir):
    encoding needs a model, not a good one."""
    return invoke(data_dir, "index", str(folder), "--workers", "0")


def _assert_consistent(data_dir: Path, n: int) -> None:
    store = Store.open(data_dir)
    with store.sessions() as s:
        catalog = set(s.scalars(select(ImageRecord.id)))
    report = check_data_dir(store)
    assert report.ok, report.render()
    assert len(catalog) == n and set(store.load_index().ids().tolist()) == catalog
    store.close()


def _refused(result) -> None:
    assert result.exit_code == 2, result.output  # the data dir's fault, not the command's
    assert "disk full while writing" in result.output
    assert "free some space and run the command again" in result.output
    assert "Traceback" not in result.output


def test_cli_index_save_on_a_full_disk(untrained_data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    make_collection(folder / "first", per_class=2, size=32)
    assert _index_cli(untrained_data_dir, folder).exit_code == 0
    index_path = untrained_data_dir / "index.faiss"
    before = index_path.read_bytes()

    make_collection(folder / "more", per_class=4, size=32, seed=1)
    monkeypatch.setattr(faiss, "write_index",
                        _half_then(_faiss_enospc(str(index_path)), faiss.write_index))
    result = _index_cli(untrained_data_dir, folder)
    _refused(result)
    assert str(index_path) in result.output
    assert index_path.read_bytes() == before
    assert load_index(index_path).ntotal == 6

    monkeypatch.undo()
    assert _index_cli(untrained_data_dir, folder).exit_code == 0
    _assert_consistent(untrained_data_dir, 18)


class CatalogCap:
    """Caps new SQLite connections at their file's current size, so growing it gets SQLITE_FULL."""

    @staticmethod
    def _cap(dbapi_connection, _record) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {max(pages, 1)}")

    def start(self) -> None:
        event.listen(Engine, "connect", self._cap)

    def stop(self) -> None:
        if event.contains(Engine, "connect", self._cap):
            event.remove(Engine, "connect", self._cap)


@pytest.fixture
def catalog_cap():
    cap = CatalogCap()
    yield cap
    cap.stop()


def test_cli_catalog_full_is_a_clear_error_and_the_next_run_catches_up(
        untrained_data_dir, tmp_path, catalog_cap):
    folder = tmp_path / "photos"
    make_collection(folder / "first", per_class=2, size=32)
    assert _index_cli(untrained_data_dir, folder).exit_code == 0

    make_collection(folder / "more", per_class=40, size=32, seed=1)
    catalog_cap.start()
    result = _index_cli(untrained_data_dir, folder)
    _refused(result)
    assert str(untrained_data_dir / "catalog.sqlite") in result.output
    _assert_consistent(untrained_data_dir, 6)

    catalog_cap.stop()
    assert _index_cli(untrained_data_dir, folder).exit_code == 0
    _assert_consistent(untrained_data_dir, 126)
