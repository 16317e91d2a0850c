"""The search page in a real browser: Debian's Chromium, headless, driven by Playwright.

The app runs in a background thread on 127.0.0.1 (port 0); the browser
uploads, drops and pastes images, follows a hit, and the test checks what
rendered, that hostile file names stay text, and that nothing outside
127.0.0.1 was contacted.
"""
from __future__ import annotations

import re

import pytest

from ..web.conftest import image_id
from .conftest import DROP_FILE, ODD_NAMES, PASTE_FILE, needs_chromium

pytestmark = needs_chromium

# Every card's thumbnail and reconstruction, and the query pair, decoded with real pixels.
ALL_IMAGES_RENDERED = """() => {
  const cards = [...document.querySelectorAll('#results .card')];
  if (!cards.length) return false;
  const imgs = cards.flatMap(c => [c.querySelector('img.thumb'), c.querySelector('img.recon')]);
  imgs.push(document.getElementById('query-image'),
            document.getElementById('query-reconstruction'));
  return imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def wait_for_results(page, query_name: str) -> list[dict]:
    page.wait_for_function(
        "name => document.getElementById('query-name').textContent === name", arg=query_name)
    page.wait_for_function(ALL_IMAGES_RENDERED)
    return page.eval_on_selector_all(
        "#results .card",
        "cards => cards.map(c => ({id: c.dataset.id, "
        "score: c.querySelector('.score').textContent, "
        "name: c.querySelector('.name').textContent, "
        "nameHtml: c.querySelector('.name').innerHTML}))")


def test_upload_see_results_and_follow_a_hit(page, server, library, tmp_path):
    page.goto(server + "/search")
    page.wait_for_function("() => document.getElementById('stats').textContent.includes('images')")
    assert f"{len(library.all_files())} images" in page.text_content("#stats")

    query = library.files["square"][2]
    page.fill("#k-input", "8")
    page.set_input_files("#file-input", str(query))
    cards = wait_for_results(page, query.name)
    assert len(cards) == 8
    assert cards[0]["name"] == query.name  # the image itself, similarity 1
    for card in cards:
        assert re.fullmatch(r"-?\d\.\d{3}", card["score"]), card
    assert re.fullmatch(r"\d\.\d{5}", page.text_content("#query-error"))
    assert page.is_visible("#query-anomaly")  # the model has a threshold, so a verdict shows
    assert page.text_content("#query-anomaly") in ("no", "unusual for this collection")
    page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
    assert (tmp_path / "results.png").stat().st_size > 0

    clicked = cards[1]
    page.click(f'#results .card[data-id="{clicked["id"]}"] .card-button')
    page.wait_for_url(re.compile(rf"\?similar={clicked['id']}$"))
    followed = wait_for_results(page, clicked["name"])
    assert followed and clicked["id"] not in [c["id"] for c in followed]
    page.screenshot(path=str(tmp_path / "similar.png"), full_page=True)
    assert (tmp_path / "similar.png").stat().st_size > 0

    page.go_back()  # history returns to the upload's results
    back = wait_for_results(page, query.name)
    assert [c["id"] for c in back] == [c["id"] for c in cards]
    assert page.watcher.problems == []


def test_drop_and_paste(page, server, library):
    page.goto(server + "/search")
    original = library.files["stripes"][0]
    url = f"/images/{image_id(library.data_dir, original)}/original"
    page.evaluate(DROP_FILE, [url, "dropped.png"])
    assert wait_for_results(page, "dropped.png")[0]["name"] == original.name
    page.evaluate(PASTE_FILE, [url, "pasted.png"])
    assert wait_for_results(page, "pasted.png")[0]["name"] == original.name
    assert page.watcher.problems == []


@pytest.mark.parametrize("name", list(ODD_NAMES))
def test_file_names_render_as_text(page, server, library, name, tmp_path):
    page.goto(server + "/search")
    page.set_input_files("#file-input", str(library.collection / name))
    cards = wait_for_results(page, name)
    top = cards[0]
    assert top["name"] == name
    assert "&lt;" in top["nameHtml"] and "<" not in top["nameHtml"]
    assert page.text_content("#query-name") == name
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], #results b').length") == 0
    title = page.get_attribute(f'#results .card[data-id="{top["id"]}"] .card-button', "title")
    assert title.startswith(str((library.collection / name).resolve()))
    page.screenshot(path=str(tmp_path / "escaped.png"))
    assert page.watcher.problems == []  # in particular: no alert() dialog


def test_errors_are_shown_not_thrown(page, server, tmp_path):
    page.goto(server + "/search")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text, not a picture")
    page.set_input_files("#file-input", str(not_an_image))
    page.wait_for_selector("#message:not([hidden])")
    message = page.text_content("#message")
    assert "not supported" in message and "415" in message
    # the failed request is reported by the page, not as an uncaught error
    assert [p for p in page.watcher.problems if not p.startswith("console: Failed to load")] == []
