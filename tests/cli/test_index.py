"""`lookalike index` and `lookalike stats` end to end, through click's CliRunner."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from indexer.encoding import TorchEncoder
from indexer.model import load_checkpoint
from search.catalog import ImageRecord
from search.engine import SearchEngine, code_of
from search.store import Store
from search.vector_index import normalise

from ..conftest import state
from ..synthetic import SHAPES, make_bad_files, make_collection
from .conftest import run


def index_json(data_dir, folder) -> dict:
    out = run(data_dir, "index", str(folder), "--json", "--workers", "0").stdout
    return json.loads(out)


def assert_searched_exactly(data_dir: Path) -> None:
    """The saved index ranks every image as a brute-force cosine ranking of the catalog's
    stored codes does: every other image, best first, each at its true similarity."""
    store = Store.open(data_dir)
    with store.sessions() as s:
        rows = list(s.scalars(select(ImageRecord)))
    position = {row.id: i for i, row in enumerate(rows)}
    codes = normalise(np.stack([code_of(row) for row in rows]))
    truth = codes @ codes.T
    scores, found = store.load_index().search(codes, len(rows))
    store.close()
    for i in range(len(rows)):
        assert sorted(found[i].tolist()) == sorted(position)  # none left out: not approximate
        np.testing.assert_allclose(scores[i], truth[i, [position[j] for j in found[i]]],
                                   atol=1e-5)
        np.testing.assert_allclose(scores[i], np.sort(truth[i])[::-1], atol=1e-5)


def test_ivfpq_index_is_reranked_by_the_catalog_and_follows_deletions(data_dir, tmp_path):
    """IVF-PQ (what auto picks above 2M) on 300 images: its search answers as an exact one
    mostly does, since the catalog's full codes re-rank its shortlist; deletions reach it."""
    folder = tmp_path / "many"
    make_collection(folder, per_class=100, seed=3, classes=SHAPES)
    run(data_dir, "index", str(folder), "--workers", "0", "--index-type", "ivfpq")
    info = json.loads(run(data_dir, "stats", "--json").stdout)
    assert info["index_type"].startswith("IndexIVFPQ") and info["index_vectors"] == 300
    store = Store.open(data_dir)
    with store.sessions() as s:
        rows = list(s.scalars(select(ImageRecord).order_by(ImageRecord.id)))
    codes = normalise(np.stack([code_of(r) for r in rows]))
    engine = SearchEngine(store, type("Dim", (), {"dim": codes.shape[1]})())
    overlap = []
    for i in range(0, 300, 15):
        truth = {rows[j].id for j in np.argsort(-(codes @ codes[i]))[:5]}
        hits = engine.search_code(code_of(rows[i]), 5)
        assert hits[0].id == rows[i].id and hits[0].score == pytest.approx(1, abs=1e-5)
        overlap.append(len(truth & {h.id for h in hits}) / 5)
    store.close()
    assert np.mean(overlap) >= 0.9
    for f in sorted(folder.rglob("*.png"))[:10]:
        f.unlink()
    run(data_dir, "index", str(folder), "--workers", "0")
    catalog, index_ids = state(data_dir)
    assert len(catalog) == 290 and set(catalog) == index_ids


def test_bad_files_are_listed_and_skipped(data_dir, collection):
    good_jpeg = collection / "photo.jpg"
    Image.new("RGB", (64, 48), (120, 30, 200)).save(good_jpeg)
    bad = make_bad_files(collection / "junk", good_jpeg)
    result = run(data_dir, "index", str(collection), "--workers", "2")
    assert "failed 5" in result.stdout and "added 61" in result.stdout
    for path in bad.values():
        assert str(path.resolve()) in result.stderr
    assert "empty file" in result.stderr and "not a recognised image" in result.stderr
    catalog, index_ids = state(data_dir)
    assert len(catalog) == 61 and set(catalog) == index_ids


