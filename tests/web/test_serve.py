"""``lookalike serve`` as a real process, and a running app that follows its data dir while
``lookalike index`` and a new model change it underneath.

The server is ``python -m web.cli --data-dir D serve --port 0`` (the console script's code,
without needing it installed), started from a temporary working directory: the tests read
the URL it prints, talk to it over HTTP, and stop it with Ctrl-C. That it caps request
bodies is seen from outside (a body far over the limit is cut off before it is all sent);
tests/web/test_body_limits.py checks the cap itself on an in-process waitress server.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from indexer.model import load_checkpoint, save_checkpoint

from ..synthetic import SHAPES, make_collection
from .conftest import MB, index_more, row_for, upload
from .hostile import multipart_head, stream

REPO = Path(__file__).resolve().parents[2]
ANNOUNCED = re.compile(r"Lookalike serving (.+) at (http://(.+):(\d+)/)")


@dataclass
class Served:
    """A running ``lookalike serve``: what it announced, and (once stopped) its stderr."""

    data_dir: str
    url: str
    host: str
    port: int
    stderr: str = ""

    def get(self, path: str) -> tuple[int, dict]:
        """GET *path* over HTTP from 127.0.0.1: (status, JSON body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


def first_line(process: subprocess.Popen, timeout: float = 120) -> str:
    """The first line *process* prints, waiting at most *timeout* seconds for it."""
    deadline = time.monotonic() + timeout
    while not select.select([process.stdout], [], [], 0.1)[0]:
        assert process.poll() is None, f"serve exited: {process.stderr.read()}"
        assert time.monotonic() < deadline, "serve printed nothing"
    return process.stdout.readline()


@contextmanager
def serving(data_dir: Path, cwd: Path, *args: str, **settings: str) -> Iterator[Served]:
    """``lookalike --data-dir DATA_DIR serve --port 0 ARGS`` from *cwd*, with LOOKALIKE_*
    *settings* in its environment, until the block ends; then Ctrl-C, which must stop it
    cleanly (exit status 0, no traceback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update(settings, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), "serve", "--port", "0",
         *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first_line(process)
        found = ANNOUNCED.search(line)
        assert found, f"serve printed {line!r}"
        served = Served(found[1], found[2], found[3], int(found[4]))
        yield served
        process.send_signal(signal.SIGINT)
        _, served.stderr = process.communicate(timeout=60)
        assert process.returncode == 0, served.stderr
        assert "Traceback" not in served.stderr, served.stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# -- lookalike serve ---------------------------------------------------------------------------

@pytest.mark.sqlite_only  # the serve process, not the catalog
def test_serve_answers_at_the_address_it_prints(library, tmp_path):
    with serving(library.data_dir, tmp_path) as served:
        assert served.host == "127.0.0.1"  # by default, this machine only
        assert served.url == f"http://127.0.0.1:{served.port}/"
        assert served.data_dir == str(library.data_dir)
        assert served.get("/healthz") == (200, {"status": "ok", "ready": True, "message": None})
        status, stats = served.get("/api/stats")
        assert status == 200 and stats["data_dir"] == str(library.data_dir)
        assert stats["images"] == len(library.all_files())
        query = library.files["circle"][0].read_bytes()
        head, opening, closing = multipart_head(None)
        head["Content-Length"] = str(len(opening) + len(query) + len(closing))
        status, _, body = stream(served.port, head, [opening, query, closing], chunked=False)
        assert status == 200, body[:300]
        assert json.loads(body)["results"][0]["name"] == library.files["circle"][0].name
    assert "not ready" not in served.stderr


@pytest.mark.sqlite_only  # the serve process, not the catalog
def test_serve_says_what_is_missing(tmp_path):
    data = tmp_path / "nothing-here"
    with serving(data, tmp_path, "--host", "0.0.0.0") as served:
        assert served.url == f"http://0.0.0.0:{served.port}/"  # the address asked for
        status, health = served.get("/healthz")
        assert status == 200 and health["ready"] is False
        assert f"lookalike --data-dir {data} index FOLDER" in health["message"]
    assert "not ready yet" in served.stderr and "index FOLDER" in served.stderr


@pytest.mark.sqlite_only  # the serve process, not the catalog
def test_serve_caps_request_bodies_near_the_upload_limit(library, tmp_path):
    limit = 256 * 1024
    with serving(library.data_dir, tmp_path, LOOKALIKE_MAX_CONTENT_LENGTH=str(limit)) as served:
        # Over the app's limit, under the server's cap (twice that): the app's JSON 413.
        head, opening, closing = multipart_head(None)
        payload = [b"\x89PNG" + bytes(16 * 1024 - 4)] * (3 * limit // 2 // (16 * 1024))
        head["Content-Length"] = str(len(opening) + sum(map(len, payload)) + len(closing))
        status, headers, body = stream(served.port, head, [opening, *payload, closing],
                                       chunked=False)
        assert status == 413 and headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "too_large"

        # Chunked without end: refused as soon as it passes the cap, not read to its end.
        head, opening, _ = multipart_head(None)
        block, sent = bytes(64 * 1024), []

        def chunks():
            yield opening
            for _ in range(100 * MB // len(block)):
                sent.append(len(block))
                yield block

        status, _, _ = stream(served.port, head, chunks(), chunked=True)
        assert status == 413 and sum(sent) < 100 * MB
        assert served.get("/healthz")[0] == 200  # and it still serves


# -- a running app follows the data dir ----------------------------------------------------------

def test_reindex_is_seen_without_restart(tmp_path, own_library, own_client):
    before = own_client.get("/api/stats").get_json()
    more = tmp_path / "more"
    added = make_collection(more, per_class=4, seed=7, classes=SHAPES)
    index_more(own_library.data_dir, more)

    after = own_client.get("/api/stats").get_json()
    assert after["images"] == before["images"] + 12
    assert after["generation"] > before["generation"]
    new_file = added["circle"][2]
    new_row = row_for(own_library.data_dir, new_file)
    top = upload(own_client, new_file.read_bytes()).get_json()["results"][0]
    assert top["id"] == new_row.id and top["similarity"] > 0.999


def test_new_model_file_is_loaded_without_restart(own_library, own_client):
    before = own_client.get("/api/stats").get_json()["model_sha256"]
    checkpoint = load_checkpoint(own_library.data_dir / "model.pt")
    save_checkpoint(own_library.data_dir / "model.pt", checkpoint.model, {"note": "retrained"})
    after = own_client.get("/api/stats").get_json()["model_sha256"]
    assert after != before
    assert after == hashlib.sha256((own_library.data_dir / "model.pt").read_bytes()).hexdigest()


def test_keeps_answering_while_lookalike_index_runs(tmp_path, own_library, own_client,
                                                   child_environment):
    more = tmp_path / "more"
    make_collection(more, per_class=40, seed=8, classes=SHAPES)
    query = own_library.files["stripes"][0].read_bytes()
    generation = own_client.get("/api/stats").get_json()["generation"]
    command = [sys.executable, "-m", "web.cli", "--data-dir", str(own_library.data_dir), "-q",
               "index", str(more), "--workers", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=child_environment(own_library.data_dir))
    statuses, during = [], 0
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            statuses.append(upload(own_client, query, k="5").status_code)
            statuses.append(own_client.get("/api/stats").status_code)
            during += process.poll() is None
            time.sleep(0.02)  # leave the indexer some of the two CPUs
    finally:
        output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output
    assert during > 0 and set(statuses) == {200}
    stats = own_client.get("/api/stats").get_json()
    assert stats["generation"] > generation
    assert stats["images"] == len(own_library.all_files()) + 120
    assert upload(own_client, query).status_code == 200


# -- slow clients cannot starve the server (127.0.0.x only, bounded in count and time) ---------

HALF_OPEN = b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # ... and then nothing


def connect_from(source: str, port: int) -> socket.socket:
    """A connection to the server on 127.0.0.1 from another loopback address (another
    client, as far as the server can tell)."""
    return socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes *sock* within *within* seconds (it never answers one)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.2)[0]:
            try:
                if sock.recv(4096) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


def healthz_within(port: int, seconds: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.sqlite_only  # the serve process, not the catalog
def test_half_open_connections_do_not_take_the_server_offline(library, tmp_path):
    """25 connections that send a request line and a header, then nothing (#23): another
    client is answered at once, and every one of them is closed within the deadline."""
    with serving(library.data_dir, tmp_path, LOOKALIKE_REQUEST_TIMEOUT="2") as served:
        attackers = [connect_from("127.0.0.2", served.port) for _ in range(25)]
        try:
            for sock in attackers:
                sock.sendall(HALF_OPEN)
            started = time.monotonic()
            assert healthz_within(served.port, 8) == 200
            assert time.monotonic() - started < 5  # not the 2 minutes it once took
            assert all(closed_by_server(sock, 10) for sock in attackers)
        finally:
            for sock in attackers:
                sock.close()
        assert healthz_within(served.port, 5) == 200


@pytest.mark.sqlite_only  # the serve process, not the catalog
def test_a_trickling_request_is_cut_off_and_a_slow_upload_is_not(library, tmp_path):
    query = library.files["circle"][0].read_bytes()
    with serving(library.data_dir, tmp_path, LOOKALIKE_REQUEST_TIMEOUT="2") as served:
        # A byte of headers every 0.3 s: closed at the deadline, long before it could end.
        trickle = connect_from("127.0.0.3", served.port)
        started, closed = time.monotonic(), False
        try:
            for byte in HALF_OPEN * 4:
                try:
                    trickle.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if select.select([trickle], [], [], 0.3)[0] and trickle.recv(4096) == b"":
                    closed = True
                    break
        finally:
            trickle.close()
        assert closed and time.monotonic() - started < 10  # the trickle would take 50 s
        # An upload slower than the deadline but steady (a 120 KB PNG at ~40 KB/s) is served.
        noise = np.random.default_rng(0).integers(0, 256, (160, 256, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(noise).save(out, "PNG")
        head, opening, closing = multipart_head(None)
        body = opening + out.getvalue() + closing
        head["Content-Length"] = str(len(body))

        def slowly():
            for start in range(0, len(body), 4096):
                time.sleep(0.1)
                yield body[start:start + 4096]

        started = time.monotonic()
        status, _, answer = stream(served.port, head, slowly(), chunked=False)
        assert status == 200, answer[:300]
        assert time.monotonic() - started > 2.5  # it did take longer than the deadline
