"""What the web tests share: libraries (a data dir with a tiny trained model and an index over
a synthetic collection), apps over them through Flask's test client, and the helpers that
read the app's answers.

A library takes a few seconds on two cores: the default one (``library``) is built once
for the whole package; a module that needs another defines its own ``library``, and the
fixtures here (``app``, ``client``, ``own_library``, ...) then use that one.
"""
from __future__ import annotations

import base64
import io
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select

from indexer.encoding import LocalEncoding, TorchEncoder
from indexer.job import index_folder
from indexer.model import AEConfig
from search.catalog import ImageRecord
from search.store import Store
from web.admin import app_jobs
from web.app import create_app

from ..conftest import QUICK_TRAIN, TINY, make_model
from ..synthetic import SHAPES, make_collection

# A real file name that is also HTML: the page must show it as text.
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"
MB = 1024 * 1024


# -- libraries ---------------------------------------------------------------------------------

def train_tiny(store: Store, folder: Path, config: AEConfig = TINY) -> TorchEncoder:
    """Fit the tiny model on every image under *folder* and save it as the store's model."""
    make_model(store.model_path, folder, config=config, recipe=QUICK_TRAIN)
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
                  seed: int = 0, config: AEConfig = TINY) -> Library:
    """Collection + model + index under *root*; a few seconds on two cores.

    *config* picks another tiny model, e.g. ``kind="dae"`` or ``"vae"``.
    """
    collection = root / "collection"
    files = make_collection(collection, per_class, seed=seed, classes=SHAPES, extra=extra)
    store = Store.open(root / "data")
    encoder = train_tiny(store, collection, config)
    index_folder(store, collection, encoder, progress=False,
                 encoding=LocalEncoding(encoder, batch_size=64, workers=0))
    store.close()
    return Library(root / "data", collection, files)


def index_more(data_dir: Path, folder: Path) -> dict:
    """Index *folder* into an existing data dir with its current model (as `lookalike index`);
    the run's summary."""
    store = Store.open(data_dir)
    encoder = TorchEncoder.from_path(store.model_path, "cpu")
    summary = index_folder(store, folder, encoder, encoding=LocalEncoding(encoder, 64, 0),
                           progress=False).as_dict()
    store.close()
    return summary


def private_copy(library: Library, root: Path) -> Library:
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


def row_for(data_dir: Path, path: Path) -> ImageRecord:
    """The catalog row of an indexed file."""
    store = Store.open(data_dir)
    with store.sessions() as s:
        row = s.scalars(select(ImageRecord).where(ImageRecord.path == str(path.resolve()))).one()
    store.close()
    return row


def image_id(data_dir: Path, path: Path) -> int:
    """The catalog id of an indexed file."""
    return row_for(data_dir, path).id


def catalog_errors(data_dir: Path) -> dict[int, float]:
    """Every catalog id and its stored reconstruction error."""
    store = Store.open(data_dir)
    with store.sessions() as s:
        errors = dict(s.execute(select(ImageRecord.id, ImageRecord.reconstruction_error)).all())
    store.close()
    return errors


@pytest.fixture(scope="package")
def library(tmp_path_factory) -> Library:
    """The default library: 20 images of each shape, and one with an HTML file name."""
    return build_library(tmp_path_factory.mktemp("web"), extra={HOSTILE_NAME: "circle"})


@pytest.fixture
def own_library(tmp_path, library) -> Library:
    """A private copy (collection + data dir) for tests that change files or the index."""
    return private_copy(library, tmp_path)


# -- apps (flaskr style: library → app → client) -----------------------------------------------

def make_app(data_dir: Path, **settings) -> Flask:
    """The app over *data_dir*, in testing mode; *settings* override the rest."""
    return create_app({"TESTING": True, "LOOKALIKE_DATA_DIR": str(data_dir), **settings})


def close_app(app: Flask, wait: float = 120.0) -> None:
    """Let its re-index jobs end (they must not outlive their data dir), then close it."""
    for job in app_jobs(app).all():
        assert job.done.wait(wait), f"re-index job {job.id} never ended"
    app.extensions["lookalike"].close()


@pytest.fixture
def apps():
    """``apps(data_dir, **settings)`` makes an app; each is closed after the test."""
    made: list[Flask] = []

    def app_for(data_dir: Path, **settings) -> Flask:
        made.append(make_app(data_dir, **settings))
        return made[-1]

    yield app_for
    for app in made:
        close_app(app)


@pytest.fixture
def app(library):
    app = make_app(library.data_dir)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def own_client(apps, own_library):
    return apps(own_library.data_dir).test_client()


# -- requests and answers -----------------------------------------------------------------------

def upload(client, data: bytes, name: str = "query.png", mimetype: str | None = None,
           url: str = "/api/search", **fields):
    """POST *data* as the multipart ``image`` field (and *fields*) to *url*."""
    file = (io.BytesIO(data), name, mimetype) if mimetype else (io.BytesIO(data), name)
    return client.post(url, data={"image": file, **fields}, content_type="multipart/form-data")


