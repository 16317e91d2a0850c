"""`lookalike check` and `check --repair`, through click's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from search.catalog import ImageRecord
from search.store import Store

from ..conftest import make_model
from .conftest import invoke


def check(data_dir: Path, *args: str) -> tuple[int, dict]:
    result = invoke(data_dir, "check", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def catalog_and_index(data_dir: Path) -> tuple[set[int], list[int]]:
    store = Store.open(data_dir)
    with store.sessions() as s:
        catalog = set(s.scalars(select(ImageRecord.id)))
    return catalog, store.load_index().ids().tolist()


def test_consistent_data_dir_is_ok(indexed, tmp_path):
    result = invoke(indexed, "check")
    assert result.exit_code == 0 and result.stdout.strip().endswith("ok"), result.output
    code, report = check(indexed)
    assert code == 0 and report["ok"] and report["problems"] == []
    assert report["images"] == 60 and report["index_vectors"] == 60
    # A data dir with a model and nothing indexed yet is consistent too.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    make_model(fresh / "model.pt", seed=0)
    assert check(fresh)[0] == 0


def test_missing_data_dir_is_an_error(tmp_path):
    result = invoke(tmp_path / "nope", "check")
    assert result.exit_code == 1 and "no data dir" in result.output
    assert not (tmp_path / "nope").exists()


def test_deleted_files_are_reported_and_repair_drops_them(indexed, collection):
    gone = sorted(collection.rglob("*.png"))[:2]
    for f in gone:
        f.unlink()
    result = invoke(indexed, "check")
    assert result.exit_code == 1
    assert "2 catalog image(s) whose file is gone" in result.stdout
    assert all(str(f.resolve()) in result.stdout for f in gone)
    code, report = check(indexed)
    assert code == 1 and sorted(m["path"] for m in report["missing_files"]) == sorted(
        str(f.resolve()) for f in gone)

    repaired = invoke(indexed, "check", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "dropped 2 catalog image(s)" in repaired.stdout
    assert all(str(f.resolve()) in repaired.stdout for f in gone)
    assert check(indexed)[0] == 0
    catalog, ids = catalog_and_index(indexed)
    assert len(catalog) == 58 and sorted(ids) == sorted(catalog)


def test_index_missing_bogus_and_duplicate_ids_are_reported_and_repaired(indexed):
    store = Store.open(indexed)
    index = store.load_index()
    ids = sorted(index.ids().tolist())
    dropped, doubled, bogus = ids[0], ids[1], 10**6
    index.remove([dropped])
    rng = np.random.default_rng(0)
    index.add(np.array([bogus, doubled]), rng.normal(size=(2, index.dim)))
    index.save(store.index_path)  # behind the job's back, as a bug or a stray tool might

    code, report = check(indexed)
    assert code == 1
    assert report["missing_from_index"] == [dropped]
    assert report["extra_in_index"] == [bogus]
    assert report["duplicates_in_index"] == [doubled]
    text = invoke(indexed, "check").stdout
    assert "missing from the index" in text and "that the catalog does not have" in text

    repaired = invoke(indexed, "check", "--repair")
    assert repaired.exit_code == 0 and "rebuilt the index" in repaired.stdout, repaired.output
    assert check(indexed)[0] == 0
    catalog, ids = catalog_and_index(indexed)
    assert sorted(ids) == sorted(catalog) and len(catalog) == 60


@pytest.mark.parametrize("damage", ["delete", "garbage"])
def test_missing_or_unreadable_index_is_reported_and_rebuilt(indexed, damage):
    path = indexed / "index.faiss"
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(b"not a faiss index")
    code, report = check(indexed)
    assert code == 1 and report["index_problem"]
    assert ("no vector index" if damage == "delete" else "cannot read") in report["index_problem"]
    assert invoke(indexed, "check", "--repair").exit_code == 0
    assert check(indexed)[0] == 0
    catalog, ids = catalog_and_index(indexed)
    assert sorted(ids) == sorted(catalog) and len(catalog) == 60


def test_index_saved_before_the_last_catalog_change_is_reported(indexed):
    """What an indexer killed between a batch commit and the index save leaves behind."""
    store = Store.open(indexed)
    with store.sessions() as s, s.begin():
        store.mark_catalog_changed(s)
    code, report = check(indexed)
    assert code == 1 and report["index_behind"]
    assert invoke(indexed, "check", "--repair").exit_code == 0
    assert check(indexed)[0] == 0


def test_leftover_temp_files_are_reported_and_swept(indexed):
    debris = indexed / ".index-abc123.tmp"
    debris.write_bytes(b"half an index")
    code, report = check(indexed)
    assert code == 1 and report["debris"] == [str(debris)]
    repaired = invoke(indexed, "check", "--repair")
    assert repaired.exit_code == 0 and "deleted 1 temp file(s)" in repaired.stdout
    assert not debris.exists() and check(indexed)[0] == 0


def test_stale_model_rows_are_kept_and_reencode_fixes_them(indexed, collection):
    make_model(indexed / "model.pt", seed=1)  # a retrained model, same code size
    result = invoke(indexed, "check")
    assert result.exit_code == 1
    assert "60 image(s) encoded by another model" in result.stdout
    assert f"lookalike index {collection.resolve()} --reencode" in result.stdout
    code, report = check(indexed)
    assert len(report["stale_model"]) == 60 and not report["missing_from_index"]

    repaired = invoke(indexed, "check", "--repair")  # nothing it may fix: rows stay
    assert repaired.exit_code == 1 and "--reencode" in repaired.stdout
    assert len(catalog_and_index(indexed)[0]) == 60

    out = invoke(indexed, "index", str(collection), "--reencode", "--json", "--workers", "0")
    assert out.exit_code == 0 and json.loads(out.stdout)["updated"] == 60
    assert check(indexed)[0] == 0
    again = invoke(indexed, "index", str(collection), "--json", "--workers", "0")
    assert json.loads(again.stdout)["unchanged"] == 60


def test_model_missing_is_reported(indexed):
    (indexed / "model.pt").unlink()
    code, report = check(indexed)
    assert code == 1 and "no model checkpoint" in report["model_problem"]
    code, report = check(indexed, "--model", str(indexed / "nope.pt"))
    assert code == 1 and "nope.pt" in report["model_problem"]
