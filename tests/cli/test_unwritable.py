"""A data dir that cannot be written (a read-only mount, a full disk): every command that only
reads it works; every command that writes says so in one sentence (exit 2), changes nothing,
and the data dir works again once it can be written."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .conftest import invoke
from ..mounts import fill, read_only_view, tmpfs

pytestmark = pytest.mark.sqlite_only  # about SQLite's files and the data dir's folder

READ_ONLY = "cannot be written (read-only file system)"
DISK_FULL = "disk full while writing"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under *folder* and the hash of its bytes; SQLite's shared-memory index of
    its WAL is memory, not data, and readers write to it."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith("-shm")}


def some_image(collection: Path) -> Path:
    return sorted(collection.rglob("*.png"))[0]


def reads_work(data_dir: Path, collection: Path) -> None:
    """What a person does with a data dir they may only read: all of it answers."""
    stats = invoke(data_dir, "stats", "--json")
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["images"] == len(list(collection.rglob("*.png")))
    query = some_image(collection)
    found = invoke(data_dir, "search", str(query), "--json", "-k", "3")
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["results"][0]["path"] == str(query.resolve())
    check = invoke(data_dir, "check")
    assert check.exit_code == 0 and "ok" in check.output, check.output
    groups = invoke(data_dir, "duplicates", "--json")
    assert groups.exit_code == 0 and "groups" in json.loads(groups.output), groups.output
    outliers = invoke(data_dir, "anomalies", "--top", "3", "--json")
    assert outliers.exit_code == 0 and len(json.loads(outliers.output)) == 3, outliers.output
    listed = invoke(data_dir, "exclusions", "--json")
    assert listed.exit_code == 0 and json.loads(listed.output) == [], listed.output


def writes_are_refused(data_dir: Path, collection: Path, sentence: str) -> None:
    for args in (["index", str(collection), "--workers", "0"], ["remove", "1"],
                 ["exclusions", "--lift", "1"], ["check", "--repair"], ["reindex"],
                 ["train", str(collection), "--epochs", "1"]):
        result = invoke(data_dir, *args)
        assert result.exit_code == 2, (args, result.output)
        assert sentence in result.output, (args, result.output)
        assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output


def test_a_read_only_data_dir_answers_every_read_and_refuses_every_write(indexed, collection,
                                                                         tmp_path):
    before = snapshot(indexed)
    with read_only_view(indexed, tmp_path / "backup") as view:
        reads_work(view, collection)
        writes_are_refused(view, collection, READ_ONLY)
    assert snapshot(indexed) == before


def test_a_full_disk_answers_every_read_and_refuses_every_write_until_freed(indexed, collection,
                                                                            tmp_path):
    with tmpfs(tmp_path / "disk", "16m") as disk:
        data_dir = disk / "data"
        data_dir.mkdir()
        for f in indexed.iterdir():
            (data_dir / f.name).write_bytes(f.read_bytes())
        before = snapshot(data_dir)
        filler = fill(disk)
        reads_work(data_dir, collection)
        writes_are_refused(data_dir, collection, DISK_FULL)
        filler.unlink()
        # Nothing was lost, and nothing holds the data dir: the next writer works.
        assert {k: v for k, v in snapshot(data_dir).items() if k in before} == before
        (collection / "new").mkdir()
        some_image(collection).rename(collection / "new" / "moved.png")
        result = invoke(data_dir, "index", str(collection), "--workers", "0")
        assert result.exit_code == 0, result.output
        assert invoke(data_dir, "check").exit_code == 0
