"""The /library page in a real browser (Debian's Chromium, headless): the grid, a folder
filter, the lightbox, keyboard moves and "similar"; every image rendered; a page of 200
tiles (how fast it renders: python -m bench.browser_library)."""
from __future__ import annotations

import re

import pytest

from ..synthetic import SHAPES, make_collection
from ..web.conftest import index_more, private_copy
from .conftest import ALL_RENDERED, RENDERED, Watcher, needs_chromium, running_app

pytestmark = needs_chromium

TILES = "#library .tile"
FOCUSED_INDEX = "() => document.activeElement && document.activeElement.dataset.index"
RENDERED_200 = """() => {
  const imgs = [...document.querySelectorAll('#library .tile img')];
  return imgs.length >= 200 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture
def tall(page):
    page.set_viewport_size({"width": 1200, "height": 2000})  # every lazy thumbnail in view
    return page


def test_the_grid_and_a_folder_filter(tall, server, library, tmp_path):
    page = tall
    every = len(library.all_files())  # the shared library's 26, one page of them
    page.goto(server + "/library")
    page.wait_for_function(f"() => document.querySelectorAll('{TILES}').length === {every}")
    page.wait_for_function(ALL_RENDERED, arg="#library img")
    assert page.text_content("#library-summary").startswith(f"{every} image(s)")
    page.screenshot(path=str(tmp_path / "library.png"), full_page=True)
    squares = str(library.collection / "square")
    page.select_option("#folder-input", squares)
    page.click("#library-button")
    page.wait_for_function(f"() => document.querySelectorAll('{TILES}').length === 8")
    names = page.eval_on_selector_all(f"{TILES} .name", "ns => ns.map(n => n.textContent)")
    assert all(n.startswith("square-") for n in names)
    page.wait_for_function(ALL_RENDERED, arg="#library img")
    assert page.watcher.problems == []


def test_the_lightbox_by_mouse_and_keyboard(tall, server, library, tmp_path):
    page = tall
    page.goto(server + "/library")
    page.wait_for_function(f"() => document.querySelectorAll('{TILES}').length === "
                           f"{len(library.all_files())}")
    page.focus(f"{TILES} .tile-open >> nth=0")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(FOCUSED_INDEX) == "1"
    page.keyboard.press("ArrowDown")  # one row down: as many tiles on as there are columns
    columns = page.evaluate("() => getComputedStyle(document.getElementById('library'))"
                            ".gridTemplateColumns.split(' ').length")
    assert page.evaluate(FOCUSED_INDEX) == str(1 + columns)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('lightbox').open")
    page.wait_for_function(RENDERED, arg="#lightbox-original")
    page.wait_for_function(RENDERED, arg="#lightbox-reconstruction")
    first = page.text_content("#lightbox-name")
    assert "Pixels" in page.text_content("#lightbox-facts")
    page.screenshot(path=str(tmp_path / "lightbox.png"))
    page.keyboard.press("ArrowRight")
    page.wait_for_function("name => document.getElementById('lightbox-name').textContent "
                           "!== name", arg=first)
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('lightbox').open")
    page.wait_for_function(f"() => ({FOCUSED_INDEX})() === '{2 + columns}'")  # the tile shown
    page.click(f"{TILES} .tile-open >> nth=3")  # and by mouse
    page.wait_for_function("() => document.getElementById('lightbox').open")
    page.click("#lightbox-close")
    page.wait_for_function("() => !document.getElementById('lightbox').open")
    assert page.watcher.problems == []


def test_similar_from_a_tile(tall, server, library):
    page = tall
    page.goto(server + "/library")
    page.wait_for_function(f"() => document.querySelectorAll('{TILES}').length === "
                           f"{len(library.all_files())}")
    page.click(f"{TILES} .similar >> nth=5")
    page.wait_for_url(re.compile(r"/search\?similar=\d+$"))
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    page.wait_for_function(ALL_RENDERED, arg="#results img")
    assert page.watcher.problems == []


def test_a_page_holds_200_tiles(browser, library, tmp_path):
    """More images than a page holds (the shared library's 26 and 186 more, indexed into a
    copy of it with its model): the page shows 200 tiles, every one rendered."""
    bigger = private_copy(library, tmp_path)
    make_collection(tmp_path / "more", per_class=62, classes=SHAPES)
    index_more(bigger.data_dir, tmp_path / "more")
    with running_app(bigger.data_dir) as url:
        context = browser.new_context(viewport={"width": 1600, "height": 4000})  # all in view
        page = context.new_page()
        watcher = Watcher(page, url)
        page.goto(url + "/library")
        page.wait_for_function(RENDERED_200, timeout=60_000)
        assert page.locator("#library .tile").count() == 200
        assert watcher.problems == []
        context.close()
