"""One writer per data dir, from the command line: a second writer is refused at once and
changes nothing, and a killed indexer frees the lock (the lock itself: tests/search)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.lock import WriterLock

from ..search.test_lock import REPO, lock_holder
from ..synthetic import make_collection
from .conftest import invoke

pytestmark = pytest.mark.sqlite_only

BUSY = "another lookalike process (pid {pid}) is indexing this data dir"


@pytest.fixture
def model_dir(untrained_data_dir) -> Path:
    """A data dir holding an untrained tiny model: encoding speed is all these tests need."""
    return untrained_data_dir


def test_second_indexer_is_refused_while_the_lock_is_held(model_dir, collection):
    with WriterLock(model_dir):
        before = sorted(p.name for p in model_dir.iterdir())
        result = invoke(model_dir, "index", str(collection), "--workers", "0")
        assert result.exit_code == 1
        assert BUSY.format(pid=os.getpid()) in result.output
        assert sorted(p.name for p in model_dir.iterdir()) == before  # nothing changed
    assert invoke(model_dir, "index", str(collection), "--workers", "0").exit_code == 0


def test_lock_of_another_process_refuses_writers_and_dies_with_it(model_dir, collection, tmp_path):
    holder = lock_holder(model_dir)
    try:
        for args in (["index", str(collection)], ["train", str(collection)],
                     ["check", "--repair"]):
            result = invoke(model_dir, *args)
            assert result.exit_code == 1, args
            assert f"another lookalike process (pid {holder.pid}) is" in result.output
        assert not (model_dir / "catalog.sqlite").exists()
        # Readers are not writers: check without --repair runs, and says who is writing.
        result = invoke(model_dir, "check")
        assert result.exit_code == 0 and f"pid {holder.pid} is indexing" in result.output
        # Training into another folder does not touch the data dir, so it needs no lock.
        out = tmp_path / "elsewhere" / "m.pt"
        result = invoke(model_dir, "train", str(collection), "-o", str(out), "--epochs", "1",
                        "--image-size", "16")
        assert result.exit_code == 0 and out.is_file()
    finally:
        holder.kill()
        holder.wait()
    WriterLock(model_dir).acquire().release()  # flock died with its holder


def test_killed_indexer_frees_the_lock_even_if_its_decode_workers_linger(model_dir, tmp_path):
    """Forked decode workers share the lock's file description; they must not keep it."""
    folder = tmp_path / "many"
    make_collection(folder, per_class=40, size=40)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from web.cli import cli; cli()", "--data-dir", str(model_dir),
         "-q", "index", str(folder), "--workers", "2", "--encode-batch", "8"],
        cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while _rows(model_dir / "catalog.sqlite") < 8 and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the indexer only, not its workers
        proc.wait()
        WriterLock(model_dir).acquire().release()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # now the orphaned workers, if any
        except ProcessLookupError:
            pass


def _rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM images").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
