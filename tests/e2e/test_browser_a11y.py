"""Accessibility: axe-core (bundled with axe-playwright-python) scans every page once its
content is drawn, and finds no serious or critical violation."""
from __future__ import annotations

import pytest

from .conftest import ALL_RENDERED, needs_chromium

pytestmark = needs_chromium

SERIOUS = ("serious", "critical")
PAGES = {  # page → what shows once its script has drawn it
    "/search": "#drop-zone",
    "/library": "#library .tile",
    "/duplicates": "#duplicates-summary:not(:empty)",
    "/explore": "#sample-button",
    "/anomalies": "#anomalies-summary:not(:empty)",
    "/denoise": "#drop-zone",
    "/trash": "#trash-summary:not(:empty)",
    "/map": "#map-summary:not(:empty)",
}


@pytest.mark.parametrize("path", list(PAGES))
def test_no_serious_accessibility_violations(page, server, path):
    from axe_playwright_python.sync_playwright import Axe

    page.goto(server + path)
    page.wait_for_selector(PAGES[path])
    if page.query_selector("img[src]"):
        page.wait_for_function(ALL_RENDERED, arg="img[src]")
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
    assert serious == [], "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — "
        f"{[n['target'] for n in v['nodes']][:5]}" for v in serious)
    assert page.watcher.problems == []
