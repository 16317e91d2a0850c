"""`lookalike remove`, `exclusions` and `reindex`: what the admin API does, from a shell."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from search.catalog import ImageRecord
from search.store import Store

from ..conftest import invoke
from .conftest import write_untrained_model


def catalog(data_dir: Path) -> dict[str, int]:
    store = Store.open(data_dir)
    with store.sessions() as s:
        rows = {path: i for i, path in s.execute(select(ImageRecord.id, ImageRecord.path))}
    ids = set(store.load_index().ids().tolist())
    store.close()
    assert ids == set(rows.values())  # the index follows the catalog
    return rows


def test_remove_keeps_the_file_and_reindex_does_not_bring_it_back(indexed):
    path, image_id = sorted(catalog(indexed).items())[0]
    result = invoke(indexed, "remove", str(image_id))
    assert result.exit_code == 0, result.output
    assert f"removed {image_id}: {path}" in result.output
    assert Path(path).is_file() and path not in catalog(indexed)
    listed = json.loads(invoke(indexed, "exclusions", "--json").stdout)
    assert [e["path"] for e in listed] == [path]
    assert invoke(indexed, "reindex").exit_code == 0
    assert path not in catalog(indexed)  # excluded: skipped by the re-index


def test_lifting_an_exclusion_lets_reindex_add_the_file_again(indexed):
    path, image_id = sorted(catalog(indexed).items())[0]
    invoke(indexed, "remove", str(image_id))
    exclusion = json.loads(invoke(indexed, "exclusions", "--json").stdout)[0]
    lifted = invoke(indexed, "exclusions", "--lift", str(exclusion["id"]), "--json")
    assert json.loads(lifted.stdout)[0]["path"] == path
    assert json.loads(invoke(indexed, "exclusions", "--json").stdout) == []
    assert invoke(indexed, "reindex").exit_code == 0
    assert path in catalog(indexed)


def test_remove_without_exclusion_comes_back_on_reindex(indexed):
    path, image_id = sorted(catalog(indexed).items())[0]
    assert invoke(indexed, "remove", str(image_id), "--no-exclude").exit_code == 0
    assert json.loads(invoke(indexed, "exclusions", "--json").stdout) == []
    invoke(indexed, "reindex")
    assert path in catalog(indexed)


def test_unknown_ids_are_clear_errors_that_change_nothing(indexed):
    before = catalog(indexed)
    for args in (["remove", "999999"], ["exclusions", "--lift", "999999"]):
        result = invoke(indexed, *args)
        assert result.exit_code == 1 and "no " in result.output and "999999" in result.output
    assert catalog(indexed) == before


def test_reindex_skips_a_folder_that_is_gone_and_keeps_its_images(indexed, collection):
    before = catalog(indexed)
    shutil.rmtree(collection)
    result = invoke(indexed, "reindex", "--json")
    assert result.exit_code == 0, result.output
    statuses = {r["status"] for r in json.loads(result.stdout)}
    assert statuses == {"skipped"}  # one per class folder: all gone
    assert catalog(indexed) == before


def test_reindex_of_an_empty_data_dir_says_there_is_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_untrained_model(data / "model.pt", seed=0)
    Store.open(data).close()
    result = invoke(data, "reindex")
    assert result.exit_code == 1 and "nothing to re-index" in result.output
