"""``lookalike duplicates``: exact copies always together, the copy to keep first, the model's
own threshold, and clear refusals (the grouping itself: tests/indexer/test_duplicates.py)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil

import pytest
from PIL import Image

import search.duplicates as duplicates
from indexer.encoding import TorchEncoder
from search.duplicates import model_threshold

from .conftest import run


def duplicate_groups(data_dir, *args) -> dict:
    return json.loads(run(data_dir, "duplicates", "--json", *args).stdout)


def test_exact_copies_are_always_grouped_and_the_larger_copy_comes_first(untrained_data_dir,
                                                                         collection):
    original = sorted(collection.rglob("*.png"))[0]
    shutil.copy(original, collection / "same-bytes.png")
    Image.open(original).resize((64, 64)).save(collection / "larger.png")
    run(untrained_data_dir, "index", str(collection), "--workers", "0")
    # Threshold 1: nothing but identical content can pass; the exact copies still group.
    found = duplicate_groups(untrained_data_dir, "--threshold", "1")
    exact = [g for g in found["groups"] if g["exact"]]
    assert found["threshold"] == 1
    assert len(exact) == 1 and sorted(i["path"] for i in exact[0]["images"]) == sorted(
        [str(original), str(collection / "same-bytes.png")])
    assert exact[0]["id"] == min(i["id"] for i in exact[0]["images"])
    # A low threshold brings the resized copy in too, and it is the one to keep.
    group = next(g for g in duplicate_groups(untrained_data_dir, "--threshold", "0.99")["groups"]
                 if str(original) in [i["path"] for i in g["images"]])
    assert group["images"][0]["path"] == str(collection / "larger.png")
    assert group["images"][0]["similarity_to_first"] == pytest.approx(1.0)
    assert not group["exact"] and group["size"] == len(group["images"]) >= 3


def test_min_size_text_and_sheet(indexed, tmp_path):
    everything = duplicate_groups(indexed, "--threshold", "0")  # every image is a "copy"
    assert everything["groups"] and sum(g["size"] for g in everything["groups"]) <= 60
    big = min(g["size"] for g in everything["groups"]) + 1
    assert all(g["size"] >= big for g in duplicate_groups(
        indexed, "--threshold", "0", "--min-size", str(big))["groups"])
    text = run(indexed, "duplicates", "--threshold", "0", "--sheet", str(tmp_path / "s.png"))
    assert "group " in text.stdout
    assert Image.open(tmp_path / "s.png").size[0] == 8 * 96


def test_duplicates_of_a_data_dir_that_is_not_there_is_a_clear_error(untrained_data_dir, tmp_path):
    result = run(untrained_data_dir, "duplicates", ok=False)
    assert result.exit_code == 1 and "nothing indexed" in result.output
    bad = run(untrained_data_dir, "duplicates", "--threshold", "2", ok=False)
    assert bad.exit_code == 2 and "--threshold" in bad.output


def test_training_records_the_models_copy_calibration_and_duplicates_uses_it(data_dir,
                                                                              collection):
    encoder = TorchEncoder.from_path(data_dir / "model.pt", "cpu")
    copies = encoder.checkpoint.facts["copies"]
    assert copies["threshold"] == encoder.copy_threshold
    assert copies["separable"] == encoder.separates_copies == (copies["threshold"] is not None)
    run(data_dir, "index", str(collection), "--workers", "0")
    own = model_threshold(encoder.copy_threshold, encoder.separates_copies)
    assert duplicate_groups(data_dir)["threshold"] == own
    assert duplicate_groups(data_dir, "--threshold", "0.5")["threshold"] == 0.5


def test_a_threshold_too_low_for_the_library_is_refused_clearly(indexed, monkeypatch):
    monkeypatch.setattr(duplicates, "MAX_PAIRS", 100)  # 60 images at cosine ≥ -1: 3,600 pairs
    monkeypatch.setattr(duplicates, "CHUNK", 7)  # refused part-way, not after the whole search
    result = run(indexed, "duplicates", "--threshold", "-1", ok=False)
    assert result.exit_code == 1 and "raise the threshold" in result.output


# -- keeping by a rule, CSV -------------------------------------------------------------------

@pytest.fixture
def copies(untrained_data_dir, collection):
    """One picture four ways: the original (oldest), the same bytes in archive/, twice the
    pixels, and a JPEG; indexed. (data dir, {name: path})."""
    original = sorted(collection.rglob("*.png"))[0]
    (collection / "archive").mkdir()
    files = {"original": original, "archived": collection / "archive" / "copy.png",
             "bigger": collection / "bigger.png", "jpeg": collection / "photo.jpg"}
    shutil.copy(original, files["archived"])
    picture = Image.open(original)
    picture.resize((picture.width * 2, picture.height * 2)).save(files["bigger"])
    picture.convert("RGB").save(files["jpeg"], quality=98)
    os.utime(original, (1e9, 1e9))  # 2001: the oldest by far
    run(untrained_data_dir, "index", str(collection), "--workers", "0")
    return untrained_data_dir, {k: str(v) for k, v in files.items()}


def plan_for(data_dir, files: dict, *args: str) -> tuple[dict, dict]:
    """(the whole --keep answer, the plan of the group holding the original)."""
    paths = {i["id"]: i["path"] for g in duplicate_groups(data_dir, "--threshold", "0.99",
                                                          "--status", "all")["groups"]
             for i in g["images"]}  # before: --trash takes some out of the catalog
    found = json.loads(run(data_dir, "duplicates", "--threshold", "0.99", "--json",
                           *args).stdout)
    ours = next(p for p in found["plans"]
                if files["original"] in [paths[i] for i in [p["keep"], *p["others"]]])
    return found, {"keep": paths[ours["keep"]], "others": [paths[i] for i in ours["others"]]}


def test_a_rule_picks_the_copy_to_keep_and_changes_nothing_until_applied(copies):
    data_dir, files = copies
    group = next(g for g in duplicate_groups(data_dir, "--threshold", "0.99")["groups"]
                 if files["original"] in [i["path"] for i in g["images"]])
    assert set(files.values()) <= {i["path"] for i in group["images"]}
    for rule, kept in (("pixels", "bigger"), ("oldest", "original"), ("format=jpg", "jpeg"),
                       ("format=raw,heic,jpeg", "jpeg"),
                       (f"folder={os.path.dirname(files['archived'])}", "archived")):
        _, plan = plan_for(data_dir, files, "--keep", rule)
        assert plan["keep"] == files[kept], rule
        assert sorted(plan["others"]) == sorted(p for p in {i["path"] for i in group["images"]}
                                                if p != files[kept])
    assert duplicate_groups(data_dir, "--threshold", "0.99", "--status", "reviewed")[
        "groups"] == []  # previews decide nothing

    found, plan = plan_for(data_dir, files, "--keep", "pixels", "--apply")
    assert len(found["decisions"]) == len(found["plans"]) and found["trashed"] == []
    assert duplicate_groups(data_dir, "--threshold", "0.99")["groups"] == []
    reviewed = duplicate_groups(data_dir, "--threshold", "0.99", "--status", "reviewed")
    ours = next(g for g in reviewed["groups"]
                if files["original"] in [i["path"] for i in g["images"]])
    assert ours["images"][0]["path"] == files["bigger"]
    assert ours["decision"]["kind"] == "keep"
    assert all(os.path.exists(p) for p in files.values())


def test_trash_moves_the_others_and_csv_lists_every_image(copies):
    data_dir, files = copies
    rows = list(csv.DictReader(io.StringIO(run(data_dir, "duplicates", "--threshold", "0.99",
                                               "--csv").stdout)))
    assert set(files.values()) <= {r["path"] for r in rows}
    assert {r["decision"] for r in rows} == {""}
    bigger = next(r for r in rows if r["path"] == files["bigger"])
    original = next(r for r in rows if r["path"] == files["original"])
    assert int(bigger["pixels"]) == 4 * int(original["pixels"]) == 4 * int(
        original["width"]) * int(original["height"])
    assert int(original["bytes"]) == os.path.getsize(files["original"])

    found, plan = plan_for(data_dir, files, "--keep", "oldest", "--trash")
    assert plan["keep"] == files["original"]
    assert sorted(found["trashed"]) == sorted(i for p in found["plans"] for i in p["others"])
    assert os.path.exists(files["original"])
    assert not any(os.path.exists(p) for p in plan["others"])
    listed = json.loads(run(data_dir, "trash", "--list", "--json").stdout)
    assert sorted(t["id"] for t in listed) == sorted(found["trashed"])

    # What is left of the group is the one kept: a group of one is no group.
    def ours() -> list[dict]:
        rows = list(csv.DictReader(io.StringIO(run(
            data_dir, "duplicates", "--threshold", "0.99", "--status", "all", "--csv").stdout)))
        group = {r["group"] for r in rows if r["path"] == files["original"]}
        return [r for r in rows if r["group"] in group]

    assert ours() == []
    back = next(t["id"] for t in listed if t["path"] == plan["others"][0])
    run(data_dir, "trash", "--restore", str(back))
    assert sorted(r["decision"] for r in ours()) == ["copy", "keep"]  # the decision held


def test_bad_rules_and_mixed_options_are_refused(copies):
    data_dir, _ = copies
    for args, said in ((["--keep", "prettiest"], "unknown rule"),
                       (["--keep", "format="], "unknown rule"),
                       (["--apply"], "go with --keep"),
                       (["--keep", "pixels", "--status", "all"], "pending groups only"),
                       (["--json", "--csv"], "one of --json and --csv")):
        result = run(data_dir, "duplicates", *args, ok=False)
        assert result.exit_code == 2 and said in result.output, args
    assert duplicate_groups(data_dir, "--status", "reviewed")["groups"] == []
