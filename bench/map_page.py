"""The /map page at 100,000 images: the layout's time in the real index run, the page's
first paint from a warm server, and its memory, in a real browser.

Makes (or reuses) a collection under ``bench/out/map/``: the 70,000 Fashion-MNIST images
(``apt-get install dataset-fashion-mnist``) and their mirror images, up to ``--n``, as
PNGs in one folder per class; trains a small model on 2,000 of them (``lookalike train``,
``--budget`` steps); indexes the whole collection with the real CLI (``lookalike index``);
then, in this process:

* layout: ``search.map.fit`` of every code, timed, for UMAP (the default) and PCA;
* page: the app served on 127.0.0.1 in a thread, ``/map`` loaded in Debian's headless
  Chromium once to warm it (until the app's background UMAP fit is drawn: "the very
  first load"), then ``--reloads`` times, each timed from navigation start
  until the points are drawn (``#map-view[data-visible]``); then zoomed in until
  thumbnails show, timed until each has decoded;
* memory: the page's JS heap (``performance.memory``) and the renderer process's RSS;
* transfer: ``GET /api/map`` packed (what the page asks for) vs plain JSON columns,
  fetched and parsed in the page.

Printed, not asserted (the box is shared).

    python -m bench.map_page [--n 100000] [--budget 300] [--reloads 3] [--json]

Targets (issue #27): at 100k, layout ≤ 60 s on 2 cores, first paint ≤ 2 s (warm server),
the page's memory ≤ 500 MB.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from search.map import fit
from search.store import Store
from tests.e2e.conftest import CHROMIUM, Watcher, headless_chromium, running_app

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "map"
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "boot"]
DRAWN = "() => document.getElementById('map-view').dataset.visible !== undefined"
TILES_DECODED = """() => {
  const imgs = [...document.querySelectorAll('#map-tiles img')];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
FETCH_BOTH = """async () => {
  const timed = async (url) => {
    const t = performance.now();
    const body = await (await fetch(url)).json();
    return [performance.now() - t, body.count];
  };
  return { packed: await timed('api/map?packed=true'), plain: await timed('api/map') };
}"""


def idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def make_collection(n: int) -> Path:
    """Fashion-MNIST (train, then test), then the same mirrored, up to n: one PNG each."""
    folder = OUT / f"fashion-{n}"
    if (folder / ".complete").exists():
        return folder
    images = np.concatenate([idx(FASHION / "train-images-idx3-ubyte.gz"),
                             idx(FASHION / "t10k-images-idx3-ubyte.gz")])
    labels = np.concatenate([idx(FASHION / "train-labels-idx1-ubyte.gz"),
                             idx(FASHION / "t10k-labels-idx1-ubyte.gz")])
    images = np.concatenate([images, images[:, :, ::-1]])[:n]
    labels = np.concatenate([labels, labels])[:n]
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        Image.fromarray(pixels).save(folder / CLASSES[label] / f"{i:06d}.png")
    (folder / ".complete").touch()
    return folder


def cli(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "web.cli", *args], check=True, cwd=REPO)
    return time.perf_counter() - started


