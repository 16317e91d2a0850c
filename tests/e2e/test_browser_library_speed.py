"""How long the library page takes to show 200 tiles from a warm server, in the browser.
Printed (run with -s) and recorded in BENCHMARKS.md; not asserted: the box is shared."""
from __future__ import annotations

import pytest

from ..web.conftest import Library, build_library
from .conftest import needs_chromium

pytestmark = needs_chromium

RENDERED_200 = """() => {
  const imgs = [...document.querySelectorAll('#library .tile img')];
  return imgs.length >= 200 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("browser-library-speed"), per_class=70)


def test_200_tiles_render(page, server):
    page.set_viewport_size({"width": 1600, "height": 4000})  # every lazy thumbnail in view
    page.goto(server + "/library")  # warm: thumbnails made, catalog read once
    page.wait_for_function(RENDERED_200, timeout=60_000)
    times = []
    for _ in range(3):
        page.reload()
        page.wait_for_function(RENDERED_200, timeout=60_000)
        times.append(page.evaluate("() => performance.now()"))
    print(f"\nlibrary page, 200 tiles rendered: {', '.join(f'{t:.0f}' for t in times)} ms "
          "after navigation start (warm server)")
    assert page.locator("#library .tile").count() == 200
    assert page.watcher.problems == []
