"""Acting on copies in a real browser (Debian's Chromium, headless): a rule previewed then
applied to every pending group, the other copies moved to the trash, the Trash view showing
them, one restored; every image on the way rendered."""
from __future__ import annotations

from pathlib import Path

import pytest

from ..web.conftest import Library
from .conftest import ALL_RENDERED, needs_chromium, running_app, with_copies

pytestmark = needs_chromium

TOKEN = "browser-admin-token"
GROUPS = "#groups .group"
IDLE = "() => !document.body.classList.contains('busy')"


@pytest.fixture(scope="module")
def library(library, tmp_path_factory) -> Library:
    """The shared library's copy with copies in it: these tests move files."""
    return with_copies(library, tmp_path_factory.mktemp("browser-trash"))


@pytest.fixture(scope="module")
def server(library):
    with running_app(library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN) as url:
        yield url


def show(page, threshold: str = "0.9999", status: str = "pending") -> None:
    page.select_option("#status-input", status)
    page.fill("#threshold-input", threshold)
    page.click("#duplicates-button")
    page.wait_for_function(IDLE)


def in_trash(collection: Path) -> list[Path]:
    trash = collection / ".lookalike-trash"
    return sorted(trash.iterdir()) if trash.exists() else []


def test_a_rule_then_the_trash_then_a_restore(page, server, library, tmp_path):
    page.goto(server + "/duplicates")
    page.fill("#admin-token-input", TOKEN)
    show(page)
    pending = page.locator(GROUPS).count()
    assert pending == 2

    page.select_option("#rule-input", "format")
    assert page.is_visible("#rule-arg")
    page.select_option("#rule-input", "pixels")
    assert not page.is_visible("#rule-arg")
    page.click("#preview-button")
    page.wait_for_selector("#rule-preview:not([hidden])")
    page.wait_for_function(ALL_RENDERED, arg="#rule-plans img")
    assert page.locator("#rule-plans .plan").count() == pending
    assert "2 group(s)" in page.text_content("#rule-summary")
    assert "3 other copies" in page.text_content("#rule-summary")
    assert in_trash(library.collection) == []  # a preview moves nothing
    page.screenshot(path=str(tmp_path / "rule-preview.png"), full_page=True)

    page.check("#rule-trash")
    page.click("#apply-button")
    page.wait_for_function("() => document.getElementById('duplicates-summary').textContent"
                           ".includes('moved to the trash')")
    assert "2 decision(s) recorded. 3 copies moved" in page.text_content("#duplicates-summary")
    assert len(in_trash(library.collection)) == 3
    assert page.locator(GROUPS).count() == 0

    page.click("nav >> text=Trash")
    page.wait_for_selector("#trash .trashed")
    page.wait_for_function(ALL_RENDERED, arg="#trash img")
    assert page.locator("#trash .trashed").count() == 3
    assert "3 image(s) in the trash" in page.text_content("#trash-summary")
    page.screenshot(path=str(tmp_path / "trash.png"), full_page=True)
    first = page.locator("#trash .trashed").first
    was = Path(first.locator(".was").text_content())
    assert not was.exists()
    first.locator(".restore").click()
    page.wait_for_function("() => document.querySelectorAll('#trash .trashed').length === 2")
    assert "Restored" in page.text_content("#trash-summary")
    assert was.exists() and len(in_trash(library.collection)) == 2
    page.wait_for_function(ALL_RENDERED, arg="#trash img")
    assert page.watcher.problems == []


def test_moving_files_needs_the_token_and_a_group_can_go_alone(page, server, library):
    restored = page.context.request.post(f"{server}/api/trash/restore", headers={
        "Authorization": f"Bearer {TOKEN}"}, data={"images": [
            int(p.name.split("-")[1]) for p in in_trash(library.collection)]})
    assert restored.ok
    page.goto(server + "/duplicates")
    show(page, status="reviewed")
    assert page.locator(GROUPS).count() >= 1
    group = page.locator(GROUPS).first
    group.locator(".trash-others").click()  # no token typed yet
    page.wait_for_function(IDLE)
    assert "admin token" in page.text_content("#message")
    assert in_trash(library.collection) == []

    page.fill("#admin-token-input", TOKEN)
    group.locator(".trash-others").click()
    page.wait_for_function("() => document.getElementById('duplicates-summary').textContent"
                           ".includes('moved to the trash')")
    moved = len(in_trash(library.collection))
    assert moved >= 1

    page.watcher.confirms.append("Move 1 copies from 1 reviewed group(s) to the trash?")
    page.click("#trash-reviewed")
    page.wait_for_function(IDLE)
    assert "1 copies moved to the trash" in page.text_content("#duplicates-summary")
    assert len(in_trash(library.collection)) == 3
    assert page.watcher.confirms == [] and page.watcher.problems == []
