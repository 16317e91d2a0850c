"""``lookalike watch``: a pass indexes what settled and leaves what is still being written;
``lookalike index`` waits for a watcher's pass instead of giving up."""
from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time

import pytest

from search.lock import WATCHING, WriterLock
from search.store import Store

from ..conftest import state
from .conftest import run


def test_one_pass_indexes_settled_files_and_leaves_the_rest(indexed, collection, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_WATCH_SETTLE", "30")
    first, second = sorted(collection.rglob("*.png"))[:2]
    old = collection / "arrived-last-week.png"
    shutil.copy(first, old)
    os.utime(old, (time.time() - 7 * 86400,) * 2)
    fresh = collection / "being-copied.png"
    fresh.write_bytes(second.read_bytes()[:100])  # half there, written just now
    before = len(state(indexed)[0])

    run(indexed, "watch", "--once")
    paths = set(state(indexed)[0].values())
    assert str(old) in paths and str(fresh) not in paths
    assert len(paths) == before + 1

    fresh.write_bytes(second.read_bytes())
    os.utime(fresh, (time.time() - 60,) * 2)  # as if written a minute ago and quiet since
    run(indexed, "watch", "--once")
    assert str(fresh) in set(state(indexed)[0].values())


def _hold(data_dir: str, doing: str, holding, release) -> None:
    with WriterLock(data_dir, doing):
        holding.set()
        release.wait(60)


@pytest.mark.parametrize("doing", [WATCHING, "indexing"])
def test_index_waits_for_a_watchers_pass_and_for_nothing_else(indexed, collection, doing):
    ctx = multiprocessing.get_context("forkserver")
    holding, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(indexed), doing, holding, release))
    other.start()
    timer = threading.Timer(2.0, release.set)  # the pass ends two seconds from now
    try:
        assert holding.wait(30)
        timer.start()
        result = run(indexed, "index", str(collection), "--workers", "0", ok=False)
        assert release.is_set() == (doing == WATCHING)  # only a watcher is waited for
    finally:
        timer.cancel()
        release.set()
        other.join()
    if doing == WATCHING:
        assert result.exit_code == 0 and "unchanged" in result.stdout
    else:
        assert result.exit_code == 1 and "indexing this data dir" in result.output


def generation(data_dir) -> int:
    store = Store.open(data_dir)
    try:
        return store.index_generation()
    finally:
        store.close()


def test_a_pass_that_changes_nothing_leaves_the_index_file_alone(indexed, collection):
    index_file = indexed / "index.faiss"
    before = (index_file.stat().st_mtime_ns, generation(indexed))
    run(indexed, "watch", "--once")  # nothing new: searches need not reload anything
    assert (index_file.stat().st_mtime_ns, generation(indexed)) == before
    shutil.copy(sorted(collection.rglob("*.png"))[0], collection / "new.png")
    os.utime(collection / "new.png", (time.time() - 60,) * 2)
    run(indexed, "watch", "--once")
    assert generation(indexed) > before[1]
