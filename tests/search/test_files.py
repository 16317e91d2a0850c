"""Atomic file replacement (search.files): all or nothing, and readable like any other file."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from indexer.model import AEConfig, build_model, save_checkpoint
from search.files import replace_atomically
from search.vector_index import build_index

pytestmark = pytest.mark.any_catalog


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_index_and_checkpoint_get_the_usual_permissions(tmp_path):
    """mkstemp's 0600 would hide them from a server running as another user."""
    ids = np.arange(1, 6, dtype=np.int64)
    build_index(ids, np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32), 8,
                "flat").save(tmp_path / "index.faiss")
    save_checkpoint(tmp_path / "model.pt", build_model(AEConfig(image_size=16, latent_dim=4)), {})
    expected = 0o666 & ~_umask()
    assert _mode(tmp_path / "index.faiss") == expected
    assert _mode(tmp_path / "model.pt") == expected
    assert not list(tmp_path.glob(".*.tmp"))


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "data.bin"
    replace_atomically(target, lambda tmp: open(tmp, "wb").write(b"old"), "data")

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, broken, "data")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".data-*"))
    replace_atomically(target, lambda tmp: open(tmp, "wb").write(b"new"), "data")
    assert target.read_bytes() == b"new"
