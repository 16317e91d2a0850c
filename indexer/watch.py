"""Keeping the collection current by itself: ``lookalike watch`` and ``lookalike serve --watch``.

The base is a periodic scan, the same incremental run as ``lookalike index``
(a ``stat`` per file; only new or changed files are read), every
``LOOKALIKE_WATCH_INTERVAL`` seconds. It works on every filesystem and
never misses a change, only sees it later. File events (``watchdog``:
inotify, FSEvents, ...) only wake the scan early; where they are not
available (a network filesystem sends none for other machines' writes, a
host out of inotify watches refuses more) the scan alone carries on, and
the status says so. Immich's watcher, built on events alone, exhausted
hosts' watches and flooded errors on NFS; PhotoPrism indexed files still
being copied. So here a new or changed file waits until it has stopped
changing (size and time the same for ``LOOKALIKE_WATCH_SETTLE`` seconds),
and everything the indexer guards still holds: exclusions, the guard
that keeps the rows of an emptied folder, and the writer lock, which a
pass takes only when free (a running ``lookalike index`` makes it wait,
and ``lookalike index`` waits for a pass to end).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from search.lock import WATCHING, DataDirBusy, WriterLock
from search.store import Store

from .encoding import TorchEncoder
from .job import reindex_all, reindex_folders

log = logging.getLogger(__name__)

RETRY_BUSY = 5.0  # seconds before a pass tries the writer lock again
DEBOUNCE = 1.0  # seconds to let a burst of events settle before scanning
SOONEST = 0.5  # seconds: the shortest wait between two passes
IGNORED_EVENTS = ("opened", "closed_no_write")
HIDDEN = f"{os.sep}."  # a path with a hidden folder or file in it


class Settling:
    """Which new or changed files have stopped changing, from what the passes saw.

    A file seen for the first time counts from its own modification time
    (a photo copied in last week is settled); one whose size or time
    changed between two passes counts from the pass that saw the change.
    A time in the future (a clock ahead on a network share) counts from
    when it was first seen, so such a file is not held back for ever.
    """

    def __init__(self, settle: float, clock: Callable[[], float] = time.time):
        self.settle = settle
        self.clock = clock
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}
        self._touched: set[str] = set()  # the paths this pass asked about
        self.waiting = 0  # files held back in the current pass
        self.next_ready: float | None = None  # when the first of them will be ready

    def start_pass(self) -> None:
        """Forget files the last pass did not see (deleted, or indexed since)."""
        self._seen = {p: seen for p, seen in self._seen.items() if p in self._touched}
        self._touched = set()
        self.waiting, self.next_ready = 0, None

    def __call__(self, path: str, st: os.stat_result) -> bool:
        now = self.clock()
        self._touched.add(path)
        key = (st.st_size, st.st_mtime_ns)
        before = self._seen.get(path)
        if before is None:
            since = st.st_mtime if st.st_mtime <= now + self.settle else now
        elif before[0] != key:
            since = now
        else:
            since = before[1]
        self._seen[path] = (key, since)
        ready_at = since + self.settle
        if now >= ready_at:
            self._seen.pop(path, None)  # indexed now: nothing more to remember
            return True
        self.waiting += 1
        self.next_ready = ready_at if self.next_ready is None else min(self.next_ready, ready_at)
        return False


@dataclass
class WatchStatus:
    """What the watcher is doing, for the page and ``lookalike watch``."""

    state: str = "starting"  # scanning | idle | waiting (for the writer lock) | failed | stopped
    events: bool = False  # file events wake the scan early
    events_note: str | None = None  # why there are none, when there are none
    interval: float = 0.0
    settle: float = 0.0
    folders: list[str] = field(default_factory=list)
    passes: int = 0
    last_pass_at: float | None = None  # epoch seconds
    next_pass_at: float | None = None
    last_changes: dict[str, int] = field(default_factory=dict)  # added, updated, ... of the last pass
    settling: int = 0  # files still being written
    note: str | None = None  # the last problem (a busy data dir, a failed pass)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COUNTED = ("added", "updated", "moved", "removed", "kept", "failed")


class Watcher:
    """One watching loop over a data dir's folders, in a thread of its own."""

    def __init__(self, store: Store, encoder: Callable[[], TorchEncoder],
                 folders: Callable[[], list[str]], interval: float, settle: float,
                 database_url: str | None = None,
                 on_pass: Callable[[WatchStatus, list[dict[str, Any]]], None] | None = None):
        self.store = store
        self.encoder = encoder  # the current model, asked for at every pass
        self.folders = folders
        self.interval = max(interval, SOONEST)
        self.settling = Settling(settle)
        self.database_url = database_url
        self.on_pass = on_pass
        self.status = WatchStatus(interval=interval, settle=settle)
        self.poke = threading.Event()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "Watcher":
        self._thread = threading.Thread(target=self.run, name="lookalike-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: float = 30.0) -> None:
        self.stopping.set()
        self.poke.set()
        if self._thread is not None:
            self._thread.join(wait)

    def run(self) -> None:
        """Pass after pass until stopped: each waits for the interval, an event, or the
        moment a file being written should have settled."""
        torch.set_flush_denormal(True)  # a per-thread CPU flag, as for the app's requests
        try:
            try:
                self._watch_events(self.folders())
            except Exception as exc:  # events are a bonus: the scans go on without them
                log.exception("no file events")
                self.status.events_note = f"no file events ({type(exc).__name__}: {exc})"
            while not self.stopping.is_set():
                try:
                    delay = self.one_pass()
                except Exception as exc:  # no model yet, a full disk: say so, try again later
                    log.exception("a watch pass failed")
                    self.status.state, self.status.note = "failed", f"{type(exc).__name__}: {exc}"
                    delay = self.interval
                self.status.next_pass_at = time.time() + delay
                if self.poke.wait(delay) and not self.stopping.is_set():
                    self.stopping.wait(DEBOUNCE)  # a burst of events: one pass after it
                self.poke.clear()
        finally:
            if self._observer is not None:
                self._observer.stop()
            self.status.state, self.status.next_pass_at = "stopped", None

    # -- one pass ------------------------------------------------------------------------

    def one_pass(self) -> float:
        """Index every folder once if the writer lock is free; seconds until the next pass."""
        folders = self.folders()
        self.status.folders = folders
        lock = WriterLock(self.store.data_dir, WATCHING, self.database_url)
        try:
            lock.acquire()
        except DataDirBusy as exc:
            self.status.state, self.status.note = "waiting", str(exc)
            return RETRY_BUSY
        self.status.state, self.status.note = "scanning", None
        self.settling.start_pass()
        try:
            results = reindex_all(self.store, folders, self.encoder(), workers=0,
                                  settled=self.settling)
        finally:
            lock.release()
        self.status.passes += 1
        self.status.last_pass_at = time.time()
        self.status.last_changes = {k: sum(r.get(k, 0) for r in results) for k in COUNTED}
        self.status.settling = self.settling.waiting
        self.status.state = "idle"
        if self.on_pass is not None:
            self.on_pass(self.status, results)
        if self.settling.next_ready is not None:
            return max(SOONEST, min(self.interval, self.settling.next_ready - time.time()))
        return self.interval

    # -- file events -----------------------------------------------------------------------

    def _watch_events(self, folders: list[str]) -> None:
        """Let file events wake the scan early, where the system gives them."""
        poke = self.poke

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                # Reading a file is no change (the passes and the app's thumbnails read
                # files all the time), and hidden names are not the collection's (the trash).
                if event.event_type in IGNORED_EVENTS or HIDDEN in f"{os.sep}{event.src_path}":
                    return
                poke.set()

        observer = Observer()
        try:
            for folder in folders:
                if os.path.isdir(folder):
                    observer.schedule(Wake(), folder, recursive=True)
            observer.start()
        except OSError as exc:  # out of inotify watches or instances, say
            self.status.events_note = (f"no file events ({exc.strerror or exc}); scanning "
                                       f"every {self.interval:g} s only")
            return
        self._observer = observer
        self.status.events = True


def watched_folders(store: Store, configured: tuple[str, ...] | None) -> Callable[[], list[str]]:
    """The folders a pass covers, asked afresh each pass (a folder indexed meanwhile joins)."""
    return lambda: reindex_folders(configured, store)
