"""A catalog on PostgreSQL has one writer, whichever host and data dir it writes from."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.lock import DataDirBusy, WriterLock

pytestmark = pytest.mark.postgresql_only

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys
import time
from search.lock import WriterLock
held = WriterLock(sys.argv[1], "indexing", sys.argv[2]).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_two_data_dirs_on_one_catalog_cannot_both_write(tmp_path, catalog_url):
    first = WriterLock(tmp_path / "host-a", "indexing", catalog_url).acquire()
    try:
        with pytest.raises(DataDirBusy) as refused:
            WriterLock(tmp_path / "host-b", "re-training", catalog_url).acquire()
        assert f"lookalike pid {os.getpid()} on {socket.gethostname()}, indexing, holds " \
               "the catalog" in str(refused.value)
        # the refused writer let go of its own data dir's lock: its data dir stays usable
        WriterLock(tmp_path / "host-b", "checking").acquire().release()
    finally:
        first.release()
    WriterLock(tmp_path / "host-b", "indexing", catalog_url).acquire().release()


def test_a_killed_writer_frees_the_catalog(tmp_path, catalog_url):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "a"), catalog_url],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy, match=f"pid {holder.pid} on"):
            WriterLock(tmp_path / "b", "indexing", catalog_url).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    # the server notices the dropped connection and frees the lock with it
    for _ in range(100):
        try:
            WriterLock(tmp_path / "b", "indexing", catalog_url).acquire().release()
            break
        except DataDirBusy:
            time.sleep(0.1)
    else:
        pytest.fail("the killed writer's lock was never freed")
