"""The /map page in a real browser (Debian's Chromium, headless): every image a point, the
points become thumbnails close in (each rendered), and a keyboard user reaches one and
searches by it."""
from __future__ import annotations

import re

from .conftest import needs_chromium

pytestmark = needs_chromium


def test_the_map_shows_every_image_and_zooms_into_thumbnails(page, server, library, tmp_path):
    page.goto(server + "/map")
    page.wait_for_function("() => document.getElementById('map-summary').textContent")
    count = len(library.all_files())
    assert page.text_content("#map-summary").startswith(f"{count} image(s)")
    assert page.get_attribute("#map-view", "data-visible") == str(count)  # all in view
    drawn = page.evaluate("""() => {
        const c = document.getElementById('map-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert drawn > count  # points painted, a few pixels each
    page.screenshot(path=str(tmp_path / "map.png"))

    page.focus("#map-view")
    while not page.locator("#map-tiles .map-tile").count():
        page.keyboard.press("+")
    page.wait_for_function("() => [...document.querySelectorAll('#map-tiles img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    tiles = page.locator("#map-tiles .map-tile").count()
    assert 0 < tiles <= 120
    page.screenshot(path=str(tmp_path / "map-close.png"))

    folder = str(library.files["circle"][0].parent)
    page.wait_for_selector(f'#folder-input option[value="{folder}"]', state="attached")
    page.select_option("#folder-input", folder)
    inside = sum(str(p.parent) == folder for p in library.files["circle"])
    assert page.text_content("#map-summary").endswith(f"; {inside} within the filters.")
    shown = page.locator("#map-tiles .map-tile:not(.outside)").count()
    assert shown <= inside and page.locator("#map-tiles .map-tile.outside").count() > 0
    page.select_option("#folder-input", "")
    assert page.locator("#map-tiles .map-tile.outside").count() == 0
    page.select_option("#colour-input", "reconstruction_error")
    assert "unusual" in page.text_content("#map-legend")
    page.keyboard.press("Tab")  # from the map to its first thumbnail
    assert page.evaluate("() => document.activeElement.classList.contains('map-tile')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search\?similar=\d+$"))
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    assert page.watcher.problems == []


def test_a_search_result_is_shown_on_the_map(page, server):
    first = page.request.get(f"{server}/api/library").json()["images"][0]["id"]
    page.goto(f"{server}/search?similar={first}")
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    hit = page.get_attribute("#results .card:nth-child(2)", "data-id")
    page.click(f'#results .card[data-id="{hit}"] .on-map')
    page.wait_for_url(re.compile(rf"/map\?id={hit}$"))
    page.wait_for_selector(f'#map-tiles .map-tile[data-id="{hit}"]')
    assert page.text_content("#map-zoom") != "whole map"  # opened close in, on it
    assert page.watcher.problems == []