def ok_json(client, url: str, **params) -> dict:
    """GET *url* with *params* as its query string; the JSON of its 200 answer."""
    answer = client.get(url, query_string=params)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def assert_error(response, status: int, code: str) -> str:
    """The response is the API's JSON error *code* with *status*; its message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def pixels_of(data: bytes) -> np.ndarray:
    """The RGB pixels of an encoded image."""
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def data_url_pixels(url: str) -> np.ndarray:
    """The RGB pixels of a ``data:image/png;base64,...`` URL."""
    assert url.startswith("data:image/png;base64,")
    return pixels_of(base64.b64decode(url.split(",", 1)[1]))


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one level of 8-bit rounding (float sums in another order)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def encoder_of(data_dir: Path) -> TorchEncoder:
    """The data dir's model, loaded as the app loads it."""
    return TorchEncoder.from_path(data_dir / "model.pt", "cpu")


# -- the model-as-a-tool endpoints: a denoising and a variational library ----------------------

TOOLS_PER_CLASS = 12  # 36 images: enough for a PQ codebook (32), small enough to train in seconds


def tools_library(root: Path, kind: str) -> Library:
    """A library of model *kind*, plus one image unlike the rest (all have dark backgrounds),
    indexed with the same model: ``files["odd"]``."""
    library = build_library(root, per_class=TOOLS_PER_CLASS, config=replace(TINY, kind=kind))
    odd = root / "odd"
    odd.mkdir()
    Image.new("RGB", (48, 48), (255, 255, 255)).save(odd / "white.png")
    index_more(library.data_dir, odd)
    library.files["odd"] = [odd / "white.png"]
    return library


@pytest.fixture(scope="package")
def dae(tmp_path_factory) -> Library:
    """A denoising autoencoder's library: what /api/denoise is made for."""
    return tools_library(tmp_path_factory.mktemp("dae"), "dae")


@pytest.fixture(scope="package")
def vae(tmp_path_factory) -> Library:
    """A variational autoencoder's library: what /api/explore/sample is made for."""
    return tools_library(tmp_path_factory.mktemp("vae"), "vae")


@pytest.fixture
def dae_client(apps, dae):
    return apps(dae.data_dir).test_client()


@pytest.fixture
def vae_client(apps, vae):
    return apps(vae.data_dir).test_client()


@pytest.fixture
def own_dae(tmp_path, dae, copy_data_dir) -> Path:
    """A private copy of the dae data dir (catalog, index, model), for tests that write to it."""
    data = tmp_path / "data"
    copy_data_dir(dae.data_dir, data)
    for stale in data.glob("pq-*.faiss"):
        stale.unlink()
    return data


@pytest.fixture
def model_only(tmp_path, dae) -> Path:
    """A data dir with the dae model and nothing indexed."""
    data = tmp_path / "model-only"
    data.mkdir()
    shutil.copy(dae.data_dir / "model.pt", data / "model.pt")
    return data


# -- hostile input (tests/web/test_fuzz.py, test_body_limits.py) ---------------------------------

LIMIT = 512 * 1024  # the fuzzed apps' MAX_CONTENT_LENGTH; one app uses a far smaller one
SMALL_LIMIT = 4096


@pytest.fixture(scope="module")
def process_state():
    """No LOOKALIKE_* setting from the shell; torch's and FAISS's thread counts restored after.

    The fuzzed apps use one inference thread (ten times faster on a busy
    two-core box than torch's default), which is process-wide state; and
    they live for a whole module, so the function-scoped
    ``clean_environment`` comes too late for them.
    """
    import faiss
    import torch

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LOOKALIKE_")}
    threads, omp = torch.get_num_threads(), faiss.omp_get_max_threads()
    yield
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(omp)
    os.environ.update(saved)


def fuzzed_app(library: Library, **settings) -> Flask:
    """An app as the fuzz tests use it: the module's library, LIMIT, one inference thread."""
    return make_app(library.data_dir, **{"LOOKALIKE_INFERENCE_THREADS": 1,
                                         "MAX_CONTENT_LENGTH": LIMIT, **settings})


@pytest.fixture(scope="module")
def fuzz_client(process_state, library):
    """A client of :func:`fuzzed_app`, for the whole module."""
    app = fuzzed_app(library)
    yield app.test_client()
    close_app(app)


@pytest.fixture(scope="module")
def small_client(process_state, library):
    """As ``fuzz_client``, with an upload limit of SMALL_LIMIT."""
    app = fuzzed_app(library, MAX_CONTENT_LENGTH=SMALL_LIMIT)
    yield app.test_client()
    close_app(app)


@pytest.fixture(scope="module")
def catalog_ids(library) -> list[int]:
    """The library's catalog ids, sorted."""
    store = Store.open(library.data_dir)
    ids = sorted(store.catalog_ids())
    store.close()
    return ids
