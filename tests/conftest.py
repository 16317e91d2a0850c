"""Shared fixtures: a synthetic collection and a tiny model trained once per session."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer.model import AEConfig
from indexer.train import TrainConfig

from .synthetic import make_collection

TINY = AEConfig(image_size=32, widths=(16, 32, 64), latent_dim=16)
# The plain recipe (λ = 0): these tests are about search, storage and the family, and a
# plain tiny model trains in seconds; tests/test_invariance.py covers the default recipe.
TINY_TRAIN = TrainConfig(epochs=80, batch_size=16, lr=3e-3, patience=80, seed=0, device="cpu",
                         invariance=0)


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


@pytest.fixture(scope="session")
def trained_checkpoint(collection_src, tmp_path_factory) -> Path:
    from indexer.train import train_folder

    out = tmp_path_factory.mktemp("model") / "model.pt"
    train_folder(collection_src, out, AEConfig(**TINY.to_dict()), TINY_TRAIN, progress=False,
                 workers=0)
    return out


@pytest.fixture
def data_dir(tmp_path, trained_checkpoint) -> Path:
    """A data dir that already holds the tiny model as its current model."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(trained_checkpoint, d / "model.pt")
    return d
