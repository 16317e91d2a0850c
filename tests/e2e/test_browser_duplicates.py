"""The /duplicates page in a real browser (Debian's Chromium, headless): groups drawn with
every thumbnail and reconstruction rendered, decisions taken and undone, pages turned."""
from __future__ import annotations

import pytest

from ..web.conftest import Library
from .conftest import ALL_RENDERED, needs_chromium, with_copies

pytestmark = needs_chromium

GROUPS = "#groups .group"


@pytest.fixture(scope="module")
def library(library, tmp_path_factory) -> Library:
    """The shared library's copy with copies in it: these tests take decisions."""
    return with_copies(library, tmp_path_factory.mktemp("browser-duplicates"),
                       larger_square=True)


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


def transforms(page) -> list[str]:
    return page.eval_on_selector_all("#compare img", "imgs => imgs.map(i => i.style.transform)")


def scale_of(transform: str) -> float:
    return float(transform.rsplit("scale(", 1)[1].rstrip(")"))


def test_compare_shows_two_copies_and_zooms_and_pans_them_together(page, server, tmp_path):
    page.goto(server + "/duplicates")
    show(page, "0.9999")
    group = page.locator(GROUPS).first
    assert not group.locator(".member").first.locator(".compare").is_visible()
    group.locator(".member").nth(1).locator(".compare").click()
    page.wait_for_selector("#compare[open]")
    page.wait_for_function(ALL_RENDERED, arg="#compare img")
    page.wait_for_function("() => [...document.querySelectorAll('#compare img')]"
                           ".every(i => i.style.transform)")
    fitted = transforms(page)
    assert fitted[0] == fitted[1]  # the same size of copy: the very same placement
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.text_content("#zoom-level") == "156 %"
    zoomed = transforms(page)
    assert zoomed[0] == zoomed[1]
    assert scale_of(zoomed[0]) == pytest.approx(1.5625 * scale_of(fitted[0]))
    page.keyboard.press("ArrowLeft")
    panned = transforms(page)
    assert panned[0] == panned[1] != zoomed[0]
    page.screenshot(path=str(tmp_path / "compare.png"))

    page.check('input[name="compare-mode"][value="overlay"]')
    assert page.is_visible("#overlay-slider")
    page.fill("#overlay-slider", "30")
    page.screenshot(path=str(tmp_path / "overlay.png"))
    assert page.eval_on_selector("#compare-panes .second .viewport", "v => v.style.clipPath") \
        == "inset(0px 0px 0px 30%)"
    page.click("#zoom-fit")
    overlaid = transforms(page)  # one viewport, wider than each of two: its own fit
    assert page.text_content("#zoom-level") == "fit" and overlaid[0] == overlaid[1]
    page.keyboard.press("Escape")
    page.wait_for_selector("#compare", state="hidden")
    assert page.watcher.problems == []
