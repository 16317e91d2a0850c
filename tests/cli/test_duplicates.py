"""``lookalike duplicates``: exact copies always together, the copy to keep first, the model's
own threshold, and clear refusals (the grouping itself: tests/indexer/test_duplicates.py)."""
from __future__ import annotations

import json
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
