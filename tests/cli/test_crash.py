"""`lookalike index` survives SIGKILL at any moment: a re-run leaves catalog and index agreeing.

The indexer runs as a real process and is killed when the catalog
reaches some state (polled read-only, as a web reader would), not after
a delay, so the kills land mid-run however fast or slow the machine is.
Processes fork from a forkserver that has imported the CLI once: the
kill is the same, and each start costs milliseconds, not the seconds of
importing torch.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, text

from indexer.check import check_data_dir
from indexer.encoding import LocalEncoding, TorchEncoder
from indexer.job import index_folder
from search.catalog import ImageRecord
from search.regular_files import sha256_file
from search.store import Store
from search.vector_index import load_index, normalise

from ..synthetic import make_collection

pytestmark = pytest.mark.sqlite_only

N_IMAGES = 300


def _lookalike(args: list[str]) -> None:
    """The console entry point, in a forked process."""
    from web.cli import cli

    cli.main(args, prog_name="lookalike")


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["web.cli"])
    return ctx


@pytest.fixture(scope="module")
def big_src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big")
    make_collection(root, per_class=N_IMAGES // 3, size=40)
    return root


@pytest.fixture
def big(big_src, tmp_path) -> Path:
    return Path(shutil.copytree(big_src, tmp_path / "big"))


@pytest.fixture
def data_dir(untrained_data_dir) -> Path:
    """Here the data dir's model is untrained: it encodes as fast as a trained one."""
    return untrained_data_dir


def lookalike(forkserver, data_dir: Path, *args: str) -> multiprocessing.Process:
    proc = forkserver.Process(target=_lookalike, args=(["--data-dir", str(data_dir), "-q", *args],))
    proc.start()
    return proc


def start_index(forkserver, data_dir: Path, folder: Path,
                save_every: str = "60") -> multiprocessing.Process:
    return lookalike(forkserver, data_dir, "index", str(folder), "--workers", "0",
                     "--encode-batch", "8", "--save-every", save_every)


def kill_when(proc: multiprocessing.Process, ready: Callable[[], bool]) -> None:
    """SIGKILL *proc* as soon as *ready* says so (unless it finished first)."""
    while proc.exitcode is None and not ready():
        time.sleep(0.005)
    if proc.exitcode is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.join()


def finish_index(forkserver, data_dir: Path, folder: Path) -> None:
    proc = lookalike(forkserver, data_dir, "index", str(folder), "--workers", "0")
    proc.join()
    assert proc.exitcode == 0


def peek(data_dir: Path, sql: str) -> int:
    """One number from the catalog through a read-only connection; 0 while there is none."""
    try:
        conn = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite'}?mode=ro", uri=True)
        try:
            row = conn.execute(sql).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def rows(data_dir: Path) -> int:
    return peek(data_dir, "SELECT count(*) FROM images")


def catalog_version(data_dir: Path) -> int:
    return peek(data_dir, "SELECT value FROM meta WHERE key = 'catalog_version'")


def assert_consistent(data_dir: Path, folder: Path) -> dict[str, int]:
    """Catalog == folder, index == catalog (ids and vectors), no debris; returns path → id."""
    store = Store.open(data_dir)
    with store.sessions() as s:
        assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        records = list(s.scalars(select(ImageRecord)))
    paths = [r.path for r in records]
    assert len(paths) == len(set(paths))
    assert sorted(paths) == sorted(str(p.resolve()) for p in folder.rglob("*.png"))
    index = load_index(data_dir / "index.faiss")
    ids = index.ids().tolist()
    assert len(ids) == len(set(ids)), "an id is in the index twice"
    assert set(ids) == {r.id for r in records}
    for r in records:  # the vector under each id is that row's current code
        stored = index.index.reconstruct(r.id)
        np.testing.assert_allclose(stored, normalise(np.frombuffer(r.code, np.float32)[None])[0],
                                   atol=1e-5)
    assert not list(data_dir.glob(".*.tmp")), "a half-written file was left behind"
    report = check_data_dir(store)
    assert report.ok, report.render()
    return {r.path: r.id for r in records}


