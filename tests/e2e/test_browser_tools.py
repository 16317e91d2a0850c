"""The denoise, explore and anomalies pages in a real browser (Debian's Chromium, headless).

Same setup as tests/e2e/test_browser.py: the app on 127.0.0.1 in a thread,
and a watcher that fails the test on page errors, dialogs or any request
that leaves 127.0.0.1.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from ..conftest import TINY
from ..web.conftest import Library, build_library
from .conftest import ALL_RENDERED, DROP_FILE, PASTE_FILE, RENDERED, needs_chromium

pytestmark = needs_chromium

@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("browser-apps"), per_class=12,
                         config=replace(TINY, kind="dae"))


def test_denoise_and_compress_an_upload(page, server, library, tmp_path):
    page.goto(server + "/denoise")
    page.set_input_files("#file-input", str(library.files["circle"][0]))
    page.wait_for_function(RENDERED, arg="#denoised-image")
    page.wait_for_function(RENDERED, arg="#noisy-image")
    assert page.is_visible("#clean-figure")  # σ 0.2 by default: the clean upload shows too
    assert page.text_content("#psnr-denoised").endswith(" dB")
    page.wait_for_function(RENDERED, arg="#decoded-image")  # the compress section ran too
    assert "float16" in page.text_content("#code-bytes")
    assert page.get_attribute("#code-download", "href").startswith("blob:")
    page.screenshot(path=str(tmp_path / "denoise.png"), full_page=True)
    assert (tmp_path / "denoise.png").stat().st_size > 0
    assert page.watcher.problems == []


def test_denoise_takes_dropped_and_pasted_images(page, server):
    """The drop and paste wiring is the search page's (common.js); here it feeds the tools."""
    page.goto(server + "/denoise")
    page.evaluate(DROP_FILE, [server + "/images/1/original", "dropped.png"])
    page.wait_for_function(RENDERED, arg="#denoised-image")
    first = page.get_attribute("#denoised-image", "src")
    page.evaluate(PASTE_FILE, [server + "/images/2/original", "pasted.png"])
    page.wait_for_function("src => { const i = document.getElementById('denoised-image'); "
                           "return i.src !== src && i.complete && i.naturalWidth > 0; }", arg=first)
    page.wait_for_function(RENDERED, arg="#decoded-image")  # the compress section ran too
    assert page.watcher.problems == []


def test_explore_sample_and_interpolate(page, server, tmp_path):
    page.goto(server + "/explore")
    page.click("#sample-button")
    page.wait_for_function(ALL_RENDERED, arg="#sample-strip img")
    assert page.eval_on_selector_all("#sample-strip img", "imgs => imgs.length") == 8
    assert page.text_content("#sample-info").startswith("Seed ")
    page.click("#interpolate-button")  # ids are prefilled from the collection
    page.wait_for_function(ALL_RENDERED, arg="#interpolate-strip img")
    page.click("#arithmetic-button")
    page.wait_for_function(ALL_RENDERED, arg="#arithmetic-result img")
    page.wait_for_function(ALL_RENDERED, arg="#arithmetic-hits img")
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
    assert (tmp_path / "explore.png").stat().st_size > 0
    assert page.watcher.problems == []


def test_anomalies_grid(page, server, tmp_path):
    page.goto(server + "/anomalies")
    page.fill("#top-input", "4")
    page.click("#anomalies-button")
    page.wait_for_function("() => document.querySelectorAll('#anomalies .card').length === 4")
    page.wait_for_function(ALL_RENDERED, arg="#anomalies img")
    href = page.get_attribute("#anomalies .card a", "href")
    assert href.startswith("search?similar=")
    page.screenshot(path=str(tmp_path / "anomalies.png"), full_page=True)
    assert page.watcher.problems == []


def test_explore_by_clicking(page, server, library, tmp_path):
    """A and B picked from the library (no typed ids), then interpolated; C arrives from the
    library's lightbox ("use as C")."""
    page.goto(server + "/explore")
    picked = {}
    for slot, nth in (("interp-a", 2), ("interp-b", 20)):
        page.click(f'button.pick[data-for="{slot}"]')
        page.wait_for_function("() => document.querySelectorAll('#picker-grid img').length > 0")
        page.wait_for_function(ALL_RENDERED, arg="#picker-grid img")
        chosen = page.get_attribute(f"#picker-grid .tile-open >> nth={nth}", "data-id")
        page.click(f"#picker-grid .tile-open >> nth={nth}")
        page.wait_for_function("() => !document.getElementById('picker').open")
        assert page.input_value(f"#{slot}") == chosen
        picked[slot] = chosen
        page.wait_for_function(RENDERED, arg=f'img.id-thumb[data-for="{slot}"]')
    page.click("#interpolate-button")
    page.wait_for_function(ALL_RENDERED, arg="#interpolate-strip img")
    page.screenshot(path=str(tmp_path / "explore-picked.png"), full_page=True)
    page.goto(server + "/library")
    page.click("#library .tile-open >> nth=4")
    page.wait_for_function("() => document.getElementById('lightbox').open")
    page.click("#use-c")
    page.wait_for_url("**/explore?c=*")
    wanted = page.url.rsplit("=", 1)[1]
    assert page.input_value("#arith-c") == wanted
    assert {s: page.input_value(f"#{s}") for s in picked} == picked  # kept for the tab
    assert page.watcher.problems == []
