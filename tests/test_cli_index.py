"""`lookalike index` and `lookalike search` end to end, through click's CliRunner."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from web.cli import cli
from search.catalog import ImageRecord
from search.store import Store
from sqlalchemy import select

from .synthetic import CLASSES, make_bad_files, make_collection


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner, data_dir, *args, ok=True):
    result = runner.invoke(cli, ["--data-dir", str(data_dir), "-q", *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def index_json(runner, data_dir, folder) -> dict:
    out = run(runner, data_dir, "index", str(folder), "--json", "--workers", "0").stdout
    return json.loads(out)


def state(data_dir: Path) -> tuple[dict[int, str], set[int]]:
    store = Store.open(data_dir)
    with store.sessions() as s:
        catalog = {r.id: r.path for r in s.scalars(select(ImageRecord))}
    return catalog, set(store.load_index().ids().tolist())


def test_bad_files_are_listed_and_skipped(runner, data_dir, collection):
    good_jpeg = collection / "photo.jpg"
    Image.new("RGB", (64, 48), (120, 30, 200)).save(good_jpeg)
    bad = make_bad_files(collection / "junk", good_jpeg)
    result = run(runner, data_dir, "index", str(collection), "--workers", "2")
    assert "failed 5" in result.stdout and "added 61" in result.stdout
    for path in bad.values():
        assert str(path.resolve()) in result.stderr
    assert "empty file" in result.stderr and "not a recognised image" in result.stderr
    catalog, index_ids = state(data_dir)
    assert len(catalog) == 61 and set(catalog) == index_ids


def test_incremental_reindex(runner, data_dir, collection):
    first = index_json(runner, data_dir, collection)
    assert first["added"] == 60 and first["failed"] == 0
    again = index_json(runner, data_dir, collection)
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

    summary = index_json(runner, data_dir, collection)
    assert (summary["added"], summary["removed"], summary["moved"], summary["updated"]) == (3, 2, 1, 1)
    after, index_ids = state(data_dir)
    assert set(after) == index_ids
    assert sorted(after.values()) == sorted(str(p.resolve()) for p in collection.rglob("*.png"))
    # The moved file kept its id (and so its code); the changed file kept its id too.
    assert after[by_path[str(moved_from.resolve())]] == str(moved_to.resolve())
    assert by_path[str(changed.resolve())] in after
    for f in deleted:
        assert by_path[str(f.resolve())] not in after and by_path[str(f.resolve())] not in index_ids


def test_touched_but_identical_file_is_not_reencoded(runner, data_dir, collection):
    index_json(runner, data_dir, collection)
    f = next(collection.rglob("*.png"))
    f.touch()
    summary = index_json(runner, data_dir, collection)
    assert summary["encoded"] == 0 and summary["unchanged"] == 60


def test_index_trains_a_model_when_there_is_none(runner, tmp_path, collection):
    data = tmp_path / "fresh"
    result = run(runner, data, "index", str(collection), "--epochs", "1", "--image-size", "16",
                 "--workers", "0")
    assert (data / "model.pt").is_file() and "added 60" in result.stdout


def test_index_after_model_change_reencodes_everything(runner, data_dir, collection, tmp_path):
    index_json(runner, data_dir, collection)
    run(runner, data_dir, "train", str(collection), "-o", str(tmp_path / "m2.pt"),
        "--epochs", "1", "--image-size", "32", "--latent-dim", "8")
    out = run(runner, data_dir, "index", str(collection), "--model", str(tmp_path / "m2.pt"),
              "--json", "--workers", "0").stdout
    assert json.loads(out)["updated"] == 60
    assert Store.open(data_dir).load_index().dim == 8


def test_search_finds_same_class(runner, data_dir, collection):
    index_json(runner, data_dir, collection)
    hits_same, total = 0, 0
    for cls in CLASSES:
        for query in sorted((collection / cls).glob("*.png"))[:5]:
            out = run(runner, data_dir, "search", str(query), "-k", "6", "--json").stdout
            results = json.loads(out)["results"]
            assert results[0]["path"] == str(query.resolve())  # itself first
            top5 = results[1:6]
            hits_same += sum(Path(r["path"]).parent.name == cls for r in top5)
            total += len(top5)
    precision = hits_same / total
    assert precision >= 0.7, precision  # chance is 1/3


def test_search_sheet_and_errors(runner, data_dir, collection, tmp_path):
    query = next(collection.rglob("*.png"))
    missing_index = run(runner, data_dir, "search", str(query), ok=False)
    assert missing_index.exit_code == 1 and "index FOLDER" in missing_index.output
    index_json(runner, data_dir, collection)
    sheet = tmp_path / "sheet.png"
    run(runner, data_dir, "search", str(query), "-k", "3", "--sheet", str(sheet))
    img = Image.open(sheet)
    assert img.size[0] >= 4 * 96 and img.size[1] >= 2 * 96
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    result = run(runner, data_dir, "search", str(bad), ok=False)
    assert result.exit_code == 1 and "not a recognised image" in result.output


def test_clear_errors_without_a_model(runner, tmp_path, collection):
    query = next(collection.rglob("*.png"))
    result = run(runner, tmp_path / "empty", "search", str(query), ok=False)
    assert result.exit_code == 1 and "no model checkpoint" in result.output
    assert "lookalike" in result.output and "train" in result.output
    assert not (tmp_path / "empty").exists()  # a read-only command creates nothing


def test_read_only_commands_refuse_a_data_dir_with_nothing_indexed(runner, tmp_path, collection,
                                                                   data_dir):
    """A mistyped --data-dir gets an error, not a new empty catalog answering '0 images'."""
    typo = tmp_path / "lookalike-dta"
    result = run(runner, typo, "stats", ok=False)
    assert result.exit_code == 1 and "nothing indexed" in result.output
    assert "lookalike --data-dir" in result.output and "index FOLDER" in result.output
    assert not typo.exists()
    query = next(collection.rglob("*.png"))  # data_dir holds a model and nothing else
    result = run(runner, data_dir, "search", str(query), ok=False)
    assert result.exit_code == 1 and "nothing indexed" in result.output
    assert sorted(p.name for p in data_dir.iterdir()) == ["model.pt"]


def test_stats(runner, data_dir, collection):
    index_json(runner, data_dir, collection)
    info = json.loads(run(runner, data_dir, "stats", "--json").stdout)
    assert info["images"] == 60 and info["index_vectors"] == 60
    assert info["index_type"] == "IndexFlatIP" and info["metric"] == "cosine"


def test_ivf_index_keeps_working_through_incremental_changes(runner, data_dir, collection):
    out = run(runner, data_dir, "index", str(collection), "--json", "--workers", "0",
              "--index-type", "ivf").stdout
    assert json.loads(out)["added"] == 60
    info = json.loads(run(runner, data_dir, "stats", "--json").stdout)
    assert info["index_type"].startswith("IndexIVFFlat")
    query = sorted((collection / "red-circles").glob("*.png"))[3]
    hits = json.loads(run(runner, data_dir, "search", str(query), "-k", "3", "--json").stdout)
    assert hits["results"][0]["path"] == str(query.resolve())
    for f in sorted(collection.rglob("*.png"))[:4]:
        f.unlink()
    run(runner, data_dir, "index", str(collection), "--workers", "0")  # the choice is kept
    catalog, index_ids = state(data_dir)
    assert len(catalog) == 56 and set(catalog) == index_ids
    info = json.loads(run(runner, data_dir, "stats", "--json").stdout)
    assert info["index_type"].startswith("IndexIVFFlat") and info["index_choice"] == "ivf"
    # A repair rebuilds the index the data dir asked for, not the size's default.
    (data_dir / "index.faiss").unlink()
    assert run(runner, data_dir, "check", "--repair").exit_code == 0
    assert json.loads(run(runner, data_dir, "stats", "--json").stdout)["index_type"].startswith(
        "IndexIVFFlat")
    # Back on auto, a collection this small returns to the exact index.
    run(runner, data_dir, "index", str(collection), "--workers", "0", "--index-type", "auto")
    info = json.loads(run(runner, data_dir, "stats", "--json").stdout)
    assert info["index_type"] == "IndexFlatIP" and info["index_choice"] == "auto"


def test_index_type_is_chosen_by_size():
    from search.vector_index import EXACT_LIMIT, choose_index_type

    assert choose_index_type(10) == "flat"
    assert choose_index_type(EXACT_LIMIT) == "ivf"
    assert choose_index_type(10, "ivf") == "ivf"
    with pytest.raises(ValueError):
        choose_index_type(10, "hnsw")
