"""``lookalike serve --watch`` as a user runs it: the console script, a short scan interval, and
files arriving, moving and leaving while it serves. A file copied in slowly is searchable
within 30 s of its last write and not before it is whole; a renamed file keeps its id; a
deleted one goes; a folder emptied (an unmounted disk) keeps its rows."""
from __future__ import annotations

import io
import json
import shutil
import time
import urllib.request
import uuid

import numpy as np
import pytest
from PIL import Image

from ..conftest import LOOKALIKE
from .test_e2e import Server, installed_demo, run_lookalike  # noqa: F401  (the user, the model)

SETTLE = 3.0
PIECES, PAUSE = 4, 1.5  # a slow copy: four pieces, 1.5 s apart (each less than SETTLE)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def library(url: str) -> dict[str, int]:
    """Path → id of every indexed image."""
    return {i["path"]: i["id"] for i in get(f"{url}/api/library?per_page=500")["images"]}


def first_hit(url: str, data: bytes) -> str:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"q.png\"\r\nContent-Type: image/png\r\n\r\n")
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/search", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["results"][0]["path"]


def wait_for(check, limit: float, step: float = 0.25):
    """Poll *check* until it returns something true; that, or fail after *limit* seconds."""
    deadline = time.monotonic() + limit
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {limit} s"
        time.sleep(step)


def a_new_picture() -> bytes:
    """A PNG unlike any in the collection (noise), about 10 KB."""
    pixels = np.random.default_rng(26).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def watched(installed_demo, tmp_path):  # noqa: F811
    """The user's folder copied, indexed with their model into a data dir of its own, and
    served with --watch."""
    home, env = installed_demo
    mine = tmp_path / "user"
    shutil.copytree(home / "photos", mine / "photos")
    (mine / "lookalike-data").mkdir()
    shutil.copy(home / "lookalike-data" / "model.pt", mine / "lookalike-data" / "model.pt")
    indexed = run_lookalike(["-q", "index", "photos"], mine, env)
    assert indexed.returncode == 0, indexed.stderr
    env = {**env, "LOOKALIKE_WATCH_INTERVAL": "1", "LOOKALIKE_WATCH_SETTLE": str(SETTLE)}
    server = Server(mine, env, tmp_path / "server.log", "--watch")
    try:
        yield mine, server
    finally:
        log = server.stop()
        assert "Traceback" not in log, log


@pytest.mark.skipif(not LOOKALIKE.exists(), reason="no console script (pip install -e .)")
def test_the_library_follows_its_folder(watched):
    home, server = watched
    url, photos = server.url, home / "photos"
    status = wait_for(lambda: (s := get(f"{url}/api/watch"))["passes"] >= 1 and s, 60)
    assert status["watching"] and status["folders"] == [str(photos)]
    before = library(url)
    assert len(before) == 36

    # A slow copy: never indexed half-written; searchable soon after its last write.
    picture = a_new_picture()
    arriving = photos / "arriving.png"
    step = len(picture) // PIECES
    with arriving.open("wb") as f:
        for i in range(PIECES):
            f.write(picture[i * step:] if i == PIECES - 1 else picture[i * step:(i + 1) * step])
            f.flush()
            if i < PIECES - 1:
                time.sleep(PAUSE)
                assert str(arriving) not in library(url)
    last_write = time.monotonic()
    new_id = wait_for(lambda: library(url).get(str(arriving)), 30)
    assert time.monotonic() - last_write <= 30
    assert first_hit(url, picture) == str(arriving)

    # Renamed: the same id. Deleted: gone.
    renamed = photos / "circle" / "renamed.png"
    arriving.rename(renamed)
    assert wait_for(lambda: library(url).get(str(renamed)), 30) == new_id
    assert str(arriving) not in library(url)
    gone = sorted((photos / "square").glob("*.png"))[0]
    gone.unlink()
    wait_for(lambda: str(gone) not in library(url), 30)

    # The whole folder emptied, as an unmounted disk looks: its rows stay.
    kept = library(url)
    shutil.move(str(photos), str(home / "away"))
    photos.mkdir()
    passes = get(f"{url}/api/watch")["passes"]
    wait_for(lambda: get(f"{url}/api/watch")["passes"] >= passes + 2, 30)
    assert library(url) == kept
    assert get(f"{url}/api/watch")["last_changes"]["kept"] == len(kept)
