"""An emptied folder (an unmounted disk) must not wipe the catalog; ``--prune`` confirms."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..conftest import state
from .conftest import run


def empty_into(folder: Path, backup: Path) -> None:
    """What an unmounted disk looks like: the mount point is there, with nothing in it."""
    shutil.move(str(folder), str(backup))
    folder.mkdir()


def put_back(backup: Path, folder: Path) -> None:
    folder.rmdir()
    shutil.move(str(backup), str(folder))


def test_emptied_folder_keeps_rows_until_pruned(data_dir, collection, tmp_path):
    run(data_dir, "index", str(collection), "--workers", "0")
    ids_before, _ = state(data_dir)
    assert len(ids_before) == 60

    empty_into(collection, tmp_path / "backup")
    kept = run(data_dir, "index", str(collection), "--workers", "0")
    assert "60 of the 60 images indexed" in kept.stderr and "--prune" in kept.stderr
    assert "removed 0" in kept.stdout and "kept 60 missing" in kept.stdout
    catalog, index_ids = state(data_dir)
    assert catalog == ids_before and index_ids == set(ids_before)

    put_back(tmp_path / "backup", collection)
    back = run(data_dir, "index", str(collection), "--workers", "0")
    assert "unchanged 60" in back.stdout and state(data_dir)[0] == ids_before

    empty_into(collection, tmp_path / "backup")
    pruned = run(data_dir, "index", str(collection), "--workers", "0", "--prune")
    assert "removed 60" in pruned.stdout
    assert state(data_dir) == ({}, set())

    put_back(tmp_path / "backup", collection)
    returned = run(data_dir, "index", str(collection), "--workers", "0")
    assert "added 60" in returned.stdout
    catalog, index_ids = state(data_dir)
    assert catalog == ids_before and index_ids == set(ids_before)  # old ids, old links


def test_a_few_missing_files_are_removed_without_prune(data_dir, collection):
    run(data_dir, "index", str(collection), "--workers", "0")
    gone = sorted(collection.rglob("*.png"))[:5]
    for path in gone:
        path.unlink()
    result = run(data_dir, "index", str(collection), "--workers", "0")
    assert "removed 5" in result.stdout and "warning" not in result.stderr
    assert len(state(data_dir)[0]) == 55


def test_half_missing_is_removed_more_is_kept(data_dir, collection):
    run(data_dir, "index", str(collection), "--workers", "0")
    files = sorted(collection.rglob("*.png"))
    for path in files[::2]:  # every other one: no folder is left empty (see test_maintenance)
        path.unlink()
    assert "removed 30" in run(data_dir, "index", str(collection), "--workers", "0").stdout
    for path in files[1::2][:16]:  # 16 of the 30 left
        path.unlink()
    kept = run(data_dir, "index", str(collection), "--workers", "0")
    assert "removed 0" in kept.stdout and "16 of the 30 images" in kept.stderr


def test_pruned_copies_get_their_own_ids_back(data_dir, collection, tmp_path):
    first = sorted(collection.rglob("*.png"))[0]
    twins = [collection / f"twin-{i}.png" for i in range(3)]
    for twin in twins:
        shutil.copy(first, twin)
    run(data_dir, "index", str(collection), "--workers", "0")
    ids_before, _ = state(data_dir)
    empty_into(collection, tmp_path / "backup")
    run(data_dir, "index", str(collection), "--workers", "0", "--prune")
    put_back(tmp_path / "backup", collection)
    run(data_dir, "index", str(collection), "--workers", "0")
    assert state(data_dir)[0] == ids_before  # every copy at its own old id


def test_an_unreadable_subfolder_keeps_its_rows(data_dir, collection, monkeypatch):
    import os as os_module

    run(data_dir, "index", str(collection), "--workers", "0")
    hidden = sorted(p for p in collection.iterdir() if p.is_dir())[0]
    real_scandir = os_module.scandir

    def scandir(path="."):  # root reads every folder, so refuse one by hand
        if os_module.fspath(path) == str(hidden.resolve()):
            raise PermissionError(13, "Permission denied", os_module.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os_module, "scandir", scandir)
    result = run(data_dir, "index", str(collection), "--workers", "0")
    assert "removed 0" in result.stdout and "cannot read folder" in result.stderr
    assert len(state(data_dir)[0]) == 60
