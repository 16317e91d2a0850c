"""One writer per data dir: a second writer is refused at once, and a dead one frees the lock."""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.lock import DataDirBusy, WriterLock

from ..conftest import invoke
from ..synthetic import make_collection

pytestmark = pytest.mark.sqlite_only

REPO = Path(__file__).resolve().parents[2]
BUSY = "another lookalike process (pid {pid}) is indexing this data dir"


@pytest.fixture
def model_dir(untrained_data_dir) -> Path:
    """A data dir holding an untrained tiny model: encoding speed is all these tests need."""
    return untrained_data_dir


def lock_holder(data_dir: Path) -> subprocess.Popen:
    """Another process that takes the writer lock and sleeps; returns once it holds it."""
    code = ("import sys, time; from search.lock import WriterLock; "
            "WriterLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


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


def test_lock_is_one_per_data_dir_and_not_reentrant(tmp_path):
    with WriterLock(tmp_path / "a", "repairing"):
        with WriterLock(tmp_path / "b"):
            pass
        with pytest.raises(DataDirBusy, match=r"\(pid \d+\) is repairing this data dir"):
            WriterLock(tmp_path / "a").acquire()
    assert (tmp_path / "a" / ".lock").read_text() == ""  # no stale pid once released


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


# -- every failure path lets go of the lock (a server that goes on running must not keep it) ---

def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["os.open", "os.ftruncate", "os.pwrite", "sweep_debris",
                                   "fcntl.flock"])
def test_a_failure_while_taking_the_lock_releases_everything(tmp_path, monkeypatch, where):
    """A full disk at any step of acquire (opening the lock file, clearing it, writing the
    pid, sweeping debris; or the flock itself failing, as on a network filesystem) leaves
    no flock, no open descriptor and no temp file behind, and says what went wrong."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / ".lock").write_text("")  # a full disk can still open an existing file
    before = _open_fds()
    if where == "sweep_debris":
        monkeypatch.setattr("search.lock.sweep_debris", _enospc)
    elif where == "fcntl.flock":
        def no_locks(fd, op):
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        monkeypatch.setattr(fcntl, "flock", no_locks)
    else:
        module, name = where.split(".")
        real = getattr(os, name)
        lock_file = str(data_dir / ".lock")

        def failing(*args, **kwargs):
            if name != "open" or str(args[0]) == lock_file:
                _enospc()
            return real(*args, **kwargs)
        monkeypatch.setattr(os, name, failing)
    lock = WriterLock(data_dir, "indexing")
    with pytest.raises(OSError) as raised:
        lock.acquire()
    monkeypatch.undo()
    if where == "fcntl.flock":
        assert raised.value.errno == errno.ENOLCK
    else:
        assert str(raised.value) == (f"disk full while writing {data_dir} (nothing was "
                                     "written); free some space and run the command again")
    assert _open_fds() == before
    # Another process can take it at once: no flock was left behind.
    holder = lock_holder(data_dir)
    holder.kill()
    holder.wait()
    WriterLock(data_dir).acquire().release()
