"""Narrowing a search on the search page: a region (drag a rectangle across the query
image, an upload or a library image: the results are those of that region alone), and a
folder (the results all come from it)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..synthetic import draw
from ..web.conftest import image_id
from .conftest import ALL_RENDERED, needs_chromium

pytestmark = needs_chromium

FIRST_HIT = "() => document.querySelector('#results .card .name').textContent"


def two_halves(path) -> None:
    """A 96×48 PNG: a circle on the left, stripes on the right."""
    img = Image.new("RGB", (96, 48))
    img.paste(draw("circle", np.random.default_rng(1)).convert("RGB").resize((48, 48)), (0, 0))
    img.paste(draw("stripes", np.random.default_rng(2)).convert("RGB").resize((48, 48)), (48, 0))
    out = io.BytesIO()
    img.save(out, "PNG")
    path.write_bytes(out.getvalue())


def drag(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag across the query picture from (x0, y0) to (x1, y1), fractions of the picture."""
    rect = page.evaluate("""() => {
      const i = document.getElementById('query-image'), b = i.getBoundingClientRect();
      const s = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight);
      const w = i.naturalWidth * s, h = i.naturalHeight * s;
      return {left: b.left + (b.width - w) / 2, top: b.top + (b.height - h) / 2, w, h};
    }""")
    page.mouse.move(rect["left"] + x0 * rect["w"], rect["top"] + y0 * rect["h"])
    page.mouse.down()
    page.mouse.move(rect["left"] + x1 * rect["w"], rect["top"] + y1 * rect["h"], steps=5)
    page.mouse.up()


def searched(page, box: str) -> str:
    page.wait_for_function("box => document.getElementById('region-info').textContent"
                           ".includes(box)", arg=box)
    page.wait_for_function(ALL_RENDERED, arg="#results img")
    return page.evaluate(FIRST_HIT)


def search_halves(page, server, tmp_path) -> None:
    """The search page, searching by the two-halves image."""
    query = tmp_path / "halves.png"
    two_halves(query)
    page.goto(server + "/search")
    page.set_input_files("#file-input", str(query))
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    page.wait_for_function(ALL_RENDERED, arg="#query img")


def test_a_region_of_an_upload(page, server, tmp_path):
    search_halves(page, server, tmp_path)
    drag(page, 0.01, 0.01, 0.49, 0.99)
    assert searched(page, "pixels 0, 0, 48, 48").startswith("circle-")
    assert page.is_visible("#region-box") and page.is_visible("#region-clear")
    drag(page, 0.51, 0.01, 0.99, 0.99)
    assert searched(page, "pixels 48, 0, 96, 48").startswith("stripes-")
    page.screenshot(path=str(tmp_path / "region.png"), full_page=True)
    page.click("#region-clear")
    page.wait_for_function("() => document.getElementById('region-info').textContent"
                           ".startsWith('whole image')")
    assert not page.is_visible("#region-box")
    assert page.watcher.problems == []


def test_a_region_of_a_library_image(page, server, library):
    some = image_id(library.data_dir, library.files["square"][0])
    page.goto(f"{server}/search?similar={some}")
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    page.wait_for_function(ALL_RENDERED, arg="#query img")
    drag(page, 0.0, 0.0, 0.5, 0.5)
    searched(page, "pixels 0, 0, 24, 24")  # of the 48-pixel original, not the thumbnail
    assert page.watcher.problems == []


def test_search_within_a_folder(page, server, library):
    squares = str(library.collection / "square")
    page.goto(server + "/search")
    page.wait_for_function("() => document.querySelectorAll('#folder-input option').length > 1")
    page.select_option("#folder-input", squares)
    page.set_input_files("#file-input", str(library.files["circle"][0]))
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    names = page.eval_on_selector_all("#results .card .name", "ns => ns.map(n => n.textContent)")
    assert names and all(n.startswith("square-") for n in names)
    page.click("#results .card .card-button >> nth=0")  # a search by a hit keeps the folder
    page.wait_for_url("**/search?similar=*")
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    names = page.eval_on_selector_all("#results .card .name", "ns => ns.map(n => n.textContent)")
    assert names and all(n.startswith("square-") for n in names)
    page.wait_for_function(ALL_RENDERED, arg="#results img")
    assert page.watcher.problems == []


def test_a_region_typed_instead_of_drawn(page, server, tmp_path):
    """The keyboard way: the region in the query's pixels, then Enter."""
    search_halves(page, server, tmp_path)
    page.fill("#region-input", "96,48,48,0")
    page.press("#region-input", "Enter")
    assert searched(page, "pixels 48, 0, 96, 48").startswith("stripes-")
    page.wait_for_function("() => { const b = document.getElementById('region-box'); "
                           "return !b.hidden && b.getBoundingClientRect().width > 10; }")
    assert page.watcher.problems == []
