"""What every room's tests share: a clean environment, the synthetic collection, the one tiny
model architecture and the one way to make a model of it (:func:`make_model`: trained or
not), a tiny model trained on the collection once per session, and data dirs set up through
the library (:func:`index_into`), never through a front end.

Layout: ``tests/search``, ``tests/indexer`` and ``tests/web`` test one room each (their
``conftest.py`` holds what that room's tests share); ``tests/cli`` tests the command line
(``invoke``/``run`` are in its conftest); ``tests/e2e`` starts the real ``lookalike``
script or a real browser. The synthetic images are in ``tests/synthetic.py``.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

import search.settings
import search.store
from indexer.encoding import LocalEncoding, TorchEncoder
from indexer.images import load_image
from indexer.job import index_folder
from indexer.model import AEConfig, build_model, save_checkpoint
from indexer.train import TrainConfig, fit
from search.catalog import ImageRecord
from search.store import Store

from .postgres import Databases, server_binary, start_cluster
from .synthetic import make_collection

# The one tiny architecture every test model uses unless a test is about the architecture.
TINY = AEConfig(image_size=32, widths=(16, 32, 64), latent_dim=16)
# The session's trained model, in the plain recipe (λ = 0): the tests that use it are about
# search, storage and the model family, and a plain tiny model trains in seconds;
# tests/indexer/test_invariance.py covers the default recipe. 80 epochs, because
# tests/cli/test_search.py checks that it ranks same-class images first.
TINY_TRAIN = TrainConfig(epochs=80, batch_size=16, lr=3e-3, patience=80, seed=0, device="cpu",
                         invariance=0)
# The web's libraries (tests/web/conftest.py): 3 epochs, because those tests check that the
# app does what its model says, not how good the model is, and several modules build one.
QUICK_TRAIN = TrainConfig(epochs=3, batch_size=16, patience=3, seed=0, device="cpu",
                          invariance=0)

# The installed console script, next to this interpreter (pip install -e .).
LOOKALIKE = Path(sys.executable).with_name("lookalike")


# -- the catalog's database: SQLite files, or a PostgreSQL server (tests/postgres.py) -----------

def pytest_addoption(parser):
    parser.addoption("--catalog", choices=("sqlite", "postgresql"), default="sqlite",
                     help="where data dirs keep their catalog: catalog.sqlite (default), or "
                          "one database each on a throwaway PostgreSQL server")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself, or runs a process "
                                       "that is not told the catalog: not in the PostgreSQL pass")
    config.addinivalue_line("markers", "any_catalog: does not depend on the catalog's "
                                       "database (never opens one, or only through code "
                                       "tested on both): not in the PostgreSQL pass")
    config.addinivalue_line("markers", "postgresql_only: about the PostgreSQL catalog: only "
                                       "in its pass")


def on_postgres(config) -> bool:
    return config.getoption("--catalog") == "postgresql"


def pytest_collection_modifyitems(config, items):
    """The PostgreSQL pass leaves out what the SQLite pass alone can test, and is skipped,
    saying why, where no server can be had."""
    left_out = ("sqlite_only", "any_catalog") if on_postgres(config) else ("postgresql_only",)
    kept = [i for i in items if not any(i.get_closest_marker(m) for m in left_out)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    if on_postgres(config) and not os.environ.get("LOOKALIKE_TEST_POSTGRES") and server_binary("initdb") is None:
        skip = pytest.mark.skip(reason="PostgreSQL is not installed (apt-get install postgresql)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def catalog_server(request):
    """On the PostgreSQL pass: every data dir's default catalog is its own database there.

    Session-wide, so the module-scoped libraries the web tests build get one too.
    """
    if not on_postgres(request.config):
        yield None
        return
    url, cluster = os.environ.get("LOOKALIKE_TEST_POSTGRES"), None
    if not url:
        cluster = start_cluster()
        url = cluster.url
    databases = Databases(url)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(search.store, "database_url", databases.url)
            patch.setattr(search.settings, "database_url", databases.url)
            yield databases
    finally:
        databases.close(drop=cluster is None)
        if cluster is not None:
            cluster.stop()


@pytest.fixture
def catalog_url(tmp_path, catalog_server) -> str:
    """A fresh catalog's URL, in this pass's database: a file, or a server's new database."""
    if catalog_server is None:
        return f"sqlite:///{tmp_path / 'c.sqlite'}"
    return catalog_server.url(tmp_path / "c")


