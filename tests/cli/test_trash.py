"""`lookalike trash`: files move aside on their own disk, leave the index at once, and come
back with the same id, decisions and code; nothing is deleted but by --empty."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from search.catalog import ImageRecord
from search.decisions import list_decisions, record_decision
from search.store import Store
from search.trash import TRASH_FOLDER, list_trash

from ..conftest import index_into, make_model, state
from ..mounts import tmpfs
from ..synthetic import make_collection
from .conftest import run


def ids_by_path(data_dir: Path) -> dict[str, int]:
    return {path: i for i, path in state(data_dir)[0].items()}


def code_of(data_dir: Path, image_id: int) -> bytes:
    store = Store.open(data_dir)
    try:
        return store.record(image_id).code
    finally:
        store.close()


def hit_ids(data_dir: Path, query: Path, k: int = 5) -> list[int]:
    out = json.loads(run(data_dir, "search", str(query), "-k", str(k), "--json").stdout)
    return [r["id"] for r in out["results"]]


def test_trash_and_restore_keep_the_id_decisions_and_code(indexed, collection, tmp_path):
    ids = ids_by_path(indexed)
    first, second = sorted(collection.rglob("*.png"))[:2]
    victim, other = ids[str(first.resolve())], ids[str(second.resolve())]
    store = Store.open(indexed)
    decision = record_decision(store, "keep", [other, victim], other)
    store.close()
    code = code_of(indexed, victim)
    query = tmp_path / "query.png"
    query.write_bytes(first.read_bytes())
    assert hit_ids(indexed, query)[0] == victim

    out = run(indexed, "trash", str(victim)).stdout
    assert f"trashed {victim:6d}" in out
    [moved] = (collection / TRASH_FOLDER).glob(f"*-{victim}-{first.name}")
    assert not first.exists() and moved.read_bytes() == query.read_bytes()
    catalog, in_index = state(indexed)
    assert victim not in catalog and victim not in in_index
    assert victim not in hit_ids(indexed, query, 20)
    listed = json.loads(run(indexed, "trash", "--list", "--json").stdout)
    assert [(t["id"], t["path"], t["present"]) for t in listed] == [
        (victim, str(first.resolve()), True)]

    # The indexer never looks inside the trash, and the trash outlives a re-index.
    summary = index_into(indexed, collection)
    assert summary["added"] == 0 and victim not in state(indexed)[0]

    out = run(indexed, "trash", "--restore", str(victim)).stdout
    assert f"restored {victim:6d}" in out and "encodes it" not in out
    assert first.read_bytes() == query.read_bytes() and not moved.exists()
    catalog, in_index = state(indexed)
    assert catalog[victim] == str(first.resolve()) and victim in in_index
    assert code_of(indexed, victim) == code
    assert hit_ids(indexed, query)[0] == victim
    store = Store.open(indexed)
    assert [d.id for d in list_decisions(store)] == [decision.id]
    store.close()
    assert json.loads(run(indexed, "trash", "--list", "--json").stdout) == []
    assert index_into(indexed, collection)["unchanged"] == len(catalog)


def test_bad_requests_change_nothing(indexed, collection):
    ids = ids_by_path(indexed)
    files = sorted(collection.rglob("*.png"))
    one = ids[str(files[0].resolve())]
    before = state(indexed)

    missing = run(indexed, "trash", str(one), "999999", ok=False)
    assert missing.exit_code == 1 and "no image with id 999999" in missing.output
    assert state(indexed) == before and files[0].exists()
    for args, said in ((["trash"], "name the images"),
                       (["trash", "--list", "--empty"], "choose one of"),
                       (["trash", "--older-than", "3"], "--older-than goes with --empty"),
                       (["trash", "--empty", str(one)], "take no IMAGE_IDS")):
        result = run(indexed, *args, ok=False)
        assert result.exit_code == 2 and said in result.output

    # A file swapped since it was indexed is not the image the catalog describes.
    files[1].write_bytes(files[2].read_bytes() + b"\0")
    swapped = run(indexed, "trash", str(ids[str(files[1].resolve())]), ok=False)
    assert "changed since it was indexed" in swapped.output and files[1].exists()

    run(indexed, "trash", str(one))
    files[0].write_bytes(b"a new file where the trashed one was")
    taken = run(indexed, "trash", "--restore", str(one), ok=False)
    assert "something else is at" in taken.output
    assert files[0].read_bytes() == b"a new file where the trashed one was"
    assert len(list((collection / TRASH_FOLDER).glob(f"*-{one}-{files[0].name}"))) == 1
    assert "no image with id 7777 in the trash" in run(
        indexed, "trash", "--restore", "7777", ok=False).output


def test_only_empty_deletes_and_older_than_spares_the_recent(indexed, collection):
    ids = ids_by_path(indexed)
    files = sorted(collection.rglob("*.png"))[:3]
    chosen = [ids[str(f.resolve())] for f in files]
    run(indexed, "trash", *map(str, chosen))
    trash = collection / TRASH_FOLDER
    assert len(list(trash.iterdir())) == 3

    for days in ("1", "1e300"):  # the second is before any calendar: nothing is that old
        assert run(indexed, "trash", "--empty", "--older-than", days, "--json").stdout.strip() \
            == "[]"
    assert len(list(trash.iterdir())) == 3
    gone = json.loads(run(indexed, "trash", "--empty", "--json").stdout)
    assert sorted(t["id"] for t in gone) == sorted(chosen)
    assert list(trash.iterdir()) == [] and not any(f.exists() for f in files)
    assert "no image with id" in run(indexed, "trash", "--restore", str(chosen[0]), ok=False).output
    assert state(indexed)[0].keys().isdisjoint(chosen)


def test_the_trash_stays_on_the_files_own_filesystem(untrained_data_dir, tmp_path):
    root = tmp_path / "photos"
    make_collection(root / "here", per_class=3)
    with tmpfs(root / "other-disk", "8m") as disk:
        make_collection(disk / "album", per_class=3)
        index_into(untrained_data_dir, root)
        ids = ids_by_path(untrained_data_dir)
        on_disk = sorted((disk / "album").rglob("*.png"))[0]
        at_home = sorted((root / "here").rglob("*.png"))[0]
        run(untrained_data_dir, "trash", str(ids[str(on_disk)]), str(ids[str(at_home)]))
        store = Store.open(untrained_data_dir)
        places = {t.path: Path(t.trash_path) for t in list_trash(store)}
        store.close()
        assert places[str(on_disk)].parent == disk / TRASH_FOLDER
        assert os.stat(places[str(on_disk)]).st_dev == os.stat(disk).st_dev
        assert places[str(at_home)].parent == root / TRASH_FOLDER
        assert os.stat(places[str(at_home)]).st_dev == os.stat(root).st_dev
        run(untrained_data_dir, "trash", "--restore", str(ids[str(on_disk)]))
        assert on_disk.exists()


def test_a_restore_after_a_new_model_keeps_the_id_for_the_next_index(indexed, collection):
    ids = ids_by_path(indexed)
    first = sorted(collection.rglob("*.png"))[0]
    victim = ids[str(first.resolve())]
    run(indexed, "trash", str(victim))
    make_model(indexed / "model.pt", seed=7)
    index_into(indexed, collection, reencode=True)
    out = run(indexed, "trash", "--restore", str(victim)).stdout
    assert "the next `lookalike index` encodes it" in out
    assert victim not in state(indexed)[0]
    index_into(indexed, collection)
    catalog, in_index = state(indexed)
    assert catalog[victim] == str(first.resolve()) and victim in in_index
    store = Store.open(indexed)
    with store.sessions() as s:
        assert np.frombuffer(s.get(ImageRecord, victim).code, np.float32).shape[0] > 0
    store.close()


# -- a SIGKILL in the middle of a move --------------------------------------------------------

def _die_at_the_rename(args: list[str], after: bool) -> None:
    """``lookalike ARGS`` in a child process that SIGKILLs itself at its first rename,
    before the file moves or just after."""
    from web.cli import cli

    rename = os.rename

    def dying(src, dst):
        if after:
            rename(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)

    os.rename = dying
    cli.main(args, prog_name="lookalike")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("restoring", [False, True], ids=["trash", "restore"])
@pytest.mark.parametrize("after", [False, True], ids=["before-the-move", "after-the-move"])
def test_a_kill_mid_move_loses_no_file_and_the_next_run_settles_it(indexed, collection,
                                                                  restoring, after):
    ids = ids_by_path(indexed)
    first = sorted(collection.rglob("*.png"))[0]
    content, victim = first.read_bytes(), ids[str(first.resolve())]
    code = code_of(indexed, victim)
    if restoring:
        run(indexed, "trash", str(victim))
    args = ["--data-dir", str(indexed), "-q", "trash", str(victim)] + (
        ["--restore"] if restoring else [])
    child = multiprocessing.get_context("forkserver").Process(
        target=_die_at_the_rename, args=(args, after))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL

    where = [p for p in [first, *(collection / TRASH_FOLDER).glob("*")] if p.exists()]
    assert len(where) == 1 and where[0].read_bytes() == content  # one copy, whole

    summary = index_into(indexed, collection)  # the next writer settles the journal
    assert summary["added"] == 0 and summary["removed"] == 0
    catalog, in_index = state(indexed)
    listed = json.loads(run(indexed, "trash", "--list", "--json").stdout)
    if where[0] == first:  # the rename never happened: the image is in the collection
        assert catalog[victim] == str(first.resolve()) and victim in in_index
        assert code_of(indexed, victim) == code and listed == []
    else:  # it did: the image is in the trash, and can come back
        assert victim not in catalog and victim not in in_index
        assert [t["id"] for t in listed] == [victim]
        run(indexed, "trash", "--restore", str(victim))
        assert code_of(indexed, victim) == code
    assert len(catalog) + len(listed) == len(ids)
    assert "problem" not in run(indexed, "check").stdout  # exit status 0 as well


def test_a_file_a_kept_link_points_to_stays(indexed, collection):
    target = sorted(collection.rglob("*.png"))[0]
    link = collection / "favourite.png"
    link.symlink_to(target)
    index_into(indexed, collection)
    ids = ids_by_path(indexed)
    refused = run(indexed, "trash", str(ids[str(target)]), ok=False)
    assert "is a link to it" in refused.output and target.exists()
    run(indexed, "trash", str(ids[str(target)]), str(ids[str(link)]))  # both may go
    assert not target.exists() and not os.path.lexists(link)


def test_two_data_dirs_over_one_folder_never_share_a_trash_file(indexed, collection, tmp_path):
    other = tmp_path / "other-data"
    other.mkdir()
    make_model(other / "model.pt")
    index_into(other, collection)
    first, second = sorted(collection.rglob("*.png"))[:2]
    mine, theirs = ids_by_path(indexed)[str(first)], ids_by_path(other)[str(second)]
    run(indexed, "trash", str(mine))
    run(other, "trash", str(theirs))
    names = sorted(p.name for p in (collection / TRASH_FOLDER).iterdir())
    assert len(names) == 2 and names[0].split("-")[0] != names[1].split("-")[0]
    run(indexed, "trash", "--empty")
    assert [p.name for p in (collection / TRASH_FOLDER).iterdir()] == [
        n for n in names if n.endswith(second.name)]  # theirs is untouched
    run(other, "trash", "--restore", str(theirs))
    assert second.exists()
