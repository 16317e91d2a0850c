"""The /duplicates page in a real browser (Debian's Chromium, headless): groups drawn with
every thumbnail and reconstruction rendered, decisions taken and undone, pages turned."""
from __future__ import annotations

import pytest
from PIL import Image

from ..web.conftest import Library, index_more, private_copy
from .conftest import ALL_RENDERED, needs_chromium

pytestmark = needs_chromium

GROUPS = "#groups .group"


@pytest.fixture(scope="module")
def library(library, tmp_path_factory) -> Library:
    """A private copy of the shared library (these tests take decisions), with three
    identical circles, two identical squares and a larger square."""
    built = private_copy(library, tmp_path_factory.mktemp("browser-duplicates"))
    folder = built.collection / "copies"
    folder.mkdir()
    circle, square = built.files["circle"][0], built.files["square"][0]
    for name in ("circle-again.png", "circle-once-more.png"):
        (folder / name).write_bytes(circle.read_bytes())
    (folder / "square-same.png").write_bytes(square.read_bytes())
    Image.open(square).resize((96, 96), Image.NEAREST).save(folder / "square-large.png")
    index_more(built.data_dir, folder)
    return built


def show(page, threshold: str, status: str = "pending", per_page: str = "20") -> None:
    page.select_option("#status-input", status)
    page.fill("#threshold-input", threshold)
    page.fill("#per-page-input", per_page)
    page.click("#duplicates-button")
    page.wait_for_function("() => !document.body.classList.contains('busy')")


def test_groups_render_with_thumbnails_and_reconstructions(page, server, tmp_path):
    page.goto(server + "/duplicates")
    show(page, "0.9999")
    page.wait_for_selector(GROUPS)
    page.wait_for_function(ALL_RENDERED, arg="#groups img")
    first = page.locator(GROUPS).first
    assert "identical files" in first.locator(".group-title").text_content()
    assert first.locator(".member").count() == 3
    assert first.locator(".member.first .largest").is_visible()
    assert "×" in first.locator(".dimensions").first.text_content()
    assert "to review" in page.text_content("#duplicates-summary")
    page.screenshot(path=str(tmp_path / "duplicates.png"), full_page=True)
    assert page.watcher.problems == []


def test_keep_this_one_moves_a_group_to_reviewed_and_undo_brings_it_back(page, server):
    page.goto(server + "/duplicates")
    show(page, "0.9999")
    group = page.locator(GROUPS).first
    group_id = group.get_attribute("data-id")
    group.locator(".member").nth(1).locator(".keep").click()
    page.wait_for_function(f"() => !document.querySelector('{GROUPS}[data-id=\"{group_id}\"]')")
    show(page, "0.9999", status="reviewed")
    reviewed = page.locator(f'{GROUPS}[data-id="{group_id}"]')
    assert reviewed.locator(".member.first .kept").is_visible()
    assert "keep image" in reviewed.locator(".group-decision").text_content()
    page.wait_for_function(ALL_RENDERED, arg="#groups img")
    reviewed.locator(".undo").click()
    page.wait_for_function(f"() => !document.querySelector('{GROUPS}[data-id=\"{group_id}\"]')")
    show(page, "0.9999")
    assert page.locator(f'{GROUPS}[data-id="{group_id}"]').count() == 1
    assert page.watcher.problems == []


def test_groups_come_a_page_at_a_time(page, server):
    page.goto(server + "/duplicates")
    show(page, "0.9999", per_page="1")
    assert page.is_visible("#pager") and page.locator(GROUPS).count() == 1
    first = page.locator(GROUPS).first.get_attribute("data-id")
    page.click("#next-page")
    page.wait_for_function("() => document.getElementById('page-info').textContent"
                           ".startsWith('Page 2 of')")
    assert page.locator(GROUPS).first.get_attribute("data-id") != first
    page.wait_for_function(ALL_RENDERED, arg="#groups img")
    assert page.watcher.problems == []
