"""The server ``lookalike serve`` runs: waitress, with limits that fit the app's upload rules
and guards against clients that connect and then take their time.

waitress reads requests asynchronously and only hands a complete one to a
worker thread, so a slow client costs a connection, not a thread; but the
connections it accepts at once are capped (``server_limits``), and by
default it waits 120 s for an idle one. 25 half-open connections
(``POST /api/search HTTP/1.1`` and a Host header, then nothing) once kept
every other client out for two minutes. So here:

* a connection must send each request, headers and body, within
  ``LOOKALIKE_REQUEST_TIMEOUT`` seconds of its first byte (or of the
  connection, for one that sends nothing), plus one second for every
  MIN_RATE bytes that do arrive, so a large upload on a slow link still
  makes it while a trickle does not; a connection idle between requests
  for that long is closed too;
* one client address may hold at most ``LOOKALIKE_CLIENT_CONNECTIONS`` at
  once (0: no cap, for a server behind a proxy, where every client has
  the proxy's address); a connection over it closes that address's
  longest-idle one, or, when all of them are busy, is closed itself.
"""
from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from flask import Flask
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

from search.settings import Settings

log = logging.getLogger(__name__)

MIN_RATE = 8 * 1024  # bytes a second a request must average once it is late
CHECK_EVERY = 1  # seconds between looks at every connection's clock


def server_limits(max_content_length: int | None, upload_memory: int | None = None,
                  threads: int = 4) -> dict[str, int]:
    """waitress's cap on a request body, how much of one it keeps in memory, and connections.

    waitress reads a whole body before the app runs, by default up to
    1 GiB, so without a cap near the app's limit any client could make it
    store a gigabyte per connection only to be told 413. The cap is twice
    ``MAX_CONTENT_LENGTH``: bodies up to that still get the app's JSON 413,
    longer ones waitress's plain-text 413 as soon as it sees they are too
    long. Bodies under the cap stay in memory (waitress would spool those
    over 512 KB to a temp file), because uploads must never touch the disk;
    the price is up to twice the limit in RAM per connection uploading.
    So the connections waitress accepts at once are capped too: all of
    them uploading at the cap stay within *upload_memory*
    (``LOOKALIKE_UPLOAD_MEMORY``), but never fewer than the threads plus a
    browser's six parallel connections.
    """
    if not max_content_length:
        return {}
    cap = 2 * max_content_length
    limits = {"max_request_body_size": cap, "inbuf_overflow": cap}
    if upload_memory:
        limits["connection_limit"] = max(threads + 6, upload_memory // cap)
    return limits


class GuardedChannel(HTTPChannel):
    """A connection that keeps a clock on the request it is reading (see the module)."""

    per_client = 0  # set on the subclass each server makes

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)
        self.request_started = self.creation_time
        self.request_bytes = 0
        if self.per_client:
            self._keep_within_budget()

    def _keep_within_budget(self) -> None:
        """Over its address's budget, a connection makes room by closing that address's
        longest-idle one (a browser's spare keep-alive); with none idle, it is closed."""
        mine = [ch for ch in self.server.active_channels.values()
                if ch is not self and ch.addr and ch.addr[0] == self.addr[0]
                and not ch.will_close]
        if len(mine) < self.per_client:
            return
        idle = [ch for ch in mine if isinstance(ch, GuardedChannel) and ch.idle()]
        if idle:
            min(idle, key=lambda ch: ch.last_activity).will_close = True
            return
        _warn_once_a_minute(f"closed connections from {self.addr[0]}: it has "
                            f"{self.per_client} open, none of them idle")
        self.handle_close()

    def idle(self) -> bool:
        """Neither sending a request nor being answered: a kept-alive connection."""
        return self.request is None and not self.requests and not self.total_outbufs_len

    def received(self, data: bytes) -> bool:
        if self.request is None:  # the first bytes of a new request
            self.request_started, self.request_bytes = time.time(), 0
        self.request_bytes += len(data)
        return super().received(data)

    def overdue(self, now: float, timeout: float) -> bool:
        """Whether this connection has had its time: for the request it is sending, or,
        idle, for the next one. One being answered is the server's business."""
        if self.requests or self.total_outbufs_len:
            return False
        if self.request is None:
            return now - self.last_activity > timeout
        return now - self.request_started > timeout + self.request_bytes / MIN_RATE


_last_warning = [0.0]


def _warn_once_a_minute(message: str) -> None:
    """A flood of refused connections is one line a minute in the log, not one each."""
    now = time.monotonic()
    if now - _last_warning[0] >= 60:
        _last_warning[0] = now
        log.warning(message)


def make_server(app: Flask, host: str, port: int, threads: int, settings: Settings) -> Any:
    """The waitress server for *app*, with ``server_limits`` and the guards (see the module);
    one server, or waitress's several when *host* names more than one address."""
    sockets: dict = {}
    server = create_server(app, map=sockets, host=host, port=port, threads=threads,
                           cleanup_interval=CHECK_EVERY,
                           **server_limits(settings.max_content_length,
                                           settings.upload_memory, threads))
    timeout = settings.request_timeout
    channel = type("Channel", (GuardedChannel,), {"per_client": settings.client_connections})
    for listener in {id(s): s for s in sockets.values() if isinstance(s, BaseWSGIServer)
                     }.values():
        listener.channel_class = channel
        if timeout:  # in place of waitress's idle sweep, which knows only channel_timeout
            listener.maintenance = partial(_close_overdue, listener, timeout=timeout)
    return server


def _close_overdue(server: BaseWSGIServer, now: float, timeout: float) -> None:
    """The server's maintenance, run every CHECK_EVERY seconds: close what took too long."""
    for channel in list(server.active_channels.values()):
        if isinstance(channel, GuardedChannel) and channel.overdue(now, timeout):
            channel.will_close = True
