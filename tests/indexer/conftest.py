"""What the indexer tests share: data dirs with an untrained tiny model (checks, locks, crashes
and full disks care which checkpoint made a code, and how fast it encodes, not how good it
is), one indexed by it, and a look at what catalog and index hold."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from indexer.model import build_model, save_checkpoint
from search.catalog import ImageRecord
from search.store import Store

from ..conftest import TINY, invoke


def write_untrained_model(path: Path, seed: int = 0) -> None:
    """An untrained tiny model at *path*; another *seed* is another model of the same size."""
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(TINY), {"seed": seed})


@pytest.fixture
def untrained_data_dir(tmp_path) -> Path:
    """A data dir holding an untrained tiny model and nothing else."""
    data = tmp_path / "data"
    data.mkdir()
    write_untrained_model(data / "model.pt")
    return data


@pytest.fixture
def indexed(untrained_data_dir, collection) -> Path:
    """A data dir with the collection indexed by an untrained tiny model."""
    result = invoke(untrained_data_dir, "index", str(collection), "--workers", "0")
    assert result.exit_code == 0, result.output
    return untrained_data_dir


def state(data_dir: Path) -> tuple[dict[int, str], set[int]]:
    """(catalog id → path, the ids in the saved index)."""
    store = Store.open(data_dir)
    with store.sessions() as s:
        catalog = {r.id: r.path for r in s.scalars(select(ImageRecord))}
    ids = set(store.load_index().ids().tolist())
    store.close()
    return catalog, ids
