"""One writer per data dir: a second writer is refused at once, and a dead one frees the lock
(the commands that take it: tests/cli/test_lock.py)."""
from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.lock import DataDirBusy, WriterLock

pytestmark = pytest.mark.sqlite_only

REPO = Path(__file__).resolve().parents[2]


def lock_holder(data_dir: Path) -> subprocess.Popen:
    """Another process that takes the writer lock and sleeps; returns once it holds it."""
    code = ("import sys, time; from search.lock import WriterLock; "
            "WriterLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_one_per_data_dir_and_not_reentrant(tmp_path):
    with WriterLock(tmp_path / "a", "repairing"):
        with WriterLock(tmp_path / "b"):
            pass
        with pytest.raises(DataDirBusy, match=r"\(pid \d+\) is repairing this data dir"):
            WriterLock(tmp_path / "a").acquire()
    assert (tmp_path / "a" / ".lock").read_text() == ""  # no stale pid once released


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
