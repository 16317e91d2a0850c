"""`lookalike search` and the other commands that compare codes, through click's CliRunner:
they find the same class, refuse an index another model built (as the web app does), and
say what to run when there is nothing to search."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import TINY, make_model
from ..synthetic import CLASSES
from .conftest import run


def index(data_dir: Path, folder: Path) -> None:
    run(data_dir, "index", str(folder), "--workers", "0")


def test_search_finds_same_class(data_dir, collection):
    index(data_dir, collection)
    hits_same, total = 0, 0
    for cls in CLASSES:
        for query in sorted((collection / cls).glob("*.png"))[:5]:
            out = run(data_dir, "search", str(query), "-k", "6", "--json").stdout
            results = json.loads(out)["results"]
            assert results[0]["path"] == str(query.resolve())  # itself first
            top5 = results[1:6]
            hits_same += sum(Path(r["path"]).parent.name == cls for r in top5)
            total += len(top5)
    precision = hits_same / total
    assert precision >= 0.7, precision  # chance is 1/3


def test_search_sheet_and_errors(data_dir, collection, tmp_path):
    query = next(collection.rglob("*.png"))
    missing_index = run(data_dir, "search", str(query), ok=False)
    assert missing_index.exit_code == 1 and "index FOLDER" in missing_index.output
    index(data_dir, collection)
    sheet = tmp_path / "sheet.png"
    run(data_dir, "search", str(query), "-k", "3", "--sheet", str(sheet))
    img = Image.open(sheet)
    assert img.size[0] >= 4 * 96 and img.size[1] >= 2 * 96
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    result = run(data_dir, "search", str(bad), ok=False)
    assert result.exit_code == 1 and "not a recognised image" in result.output


def test_clear_errors_without_a_model(tmp_path, collection):
    query = next(collection.rglob("*.png"))
    result = run(tmp_path / "empty", "search", str(query), ok=False)
    assert result.exit_code == 1 and "no model checkpoint" in result.output
    assert "lookalike" in result.output and "train" in result.output
    assert not (tmp_path / "empty").exists()  # a read-only command creates nothing


def test_read_only_commands_refuse_a_data_dir_with_nothing_indexed(tmp_path, collection,
                                                                   data_dir):
    """A mistyped --data-dir gets an error, not a new empty catalog answering '0 images'."""
    typo = tmp_path / "lookalike-dta"
    result = run(typo, "stats", ok=False)
    assert result.exit_code == 1 and "nothing indexed" in result.output
    assert "lookalike --data-dir" in result.output and "index FOLDER" in result.output
    assert not typo.exists()
    query = next(collection.rglob("*.png"))  # data_dir holds a model and nothing else
    result = run(data_dir, "search", str(query), ok=False)
    assert result.exit_code == 1 and "nothing indexed" in result.output
    assert sorted(p.name for p in data_dir.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("latent_dim", [TINY.latent_dim, TINY.latent_dim * 2])
def test_search_refuses_an_index_of_another_model(data_dir, collection, latent_dim):
    index(data_dir, collection)
    query = sorted(collection.rglob("*.png"))[0]
    assert run(data_dir, "search", str(query), "-k", "3").stdout.count("\n") == 3

    make_model(data_dir / "model.pt", config=replace(TINY, latent_dim=latent_dim))  # "retrained"
    for args in (["search", str(query)], ["arithmetic", str(query), str(query), str(query),
                                          "-o", str(data_dir / "a.png")]):
        result = run(data_dir, *args, ok=False)
        assert result.exit_code == 1, result.output
        assert "another model" in result.output or "different model" in result.output
        assert "index --reencode" in result.output
        assert "Traceback" not in result.output

    run(data_dir, "index", str(collection), "--workers", "0", "--reencode")
    assert run(data_dir, "search", str(query), "-k", "3").stdout.count("\n") == 3