@pytest.fixture
def child_environment(catalog_server):
    """The environment for a ``lookalike`` process on *data_dir*: this one's, plus, on the
    PostgreSQL pass, the catalog's URL (the child does not share this process's mapping)."""
    def environment(data_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        if catalog_server is not None:
            env["LOOKALIKE_DATABASE_URL"] = catalog_server.url(data_dir)
        return env
    return environment


@pytest.fixture
def copy_data_dir(catalog_server):
    """copytree for data dirs: on PostgreSQL the catalog, which is not in the folder, too."""
    def copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        if catalog_server is not None:
            catalog_server.copy(src, dst)
        return dst
    return copy


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Settings from the developer's shell must not leak into tests, and the apps tests make
    must not change torch's process-wide thread count under the other test modules."""
    for name in list(os.environ):
        if name.startswith("LOOKALIKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LOOKALIKE_INFERENCE_THREADS", "0")


@pytest.fixture(scope="session")
def collection_src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collection")
    make_collection(root, per_class=20)
    return root


@pytest.fixture
def collection(collection_src, tmp_path) -> Path:
    """A private copy, so a test may add, move and delete files."""
    dst = tmp_path / "collection"
    shutil.copytree(collection_src, dst)
    return dst


# -- models and data dirs, made through the library ----------------------------------------------

def make_model(path: Path, train_on: Path | None = None, *, config: AEConfig = TINY,
               recipe: TrainConfig = TINY_TRAIN, seed: int = 0) -> Path:
    """The one way the tests make a model: a tiny model (*config*) saved at *path*.

    Untrained unless *train_on* is given (another *seed*, other weights of the same size:
    another model); trained with *recipe* on every PNG under *train_on*, in name order, if it is.
    """
    if train_on is None:
        torch.manual_seed(seed)
        save_checkpoint(path, build_model(config), {"seed": seed})
        return path
    pixels = np.stack([load_image(p, config.image_size) for p in sorted(train_on.rglob("*.png"))])
    model, facts = fit(pixels, config, recipe, progress=False)
    save_checkpoint(path, model, facts)
    return path


def index_into(data_dir: Path, folder: Path, **options) -> dict:
    """Index *folder* into *data_dir* with its model, as ``lookalike index`` does, through the
    library; the run's summary. *options*: ``index_folder``'s (``prune=True``, ...)."""
    store = Store.open(data_dir)
    try:
        encoder = TorchEncoder.from_path(store.model_path, "cpu")
        return index_folder(store, folder, encoder, progress=False,
                            encoding=LocalEncoding(encoder, workers=0), **options).as_dict()
    finally:
        store.close()


def state(data_dir: Path) -> tuple[dict[int, str], set[int]]:
    """(catalog id → path, the ids in the saved index)."""
    store = Store.open(data_dir)
    with store.sessions() as s:
        catalog = {r.id: r.path for r in s.scalars(select(ImageRecord))}
    ids = store.load_index().ids().tolist()
    store.close()
    assert len(ids) == len(set(ids)), "an id stands twice in the index"
    return catalog, set(ids)


@pytest.fixture(scope="session")
def trained_checkpoint(collection_src, tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "model.pt", collection_src)


@pytest.fixture
def data_dir(tmp_path, trained_checkpoint) -> Path:
    """A data dir that already holds the tiny model as its current model."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(trained_checkpoint, d / "model.pt")
    return d


@pytest.fixture
def untrained_data_dir(tmp_path) -> Path:
    """A data dir holding an untrained tiny model and nothing else (checks, locks, crashes and
    full disks care which checkpoint made a code, and how fast it encodes, not how good it is)."""
    data = tmp_path / "data"
    data.mkdir()
    make_model(data / "model.pt")
    return data


@pytest.fixture
def indexed(untrained_data_dir, collection) -> Path:
    """A data dir with the collection indexed by an untrained tiny model."""
    index_into(untrained_data_dir, collection)
    return untrained_data_dir
