"""Shared helpers for the web tests: a small synthetic collection, a tiny model, an index.

Three visually distinct classes (squares, circles, stripes) in random
colours and positions, so a 2-epoch model on 32×32 inputs already ranks
same-class images together, and the whole setup takes a few seconds.
"""
from __future__ import annotations

import io
import os
import shutil
import struct
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image, ImageDraw

from indexer.encoder import TorchEncoder
from indexer.images import load_image
from indexer.job import index_folder
from indexer.model import AEConfig, save_checkpoint
from indexer.train import TrainConfig, fit
from search.store import Store

CLASSES = ("square", "circle", "stripes")
TINY_MODEL = AEConfig(image_size=32, latent_dim=16, widths=(16, 32))
TINY_TRAINING = TrainConfig(epochs=3, batch_size=16, patience=3, device="cpu", seed=0,
                            invariance=0)  # plain and quick: these tests are about the web
# A real file name that is also HTML: the page must show it as text.
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"


def draw(kind: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """One synthetic image of *kind*, in random colours and placement."""
    background = tuple(int(v) for v in rng.integers(0, 80, 3))
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    img = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(img)
    if kind == "square":
        s = int(rng.integers(size // 3, size // 2))
        x, y = (int(v) for v in rng.integers(2, size - s - 2, 2))
        d.rectangle([x, y, x + s, y + s], fill=colour)
    elif kind == "circle":
        r = int(rng.integers(size // 6, size // 4))
        cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        width = int(rng.integers(3, 6))
        offset = int(rng.integers(0, 2 * width))
        for x in range(offset - 2 * width, size, 2 * width):
            d.rectangle([x, 0, x + width - 1, size], fill=colour)
    return img


def write_collection(folder: Path, per_class: int = 20, seed: int = 0,
                     extra: dict[str, str] | None = None) -> dict[str, list[Path]]:
    """PNGs under FOLDER/<class>/; *extra* maps file name → class, written at the top."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {c: [] for c in CLASSES}
    for kind in CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / kind / f"{kind}-{seed}-{i:03d}.png"
            draw(kind, rng).save(path)
            written[kind].append(path)
    for name, kind in (extra or {}).items():
        path = folder / name
        draw(kind, rng).save(path)
        written[kind].append(path)
    return written


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def train_tiny(store: Store, folder: Path, config: AEConfig = TINY_MODEL) -> TorchEncoder:
    """Fit the tiny model on every image under *folder* and save it as the store's model."""
    paths = sorted(p for p in folder.rglob("*.png"))
    pixels = np.stack([load_image(p, config.image_size) for p in paths])
    model, facts = fit(pixels, config, TINY_TRAINING, progress=False)
    save_checkpoint(store.model_path, model, facts)
    return TorchEncoder.from_path(store.model_path, "cpu")


@dataclass
class Library:
    """A data dir with a trained model and an index over ``collection``."""

    data_dir: Path
    collection: Path
    files: dict[str, list[Path]]

    def all_files(self) -> list[Path]:
        return [p for paths in self.files.values() for p in paths]


def build_library(root: Path, per_class: int = 20, extra: dict[str, str] | None = None,
                  seed: int = 0, config: AEConfig = TINY_MODEL) -> Library:
    """Collection + model + index under *root*; a few seconds on two cores.

    *config* picks another tiny model, e.g. ``kind="dae"`` or ``"vae"``.
    """
    collection = root / "collection"
    files = write_collection(collection, per_class, seed, extra)
    store = Store.open(root / "data")
    encoder = train_tiny(store, collection, config)
    index_folder(store, collection, encoder, batch_size=64, workers=0, progress=False)
    return Library(root / "data", collection, files)


def index_more(data_dir: Path, folder: Path) -> dict:
    """Index *folder* into an existing data dir with its current model (as `lookalike index`);
    the run's summary."""
    store = Store.open(data_dir)
    encoder = TorchEncoder.from_path(store.model_path, "cpu")
    return index_folder(store, folder, encoder, batch_size=64, workers=0,
                        progress=False).as_dict()


def private_copy(library: "Library", root: Path) -> "Library":
    """A copy of *library* (collection + data dir, indexed with its model) that a test may change."""
    collection = root / "collection"
    shutil.copytree(library.collection, collection)
    data = root / "data"
    data.mkdir()
    shutil.copy(library.data_dir / "model.pt", data / "model.pt")
    index_more(data, collection)
    files = {kind: [collection / p.relative_to(library.collection) for p in paths]
             for kind, paths in library.files.items()}
    return Library(data, collection, files)


def png_claiming_pixels(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width×height (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    body = zlib.compress(row * 16)  # a few rows are enough: the guard trips at open
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def image_id(data_dir: Path, path: Path) -> int:
    """The catalog id of an indexed file."""
    from sqlalchemy import select

    from search.catalog import ImageRecord

    store = Store.open(data_dir)
    with store.sessions() as s:
        query = select(ImageRecord.id).where(ImageRecord.path == str(path.resolve()))
        return s.scalars(query).one()


CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def running_app(data_dir: Path) -> Iterator[str]:
    """The real app over HTTP on an ephemeral 127.0.0.1 port, in a background thread."""
    from werkzeug.serving import make_server

    from web import create_app

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LOOKALIKE_")}
    # threads 0: leave torch's process-wide thread count to the other test modules
    app = create_app({"LOOKALIKE_DATA_DIR": str(data_dir), "LOOKALIKE_INFERENCE_THREADS": 0})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        app.extensions["lookalike"].close()
        os.environ.update(saved)


@contextmanager
def headless_chromium():
    """Debian's Chromium under Playwright, headless, with no network chatter."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# -- fixtures shared by the web test modules (each imports the ones it uses) --------------------

@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Settings from the developer's shell must not leak into tests, and the apps here
    must not change torch's process-wide thread count under the other test modules."""
    for name in list(os.environ):
        if name.startswith("LOOKALIKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LOOKALIKE_INFERENCE_THREADS", "0")


@pytest.fixture(scope="module")
def server(library):
    """The app on the module's ``library``, served on 127.0.0.1 in a thread; its URL."""
    with running_app(library.data_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium
