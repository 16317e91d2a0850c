"""`lookalike remove`, `exclusions` and `reindex`: what the admin API does, from a shell."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from sqlalchemy import select

from search.catalog import ImageRecord
from search.store import Store

from ..conftest import make_model
from ..synthetic import make_collection, make_image
from .conftest import invoke


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
    (skipped,) = json.loads(result.stdout)  # the folder indexed, gone as a whole
    assert skipped["status"] == "skipped" and skipped["folder"] == str(collection.resolve())
    assert catalog(indexed) == before


def test_reindex_of_an_empty_data_dir_says_there_is_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_model(data / "model.pt", seed=0)
    Store.open(data).close()
    result = invoke(data, "reindex")
    assert result.exit_code == 1 and "nothing to re-index" in result.output


def test_reindex_covers_the_folders_as_indexed(untrained_data_dir, tmp_path):
    """Files moved into a new subfolder keep their ids; images in a new subfolder or right in
    the folder indexed are added; nothing is removed (#23: a re-index of the folders that
    held files saw only the leaves, retired the moved files and never saw the new ones)."""
    root = tmp_path / "p4"
    make_collection(root, per_class=3)  # root/<class>/<class>-NNN.png, nothing right in root
    assert invoke(untrained_data_dir, "index", str(root), "--workers", "0").exit_code == 0
    before = catalog(untrained_data_dir)
    first_class = sorted(p for p in root.iterdir() if p.is_dir())[0]
    moved = sorted(first_class.glob("*.png"))[:2]
    (root / "sub3").mkdir()
    for path in moved:
        path.rename(root / "sub3" / path.name)
    (root / "sub4").mkdir()
    make_image("red-circles", np.random.default_rng(7)).save(root / "sub4" / "new.png")
    make_image("green-squares", np.random.default_rng(8)).save(root / "top.png")

    result = invoke(untrained_data_dir, "reindex", "--json")
    assert result.exit_code == 0, result.output
    (done,) = json.loads(result.stdout)
    assert done["folder"] == str(root.resolve())
    assert (done["moved"], done["added"], done["removed"]) == (2, 2, 0), done
    after = catalog(untrained_data_dir)
    for path in moved:
        assert after[str(root.resolve() / "sub3" / path.name)] == before[str(path.resolve())]
    assert {str(root.resolve() / "sub4" / "new.png"), str(root.resolve() / "top.png")} <= set(after)


def test_the_folders_indexed_are_the_roots_a_reindex_covers(untrained_data_dir, tmp_path):
    """A folder inside one indexed before adds no root; one around earlier roots replaces them."""
    outer = tmp_path / "photos"
    make_collection(outer / "2024", per_class=1)
    make_collection(outer / "2025", per_class=1, seed=1)
    years = [str((outer / y).resolve()) for y in ("2024", "2025")]
    for folder, roots in ((outer / "2024", years[:1]), (outer / "2025", years),
                          (outer / "2025" / "red-circles", years),
                          (outer, [str(outer.resolve())])):
        assert invoke(untrained_data_dir, "index", str(folder), "--workers", "0").exit_code == 0
        store = Store.open(untrained_data_dir)
        assert store.roots() == roots, folder
        store.close()


def test_a_folder_left_empty_keeps_its_rows_and_one_deleted_loses_them(untrained_data_dir,
                                                                       tmp_path):
    """An unmounted disk's mount point is an empty folder: its images are kept (as for a
    whole folder gone); a folder deleted with its files is a deletion."""
    root = tmp_path / "photos"
    make_collection(root, per_class=4)
    assert invoke(untrained_data_dir, "index", str(root), "--workers", "0").exit_code == 0
    before = catalog(untrained_data_dir)
    mount_point = sorted(p for p in root.iterdir() if p.is_dir())[0]
    for path in mount_point.iterdir():
        path.unlink()
    result = invoke(untrained_data_dir, "index", str(root), "--workers", "0", "--json")
    summary = json.loads(result.output)
    assert (summary["kept"], summary["removed"]) == (4, 0), summary
    assert "empty" in summary["warnings"][0] and catalog(untrained_data_dir) == before
    mount_point.rmdir()
    summary = json.loads(invoke(untrained_data_dir, "index", str(root), "--workers", "0",
                                "--json").output)
    assert (summary["kept"], summary["removed"]) == (0, 4), summary
