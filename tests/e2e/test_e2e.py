"""The real thing, as a new user runs it: the installed ``lookalike`` script, a relative data dir.

Every other test passes absolute temp paths; this one starts the console
script as a subprocess from a temporary working directory with the
default data dir (``lookalike-data``, relative), indexes a folder (which
trains a model first), serves it, and has Chromium upload a query and
follow a hit. Every image on the page must have rendered, and the server
log must hold no traceback. A relative data dir handed on unresolved once
broke every thumbnail of the demo while the whole suite was green.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ..conftest import LOOKALIKE, QUICK_TRAIN, TINY
from ..synthetic import SHAPES, make_collection
from .conftest import CHROMIUM, headless_chromium

# The tests' tiny model and the web's quick epochs (tests/conftest.py), in the default recipe.
TRAIN = ["--epochs", str(QUICK_TRAIN.epochs), "--batch-size", str(QUICK_TRAIN.batch_size),
         "--image-size", str(TINY.image_size), "--latent-dim", str(TINY.latent_dim),
         "--widths", ",".join(map(str, TINY.widths))]

# Every <img> that has a source, decoded with real pixels (the page keeps a few hidden,
# source-less templates; an <img> with a source that failed has naturalWidth 0).
ALL_IMAGES = """() => {
  const imgs = [...document.querySelectorAll('img')].filter(i => i.getAttribute('src'));
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
BROKEN_IMAGES = """() => [...document.querySelectorAll('img')]
  .filter(i => i.getAttribute('src') && !(i.complete && i.naturalWidth > 0))
  .map(i => i.getAttribute('src'))"""


def user_environment(tmp_path: Path) -> dict[str, str]:
    """The user's shell: no LOOKALIKE_* settings, one thread per library (2-core CI box)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update(OMP_NUM_THREADS="1", HOME=str(tmp_path))
    return env


def run_lookalike(args: list[str], cwd: Path, env: dict[str, str],
                  timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOOKALIKE), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


class Server:
    """``lookalike serve --port 0`` as a subprocess; its URL from the first line it prints."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path, *more: str):
        self.log = log
        self.errors = log.open("w")
        self.process = subprocess.Popen([str(LOOKALIKE), "serve", "--port", "0", *more],
                                        cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=self.errors, text=True)
        line = self.process.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if not found:
            self.stop()
            raise AssertionError(f"serve printed {line!r}; log: {log.read_text()}")
        self.url = found.group(1)
        self.announced = line

    def stop(self) -> str:
        """Stop the server; its stderr."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()
        return self.log.read_text()


@pytest.fixture(scope="module")
def installed_demo(tmp_path_factory):
    """A user's folder: photos/ indexed (training first) into the default lookalike-data/."""
    if not LOOKALIKE.exists():
        pytest.skip(f"no console script at {LOOKALIKE} (pip install -e .)")
    home = tmp_path_factory.mktemp("user")
    make_collection(home / "photos", per_class=12, classes=SHAPES)
    env = user_environment(home)
    done = run_lookalike(["-q", "index", "photos", *TRAIN], home, env)
    assert done.returncode == 0, done.stderr
    assert (home / "lookalike-data" / "model.pt").is_file()
    return home, env


def test_index_from_a_relative_folder_and_data_dir(installed_demo):
    home, env = installed_demo
    stats = run_lookalike(["stats", "--json"], home, env)
    assert stats.returncode == 0, stats.stderr
    assert '"images": 36' in stats.stdout
    again = run_lookalike(["index", "photos"], home, env)
    assert again.returncode == 0 and "unchanged 36" in again.stdout


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_served_page_renders_every_image(installed_demo, tmp_path):
    home, env = installed_demo
    server = Server(home, env, tmp_path / "server.log")
    try:
        assert str(home / "lookalike-data") in server.announced  # anchored once, absolute
        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(server.url + "/")  # something is indexed: the library
            page.wait_for_url(re.compile(r"/library$"))
            page.wait_for_function("() => document.querySelectorAll('#library .tile').length "
                                   "=== 36")
            wait_for_every_image(page)
            page.screenshot(path=str(tmp_path / "library.png"), full_page=True)
            page.click("nav a:text('Search')")
            page.wait_for_url(re.compile(r"/search$"))
            query = home / "photos" / "circle" / "circle-0-003.png"
            page.set_input_files("#file-input", str(query))
            page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
            wait_for_every_image(page)
            page.screenshot(path=str(tmp_path / "results.png"), full_page=True)

            first = page.get_attribute("#results .card:nth-child(2)", "data-id")
            page.click(f'#results .card[data-id="{first}"] .card-button')
            page.wait_for_url(re.compile(rf"\?similar={first}$"))
            page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
            wait_for_every_image(page)
            page.screenshot(path=str(tmp_path / "similar.png"), full_page=True)

            page.goto(server.url + "/duplicates?threshold=-1")  # every pair: groups for sure
            page.wait_for_function("() => document.querySelectorAll('#groups .member').length > 1")
            wait_for_every_image(page)
            page.screenshot(path=str(tmp_path / "duplicates.png"), full_page=True)
    finally:
        log = server.stop()
    assert "Traceback" not in log, log


def wait_for_every_image(page) -> None:
    try:
        page.wait_for_function(ALL_IMAGES)
    except Exception:
        raise AssertionError(f"images that did not render: {page.evaluate(BROKEN_IMAGES)}")
