"""The watcher's rule for a file still being written: it waits until size and time have stayed
the same for the settle time, counted from the file's own time when first seen."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from indexer.encoding import TorchEncoder
from indexer.watch import Settling, Watcher
from search.store import Store

from ..conftest import state


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def stat_of(path, size: int, mtime: float) -> os.stat_result:
    os.truncate(path, size)
    os.utime(path, (mtime, mtime))
    return os.stat(path)


def test_a_file_waits_until_it_stops_changing(tmp_path):
    path = tmp_path / "growing.jpg"
    path.write_bytes(b"")
    clock = Clock(1000.0)
    settled = Settling(10.0, clock)

    settled.start_pass()
    assert not settled(str(path), stat_of(path, 100, 999.0))  # written a second ago
    assert settled.waiting == 1 and settled.next_ready == 1009.0
    clock.now = 1005.0
    settled.start_pass()
    assert not settled(str(path), stat_of(path, 200, 1004.0))  # it grew: count from now
    assert settled.next_ready == 1015.0
    clock.now = 1014.0
    settled.start_pass()
    assert not settled(str(path), stat_of(path, 200, 1004.0))
    clock.now = 1015.0
    assert settled(str(path), stat_of(path, 200, 1004.0))  # ten quiet seconds


def test_an_old_file_is_settled_at_once_and_a_future_time_does_not_hold_it_for_ever(tmp_path):
    old, ahead = tmp_path / "old.png", tmp_path / "ahead.png"
    old.write_bytes(b"x")
    ahead.write_bytes(b"x")
    clock = Clock(10_000.0)
    settled = Settling(10.0, clock)
    assert settled(str(old), stat_of(old, 1, 5_000.0))
    assert not settled(str(ahead), stat_of(ahead, 1, 99_999.0))  # a clock far ahead
    clock.now = 10_010.0
    assert settled(str(ahead), stat_of(ahead, 1, 99_999.0))  # counted from when first seen


def test_a_file_event_wakes_the_scan_long_before_the_interval(indexed, collection):
    store = Store.open(indexed)
    encoder = TorchEncoder.from_path(store.model_path, "cpu")
    watcher = Watcher(store, lambda: encoder, lambda: [str(collection)], interval=3600,
                      settle=0).start()
    try:
        wait_until(lambda: watcher.status.passes == 1)
        if not watcher.status.events:
            pytest.skip(f"no file events on this machine: {watcher.status.events_note}")
        arrived = collection / "arrived.png"
        shutil.copy(sorted(collection.rglob("*.png"))[0], arrived)
        wait_until(lambda: watcher.status.passes == 2)  # an hour early: the event woke it
        assert watcher.status.last_changes["added"] == 1
        assert str(arrived) in state(indexed)[0].values()
    finally:
        watcher.stop()
        store.close()
    assert watcher.status.state == "stopped"


def wait_until(check, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"not within {limit} s"
        time.sleep(0.05)
