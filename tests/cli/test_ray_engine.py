"""``index --engine ray``: Ray Data encodes, this process writes; the catalog comes out as local."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sqlalchemy import select

from search.catalog import ImageRecord
from search.store import Store

from .conftest import run

ray = pytest.importorskip("ray", reason="the ray engine's tests need Ray Data (lookalike[ray])")
# The writer is the local engine's, which the PostgreSQL pass tests; a Ray cluster's start
# costs the suite ~10 s a pass.
pytestmark = pytest.mark.any_catalog


@pytest.fixture
def local_ray_cluster():
    """The CLI starts a local cluster on first use; stop it after the test."""
    yield
    ray.shutdown()


def catalog_of(data_dir) -> dict[int, tuple[str, np.ndarray, float, int, int, str | None]]:
    store = Store.open(data_dir)
    try:
        with store.sessions() as s:
            return {r.id: (r.path, np.frombuffer(r.code, np.float32), r.reconstruction_error, r.width,
                           r.height, r.format) for r in s.scalars(select(ImageRecord))}
    finally:
        store.close()


def test_ray_engine_gives_the_local_engines_ids_and_codes(tmp_path, data_dir, collection,
                                                           local_ray_cluster):
    (collection / "broken.png").write_bytes(b"not a png")
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(data_dir / "model.pt", local / "model.pt")
    files = sum(p.is_file() for p in collection.rglob("*"))
    by_local = json.loads(run(local, "index", str(collection), "--workers", "0",
                              "--json").stdout)
    by_ray = json.loads(run(data_dir, "index", str(collection), "--engine", "ray",
                            "--ray-actors", "2", "--encode-batch", "16", "--json").stdout)
    assert by_ray["added"] == by_local["added"] == files - 1
    assert by_ray["failures"] == by_local["failures"] != []

    ours, theirs = catalog_of(data_dir), catalog_of(local)
    assert sorted(ours) == sorted(theirs) and len(ours) == files - 1
    for image_id, (path, code, error, width, height, fmt) in ours.items():
        assert (path, width, height, fmt) == theirs[image_id][:1] + theirs[image_id][3:]
        np.testing.assert_allclose(code, theirs[image_id][1], atol=1e-5)
        assert error == pytest.approx(theirs[image_id][2], abs=1e-5)

    # the vector index is the writer's, as with the local engine: search finds each image
    query = ours[min(ours)][0]
    hits = run(data_dir, "search", query, "-k", "1").output
    assert query in hits

    # a second run plans as always: nothing to encode, nothing sent to Ray
    again = json.loads(run(data_dir, "index", str(collection), "--engine", "ray",
                           "--json").stdout)
    assert again["unchanged"] == files - 1 and again["encoded"] == 0


def test_ray_engine_without_ray_is_a_clear_error(data_dir, collection, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    result = run(data_dir, "index", str(collection), "--engine", "ray", ok=False)
    assert result.exit_code == 1
    assert "pip install 'lookalike[ray]'" in result.output
    assert not (data_dir / "index.faiss").exists()

