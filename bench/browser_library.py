"""How long the library page takes to show 200 tiles from a warm server, in a real browser.

Builds a library of 210 synthetic images (the web tests' kind: a tiny model trained on
them, the index), serves it on 127.0.0.1 in a thread, and loads ``/library`` in Debian's
headless Chromium under Playwright (as tests/e2e does): once to warm the server (thumbnails
made, catalog read), then ``--reloads`` times, each timed from navigation start until
all 200 thumbnails have decoded (``naturalWidth > 0``). Polling adds a frame or so, so
the figures are upper bounds. Printed, not asserted: the box is shared. That the page
holds 200 tiles is a test: tests/e2e/test_browser_library.py.

    python -m bench.browser_library [--per-class 70] [--reloads 3] [--json]

Target (issue #14): ≤ 1 s from a warm server.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from tests.e2e.conftest import CHROMIUM, Watcher, headless_chromium, running_app
from tests.web.conftest import build_library

RENDERED_200 = """() => {
  const imgs = [...document.querySelectorAll('#library .tile img')];
  return imgs.length >= 200 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def measure(data_dir: Path, reloads: int) -> dict:
    """Milliseconds from navigation start to 200 decoded tiles, warm, for each reload."""
    with running_app(data_dir) as url, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1600, "height": 4000})  # all in view
        page = context.new_page()
        watcher = Watcher(page, url)
        page.goto(url + "/library")  # warm: thumbnails made, catalog read once
        page.wait_for_function(RENDERED_200, timeout=60_000)
        times = []
        for _ in range(reloads):
            page.reload()
            page.wait_for_function(RENDERED_200, timeout=60_000)
            times.append(page.evaluate("() => performance.now()"))
        tiles = page.locator("#library .tile").count()
        context.close()
    return {"tiles": tiles, "ms": [round(t) for t in times], "problems": watcher.problems}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.browser_library", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=70, help="images of each of 3 shapes")
    ap.add_argument("--reloads", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per thumbnail
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-browser-library-") as root:
        library = build_library(Path(root), per_class=args.per_class)
        result = {"images": len(library.all_files()), **measure(library.data_dir, args.reloads)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"library page, {result['tiles']} tiles of {result['images']} images rendered: "
              f"{', '.join(map(str, result['ms']))} ms after navigation start (warm server)")
        for problem in result["problems"]:
            print(f"page problem: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