def test_index_killed_at_any_point_then_rerun_is_consistent(forkserver, data_dir, big):
    lock = data_dir / ".lock"
    kill_points: list[tuple[str, Callable[[], bool]]] = [
        ("60", lambda: lock.exists() and bool(lock.read_text())),  # starting up, planning
        ("0", lambda: rows(data_dir) >= 1),  # "0": save after every batch, so that
        ("0", lambda: rows(data_dir) >= 120),  # some kills land inside a save
    ]
    for save_every, ready in kill_points:
        kill_when(start_index(forkserver, data_dir, big, save_every), ready)
    # Every batch but the one in flight was saved; nothing the catalog lacks is in the index.
    store = Store.open(data_dir)
    saved = set(store.load_index().ids().tolist())
    assert len(saved) >= min(rows(data_dir), 120) - 2 * 8 and saved <= store.catalog_ids()
    kill_when(start_index(forkserver, data_dir, big), lambda: rows(data_dir) >= 200)
    finish_index(forkserver, data_dir, big)
    assert len(assert_consistent(data_dir, big)) == N_IMAGES


def test_reindex_killed_after_deletes_moves_and_edits(forkserver, data_dir, big):
    store = Store.open(data_dir)
    encoder = TorchEncoder.from_path(data_dir / "model.pt", "cpu")
    index_folder(store, big, encoder, progress=False, encoding=LocalEncoding(encoder, workers=0))
    before = assert_consistent(data_dir, big)
    files = sorted(big.rglob("*.png"))
    for f in files[:20]:
        f.unlink()
    moved = {}
    (big / "moved").mkdir()
    for f in files[20:40]:
        moved[before[str(f.resolve())]] = (big / "moved" / f.name).resolve()
        shutil.move(f, big / "moved" / f.name)
    edited = files[40:60]
    for i, f in enumerate(edited):  # same path, new content: re-encoded in place, same id
        Image.new("RGB", (40, 40), (i * 12, 255 - i * 12, 90)).save(f)
    make_collection(big / "new", per_class=30, size=40, seed=7)

    v0 = catalog_version(data_dir)
    # Early: the deletes have committed and one batch of edits; then well into the new files.
    kill_when(start_index(forkserver, data_dir, big),
              lambda: catalog_version(data_dir) >= v0 + 2)
    kill_when(start_index(forkserver, data_dir, big), lambda: rows(data_dir) >= N_IMAGES + 25)
    finish_index(forkserver, data_dir, big)

    after = assert_consistent(data_dir, big)
    assert len(after) == N_IMAGES - 20 + 90
    for row_id, path in moved.items():  # a move keeps its id, and so its code
        assert after[str(path)] == row_id
    with store.sessions() as s:
        for f in edited:
            row = s.scalar(select(ImageRecord).where(ImageRecord.path == str(f.resolve())))
            assert row.id == before[str(f.resolve())] and row.sha256 == sha256_file(str(f))


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs, no except Exception catches it."""


def test_kill_between_a_commit_and_the_index_save_does_not_keep_stale_vectors(
        data_dir, collection, monkeypatch):
    """A file re-encoded in place keeps its id: only the catalog version shows the index is old."""
    encoder = TorchEncoder.from_path(data_dir / "model.pt", "cpu")
    store = Store.open(data_dir)
    index_folder(store, collection, encoder, progress=False,
                 encoding=LocalEncoding(encoder, workers=0))
    for i, f in enumerate(sorted(collection.rglob("*.png"))[:3]):
        Image.new("RGB", (48, 48), (250, i * 80, 10)).save(f)

    def killed(self, index, model_sha256=None):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(Store, "publish_index", killed)
        with pytest.raises(Killed):
            index_folder(store, collection, encoder, progress=False,
                         encoding=LocalEncoding(encoder, workers=0))
    again = index_folder(store, collection, encoder, progress=False,
                         encoding=LocalEncoding(encoder, workers=0))
    assert again.encoded == 0  # the catalog already has the new codes
    assert_consistent(data_dir, collection)
