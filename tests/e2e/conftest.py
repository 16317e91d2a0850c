"""What the end-to-end tests share: the real app over HTTP and Debian's Chromium, headless,
under Playwright, with a watcher that fails a test on page errors, dialogs or any request
that leaves 127.0.0.1.

The browser tests share one library, built once a session (``library``): the web tests'
kind (``tests.web.conftest.build_library``), with two hostile file names among its images.
They only read it; a module that changes its library works on a private copy of it
(test_browser_duplicates.py), and one that needs another kind of model builds its own
(test_browser_tools.py: a denoising autoencoder).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from ..web.conftest import HOSTILE_NAME, Library, build_library, index_more, private_copy

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]

DROP_FILE = """async ([url, name]) => {
  const blob = await (await fetch(url)).blob();
  const data = new DataTransfer();
  data.items.add(new File([blob], name, {type: blob.type}));
  document.getElementById('drop-zone').dispatchEvent(
    new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
}"""

PASTE_FILE = """async ([url, name]) => {
  const blob = await (await fetch(url)).blob();
  const data = new DataTransfer();
  data.items.add(new File([blob], name, {type: blob.type}));
  document.dispatchEvent(new ClipboardEvent('paste',
    {clipboardData: data, bubbles: true, cancelable: true}));
}"""

RENDERED = "sel => { const i = document.querySelector(sel); " \
           "return !!i && i.complete && i.naturalWidth > 0; }"
ALL_RENDERED = "sel => { const imgs = [...document.querySelectorAll(sel)]; " \
               "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")

# File names that are also HTML, at the top of the shared library's collection: a page must
# show them as text (tests/e2e/test_browser.py).
ODD_NAMES = {HOSTILE_NAME: "circle", "<b>bold & 'quoted'.png": "square"}


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Library:
    """The browser tests' library: 8 images of each shape and the two ``ODD_NAMES`` (26), a
    tiny model trained on them, the index. Read-only: see this module's docstring."""
    return build_library(tmp_path_factory.mktemp("browser"), per_class=8, extra=ODD_NAMES)


def with_copies(library: Library, root: Path, larger_square: bool = False) -> Library:
    """A private copy of *library* with three identical circles and two identical squares
    (and, if asked, a square at twice the size), indexed: pages that take decisions or move
    files work on it."""
    built = private_copy(library, root)
    folder = built.collection / "copies"
    folder.mkdir()
    circle, square = built.files["circle"][0], built.files["square"][0]
    for name in ("circle-again.png", "circle-once-more.png"):
        (folder / name).write_bytes(circle.read_bytes())
    (folder / "square-same.png").write_bytes(square.read_bytes())
    if larger_square:
        Image.open(square).resize((96, 96), Image.NEAREST).save(folder / "square-large.png")
    index_more(built.data_dir, folder)
    return built


@contextmanager
def running_app(data_dir: Path, **settings: str) -> Iterator[str]:
    """The real app over HTTP on an ephemeral 127.0.0.1 port, in a background thread;
    *settings*: more ``LOOKALIKE_*`` for it."""
    from werkzeug.serving import make_server

    from web.app import create_app

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LOOKALIKE_")}
    # threads 0: leave torch's process-wide thread count to the other test modules
    app = create_app({"LOOKALIKE_DATA_DIR": str(data_dir), "LOOKALIKE_INFERENCE_THREADS": 0,
                      **settings})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        app.extensions["lookalike"].close()
        os.environ.update(saved)


@contextmanager
def headless_chromium():
    """Debian's Chromium under Playwright, headless, with no network chatter."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Watcher:
    """Collects what must not happen on the page: errors, dialogs, off-host requests.

    A test that expects the page to ask before it acts lists the questions' beginnings in
    ``confirms``: those are answered yes, in order; any other dialog is a problem.
    """

    def __init__(self, page, base: str):
        self.problems: list[str] = []
        self.confirms: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", self._dialog)
        page.on("request", lambda r: self._request(r.url, base))

    def _dialog(self, dialog) -> None:
        if dialog.type == "confirm" and self.confirms and \
                dialog.message.startswith(self.confirms[0]):
            self.confirms.pop(0)
            dialog.accept()
            return
        self.problems.append(f"dialog: {dialog.message}")  # e.g. alert(1) from an injection
        dialog.dismiss()

    def _request(self, url: str, base: str) -> None:
        if not url.startswith((base + "/", "data:", "blob:")):
            self.problems.append(f"request off the host: {url}")


@pytest.fixture(scope="module")
def server(library):
    """The app on the ``library`` (the shared one, or the module's own), served on 127.0.0.1 in a thread; its URL."""
    with running_app(library.data_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, server):
    """A fresh page of 1200×900 with a ``watcher``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.watcher = Watcher(page, server)
    yield page
    context.close()