def test_incremental_reindex(data_dir, collection):
    first = index_json(data_dir, collection)
    assert first["added"] == 60 and first["failed"] == 0
    again = index_json(data_dir, collection)
    assert again["encoded"] == 0 and again["unchanged"] == 60
    before, _ = state(data_dir)
    by_path = {v: k for k, v in before.items()}

    files = sorted(collection.rglob("*.png"))
    deleted = files[:2]
    for f in deleted:
        f.unlink()
    moved_from = files[5]
    moved_to = collection / "elsewhere" / "renamed.png"
    moved_to.parent.mkdir()
    shutil.move(moved_from, moved_to)
    extra = make_collection(collection / "new", per_class=1, seed=99)
    assert sum(len(ps) for ps in extra.values()) == 3
    changed = files[10]
    Image.new("RGB", (48, 48), (0, 0, 0)).save(changed)

    summary = index_json(data_dir, collection)
    assert (summary["added"], summary["removed"], summary["moved"], summary["updated"]) == (3, 2, 1, 1)
    after, index_ids = state(data_dir)
    assert set(after) == index_ids
    assert sorted(after.values()) == sorted(str(p.resolve()) for p in collection.rglob("*.png"))
    # The moved file kept its id (and so its code); the changed file kept its id too.
    assert after[by_path[str(moved_from.resolve())]] == str(moved_to.resolve())
    assert by_path[str(changed.resolve())] in after
    for f in deleted:
        assert by_path[str(f.resolve())] not in after and by_path[str(f.resolve())] not in index_ids


def test_touched_but_identical_file_is_not_reencoded(data_dir, collection):
    index_json(data_dir, collection)
    f = next(collection.rglob("*.png"))
    f.touch()
    summary = index_json(data_dir, collection)
    assert summary["encoded"] == 0 and summary["unchanged"] == 60


def test_index_trains_a_model_when_there_is_none(tmp_path, collection):
    data = tmp_path / "fresh"
    result = run(data, "index", str(collection), "--epochs", "1", "--image-size", "16",
                 "--workers", "0")
    assert (data / "model.pt").is_file() and "added 60" in result.stdout
    trained = load_checkpoint(data / "model.pt")  # the training options reached the model
    assert trained.model.config.image_size == 16
    assert trained.facts["train_config"]["epochs"] == 1 and trained.facts["epochs_run"] == 1
    assert TorchEncoder.from_path(data / "model.pt", "cpu").image_size == 16


def test_index_after_model_change_reencodes_everything(data_dir, collection, tmp_path):
    index_json(data_dir, collection)
    run(data_dir, "train", str(collection), "-o", str(tmp_path / "m2.pt"),
        "--epochs", "1", "--image-size", "32", "--latent-dim", "8")
    out = run(data_dir, "index", str(collection), "--model", str(tmp_path / "m2.pt"),
              "--json", "--workers", "0").stdout
    assert json.loads(out)["updated"] == 60
    assert Store.open(data_dir).load_index().dim == 8


def test_stats_and_a_small_collection_is_searched_exactly(data_dir, collection):
    index_json(data_dir, collection)
    info = json.loads(run(data_dir, "stats", "--json").stdout)
    assert info["images"] == 60 and info["index_vectors"] == 60
    assert info["metric"] == "cosine" and info["index_choice"] == "auto"
    assert_searched_exactly(data_dir)


def test_ivf_index_keeps_working_through_incremental_changes(data_dir, collection):
    out = run(data_dir, "index", str(collection), "--json", "--workers", "0",
              "--index-type", "ivf").stdout
    assert json.loads(out)["added"] == 60
    info = json.loads(run(data_dir, "stats", "--json").stdout)
    assert info["index_type"].startswith("IndexIVFFlat")
    query = sorted((collection / "red-circles").glob("*.png"))[3]
    hits = json.loads(run(data_dir, "search", str(query), "-k", "3", "--json").stdout)
    assert hits["results"][0]["path"] == str(query.resolve())
    for f in sorted(collection.rglob("*.png"))[:4]:
        f.unlink()
    run(data_dir, "index", str(collection), "--workers", "0")  # the choice is kept
    catalog, index_ids = state(data_dir)
    assert len(catalog) == 56 and set(catalog) == index_ids
    info = json.loads(run(data_dir, "stats", "--json").stdout)
    assert info["index_type"].startswith("IndexIVFFlat") and info["index_choice"] == "ivf"
    # A repair rebuilds the index the data dir asked for, not the size's default.
    (data_dir / "index.faiss").unlink()
    assert run(data_dir, "check", "--repair").exit_code == 0
    assert json.loads(run(data_dir, "stats", "--json").stdout)["index_type"].startswith(
        "IndexIVFFlat")
    # Back on auto, a collection this small returns to exact search.
    run(data_dir, "index", str(collection), "--workers", "0", "--index-type", "auto")
    info = json.loads(run(data_dir, "stats", "--json").stdout)
    assert info["index_choice"] == "auto"
    assert_searched_exactly(data_dir)
