"""A full disk while writing index, checkpoint, codebook or catalog: a clear error, nothing lost.

Faults are injected where the real libraries fail (faiss, torch.save,
SQLite's own SQLITE_FULL via ``PRAGMA max_page_count``), with the error
each raises on a real full disk; one test uses a real tiny tmpfs when
this process may mount one. ``lookalike index`` on a full disk:
tests/cli/test_diskfull.py.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from sqlalchemy.exc import OperationalError

from indexer.model import AEConfig, build_model, load_checkpoint, save_checkpoint
from search.catalog import ImageRecord, ModelRecord
from search.database import describe_database_error
from search.files import DiskFullError, replace_atomically
from search.store import Store, codebook_path
from search.vector_index import build_index, load_index
from indexer.compression import Codebooks

from ..conftest import TINY
from ..mounts import tmpfs

pytestmark = pytest.mark.sqlite_only

ENOSPC_TEXT = os.strerror(errno.ENOSPC)


def _index(n: int, seed: int = 0):
    codes = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return build_index(np.arange(1, n + 1, dtype=np.int64), codes, 16, "flat")


def _temp_files(folder: Path) -> list[Path]:
    return list(folder.glob(".*.tmp"))


def _half_then(error: BaseException, real):
    """A writer that gets half its bytes out, as one stopped by ENOSPC does, then fails."""
    def write(obj, path, *args, **kwargs):
        real(obj, path, *args, **kwargs)
        with open(path, "rb+") as f:
            f.truncate(os.path.getsize(path) // 2)
        raise error
    return write


def _faiss_enospc(path: str) -> RuntimeError:
    """faiss's own words when fwrite hits a full disk."""
    return RuntimeError(f"Error in void faiss::write_index(...): Error: 'ret == (size * 4)' "
                        f"failed: write error in {path}: 65491 != 256000 ({ENOSPC_TEXT})")


# -- replace_atomically ---------------------------------------------------------------------

@pytest.mark.parametrize("error, message", [
    (OSError(errno.ENOSPC, ENOSPC_TEXT), "disk full"),
    (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), "disk quota exceeded"),
    (_faiss_enospc("x"), "disk full"),
])
def test_no_room_becomes_disk_full_error_and_keeps_the_old_file(tmp_path, error, message):
    target = tmp_path / "data.bin"
    replace_atomically(target, lambda tmp: Path(tmp).write_bytes(b"old"), "data")

    def broken(tmp: str) -> None:
        Path(tmp).write_bytes(b"ha")
        raise error

    with pytest.raises(DiskFullError) as caught:
        replace_atomically(target, broken, "data")
    assert str(caught.value) == (f"{message} while writing {target} (the previous file is kept); "
                                 "free some space and run the command again")
    assert caught.value.errno == (error.errno if isinstance(error, OSError) else errno.ENOSPC)
    assert target.read_bytes() == b"old"
    assert not _temp_files(tmp_path)


def test_torch_style_runtime_error_caused_by_enospc_is_disk_full(tmp_path):
    """torch.save to a file object wraps the OSError in a RuntimeError that only chains it."""
    def broken(tmp: str) -> None:
        try:
            raise OSError(errno.ENOSPC, ENOSPC_TEXT)
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 704 vs 598")

    with pytest.raises(DiskFullError, match="nothing was written"):
        replace_atomically(tmp_path / "new.bin", broken, "data")
    assert not (tmp_path / "new.bin").exists() and not _temp_files(tmp_path)


