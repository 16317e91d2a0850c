"""The /map page in a real browser (Debian's Chromium, headless): every image a point, the
points become thumbnails close in (each rendered), a click opens the lightbox, a box or
the keyboard selects images into a grid a keyboard user reaches, and the filters grey out
or restrict."""
from __future__ import annotations

import re

from .conftest import needs_chromium

pytestmark = needs_chromium

LIGHTBOX_SHOWN = """() => {
    const d = document.getElementById('lightbox');
    return d.open && [...d.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0);
}"""


def painted_pixel(page) -> tuple[float, float]:
    """Where on the page a point is drawn (the first painted canvas pixel)."""
    return tuple(page.evaluate("""() => {
        const c = document.getElementById('map-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const ratio = c.width / c.clientWidth, box = c.getBoundingClientRect();
        for (let i = 3; i < d.length; i += 4) if (d[i] === 255) {
            const p = (i - 3) / 4;
            return [box.left + (p % c.width) / ratio + 1, box.top + Math.floor(p / c.width) / ratio + 1];
        }
        return null; }"""))


def test_the_map_shows_every_image_and_zooms_into_thumbnails(page, server, library, tmp_path):
    page.goto(server + "/map")
    page.wait_for_function("() => document.getElementById('map-summary').textContent")
    count = len(library.all_files())
    assert page.text_content("#map-summary").startswith(f"{count} image(s), placed by PCA")
    assert page.get_attribute("#map-view", "data-visible") == str(count)  # all in view
    drawn = page.evaluate("""() => {
        const c = document.getElementById('map-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert drawn > count  # points painted, a few pixels each
    page.screenshot(path=str(tmp_path / "map.png"))

    page.mouse.click(*painted_pixel(page))  # a point, zoomed out: its image opens
    page.wait_for_function(LIGHTBOX_SHOWN)
    assert re.search(r"search\?similar=\d+$", page.get_attribute("#lightbox-similar", "href"))
    assert re.search(r"duplicates\?image=\d+", page.get_attribute("#lightbox-duplicates", "href"))
    assert re.search(r"explore\?b=\d+$", page.get_attribute("#use-b", "href"))
    shown = page.get_attribute("#lightbox-similar", "href")
    page.keyboard.press("ArrowRight")  # opened from the map: nothing to step to
    assert page.is_disabled("#lightbox-next")
    assert page.get_attribute("#lightbox-similar", "href") == shown
    page.keyboard.press("Escape")

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
    page.check("#restrict-input")  # restrict: the others are not drawn at all
    assert page.locator("#map-tiles .map-tile.outside").count() == 0
    page.click("#map-fit")
    assert page.get_attribute("#map-view", "data-visible") == str(inside)
    page.uncheck("#restrict-input")
    page.select_option("#folder-input", "")
    page.select_option("#colour-input", "reconstruction_error")
    assert "unusual" in page.text_content("#map-legend")

    page.focus("#map-view")
    page.keyboard.press("+")
    page.keyboard.press("Tab")  # from the map to its first thumbnail
    assert page.evaluate("() => document.activeElement.classList.contains('map-tile')")
    page.keyboard.press("Enter")
    page.wait_for_function(LIGHTBOX_SHOWN)
    page.click("#lightbox-similar")
    page.wait_for_url(re.compile(r"/search\?similar=\d+$"))
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0")
    assert page.watcher.problems == []


def test_a_box_or_the_keyboard_selects_images_into_a_grid(page, server, library):
    page.goto(server + "/map")
    page.wait_for_function("() => document.getElementById('map-summary').textContent")
    count = len(library.all_files())
    page.locator("#map-view").scroll_into_view_if_needed()
    view = page.locator("#map-view").bounding_box()
    bottom = min(view["y"] + view["height"], page.viewport_size["height"]) - 2
    page.keyboard.down("Shift")  # a box over the left half of the map
    page.mouse.move(view["x"] + 2, view["y"] + 2)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] / 2, bottom, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_function("() => document.querySelector('#map-selection .selection-tile')")
    boxed = page.locator("#map-selection .selection-tile").count()
    assert 0 < boxed < count
    assert page.text_content("#map-selection-summary").startswith(f"{boxed} image(s) selected")
    page.click("#map-clear")
    assert page.locator("#map-selection .selection-tile").count() == 0

    page.focus("#map-select-view")  # the keyboard's way: every image in view
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.classList.contains('selection-tile')")
    assert page.locator("#map-selection .selection-tile").count() == count
    page.wait_for_function("() => [...document.querySelectorAll('#map-selection img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.dataset.index") == "1"
    page.keyboard.press("Enter")
    page.wait_for_function(LIGHTBOX_SHOWN)
    second = page.get_attribute("#lightbox-similar", "href")  # names a folder may repeat
    page.keyboard.press("ArrowRight")  # the lightbox steps through the selection
    page.wait_for_function(
        f"() => document.getElementById('lightbox-similar').getAttribute('href') !== {second!r}")
    page.wait_for_function(LIGHTBOX_SHOWN)
    page.keyboard.press("Escape")  # back to the tile of the image last shown
    page.wait_for_function("() => document.activeElement.dataset.index === '2'")
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