def prepare(n: int, budget: int) -> tuple[Path, dict]:
    collection = make_collection(n)
    data_dir = OUT / f"data-{n}"
    figures: dict = {"images": n}
    if not (data_dir / "catalog.sqlite").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        subset = OUT / "train-subset"
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir(parents=True)
        for path in sorted(collection.rglob("*.png"))[::max(1, n // 2000)]:
            os.link(path, subset / f"{path.parent.name}-{path.name}")
        figures["train_seconds"] = round(cli("--data-dir", str(data_dir), "-q", "train",
                                             str(subset), "--budget", str(budget)), 1)
        figures["index_seconds"] = round(cli("--data-dir", str(data_dir), "index",
                                             str(collection)), 1)
    return data_dir, figures


def layout_seconds(data_dir: Path) -> dict:
    store = Store.open(data_dir)
    try:
        sha = store.index_model()
        ids = np.array(sorted(store.catalog_ids()), np.int64)
        found = store.codes_of(ids.tolist(), sha)
        codes = np.stack([found[int(i)] for i in ids])
    finally:
        store.close()
    times = {}
    for method in ("umap", "pca"):
        started = time.perf_counter()
        fit(ids, codes, sha, 0, method)
        times[method] = round(time.perf_counter() - started, 2)
    return times


def renderer_rss_mib() -> float:
    """The largest Chromium renderer's resident memory: the page's process."""
    most = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"--type=renderer" not in cmdline:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    most = max(most, int(line.split()[1]))
        except OSError:
            continue
    return round(most / 1024, 1)


def page_figures(data_dir: Path, reloads: int) -> dict:
    with running_app(data_dir) as url, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        watcher = Watcher(page, url)
        started = time.perf_counter()
        page.goto(url + "/map")  # warm: the UMAP layout fitted (in the background; PCA's
        # map meanwhile) or read, the facts cached by the database
        page.wait_for_function(
            "() => document.getElementById('map-summary').textContent.includes('by UMAP')",
            timeout=600_000)
        cold = time.perf_counter() - started
        paints = []
        for _ in range(reloads):
            page.reload()
            page.wait_for_function(DRAWN, timeout=120_000)
            paints.append(round(page.evaluate("() => performance.now()")))
        summary = page.text_content("#map-summary")
        heap = page.evaluate("() => performance.memory.usedJSHeapSize") / 2**20
        rss = renderer_rss_mib()
        page.focus("#map-view")
        started = time.perf_counter()
        while not page.locator("#map-tiles .map-tile").count():
            page.keyboard.press("+")
        page.wait_for_function(TILES_DECODED, timeout=120_000)
        zoom_ms = round((time.perf_counter() - started) * 1000)
        tiles = page.locator("#map-tiles .map-tile").count()
        fetched = page.evaluate(FETCH_BOTH)
        rss_after = renderer_rss_mib()
        context.close()
    return {"first_load_seconds": round(cold, 1), "first_paint_ms": paints,
            "summary": summary, "js_heap_mib": round(heap, 1),
            "renderer_rss_mib": [rss, rss_after], "zoom_to_thumbnails_ms": zoom_ms,
            "thumbnails": tiles,
            "api_map_ms": {k: round(v[0]) for k, v in fetched.items()},
            "problems": watcher.problems}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.map_page", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="images (at most 140,000)")
    ap.add_argument("--budget", type=int, default=300, help="training steps of the model")
    ap.add_argument("--reloads", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for needed, how in ((CHROMIUM, "apt-get install chromium"),
                        (FASHION, "apt-get install dataset-fashion-mnist")):
        if not needed.exists():
            print(f"no {needed} ({how})", file=sys.stderr)
            return 2
    data_dir, figures = prepare(args.n, args.budget)
    figures["layout_seconds"] = layout_seconds(data_dir)
    figures["page"] = page_figures(data_dir, args.reloads)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    page = figures["page"]
    print(f"{args.n:,} images; layout: UMAP {figures['layout_seconds']['umap']} s, "
          f"PCA {figures['layout_seconds']['pca']} s (target ≤ 60 s)")
    print(f"/map first paint, warm server: {page['first_paint_ms']} ms (target ≤ 2000); "
          f"the very first load {page['first_load_seconds']} s")
    print(f"memory: JS heap {page['js_heap_mib']} MiB, renderer RSS {page['renderer_rss_mib']} "
          "MiB (after load, after zooming; target ≤ 500)")
    print(f"zoom to {page['thumbnails']} thumbnails: {page['zoom_to_thumbnails_ms']} ms; "
          f"GET /api/map fetched and parsed: {page['api_map_ms']}")
    for key in ("train_seconds", "index_seconds"):
        if key in figures:
            print(f"{key}: {figures[key]}")
    if page["problems"]:
        print("problems:", page["problems"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