def test_other_write_errors_are_not_called_disk_full(tmp_path):
    def broken(tmp: str) -> None:
        raise RuntimeError("unsupported index type")

    with pytest.raises(RuntimeError, match="unsupported index type") as caught:
        replace_atomically(tmp_path / "x.bin", broken, "data")
    assert not isinstance(caught.value, DiskFullError)


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    synced: list[tuple[bool, bytes]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        synced.append((is_dir, target.read_bytes() if target.exists() else b""))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    replace_atomically(target, lambda tmp: Path(tmp).write_bytes(b"new"), "data")
    assert synced == [(False, b""), (True, b"new")]  # the file before the rename, the folder after
    synced.clear()
    replace_atomically(target, lambda tmp: Path(tmp).write_bytes(b"cache"), "data", durable=False)
    assert synced == []


# -- the writers --------------------------------------------------------------------------

def test_index_save_on_a_full_disk_keeps_the_previous_index(tmp_path, monkeypatch):
    path = tmp_path / "index.faiss"
    _index(5).save(path)
    before = path.read_bytes()
    monkeypatch.setattr(faiss, "write_index", _half_then(_faiss_enospc(str(path)), faiss.write_index))
    with pytest.raises(DiskFullError, match=f"disk full while writing {path} "
                                            r"\(the previous file is kept\)"):
        _index(500, seed=1).save(path)
    assert path.read_bytes() == before
    assert sorted(load_index(path).ids().tolist()) == [1, 2, 3, 4, 5]
    assert not _temp_files(tmp_path)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_checkpoint_save_on_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code):
    path = tmp_path / "model.pt"
    torch.manual_seed(0)
    old = build_model(TINY)
    save_checkpoint(path, old, {"epochs_run": 1})
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _half_then(OSError(code, os.strerror(code)), torch.save))
    with pytest.raises(DiskFullError, match=f"while writing {path} \\(the previous file is kept\\)"):
        save_checkpoint(path, build_model(TINY), {"epochs_run": 2})
    assert path.read_bytes() == before
    loaded = load_checkpoint(path)
    assert loaded.facts == {"epochs_run": 1}
    for key, value in old.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert not _temp_files(tmp_path)


def test_codebook_that_cannot_be_saved_is_kept_in_memory_with_a_clear_warning(
        tmp_path, monkeypatch, caplog):
    store = Store.open(tmp_path / "data")
    with store.sessions() as s, s.begin():
        model = ModelRecord(kind="ae", config={}, checkpoint_path="m.pt", checkpoint_sha256="ab" * 32,
                            latent_dim=16)
        s.add(model)
        s.flush()
        codes = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
        s.add_all(ImageRecord(path=f"/img/{i}.png", sha256=f"{i:064x}", size=1, mtime=0.0,
                              width=8, height=8, format="PNG", model_id=model.id,
                              code=c.tobytes(), reconstruction_error=0.0) for i, c in enumerate(codes))
    path = codebook_path(store.data_dir, "ab" * 32)
    monkeypatch.setattr(faiss, "write_ProductQuantizer",
                        _half_then(_faiss_enospc(str(path)), faiss.write_ProductQuantizer))
    with caplog.at_level(logging.WARNING, logger="indexer.compression"):
        pq = Codebooks(store.data_dir, lambda: store).get_or_train("ab" * 32)
    assert np.allclose(pq.decode(pq.encode(codes[0])), codes[0], atol=2.0)
    assert f"disk full while writing {path}" in caplog.text
    assert not path.exists() and not _temp_files(path.parent)
    store.close()


# -- a real tiny filesystem ---------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs; skipped where this process may not mount one."""
    with tmpfs(tmp_path / "tiny") as mount:
        yield mount


def test_real_full_tmpfs(tiny_tmpfs):
    index_path, model_path = tiny_tmpfs / "index.faiss", tiny_tmpfs / "model.pt"
    _index(5).save(index_path)
    save_checkpoint(model_path, build_model(TINY), {"epochs_run": 1})
    saved = {p: p.read_bytes() for p in (index_path, model_path)}

    with pytest.raises(DiskFullError, match=f"disk full while writing {index_path}"):
        _index(20000, seed=1).save(index_path)  # 1.3 MB of vectors
    with pytest.raises(DiskFullError, match=f"disk full while writing {model_path}"):
        save_checkpoint(model_path, build_model(AEConfig(image_size=32, latent_dim=64)), {})

    assert {p: p.read_bytes() for p in saved} == saved
    assert load_index(index_path).ntotal == 5
    assert load_checkpoint(model_path).facts == {"epochs_run": 1}
    assert sorted(os.listdir(tiny_tmpfs)) == ["index.faiss", "model.pt"]


# -- the catalog -----------------------------------------------------------------------------

def test_other_database_errors_are_not_called_disk_full():
    locked = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    assert describe_database_error(locked, "/d/catalog.sqlite") == \
        "cannot write the catalog /d/catalog.sqlite: database is locked"
