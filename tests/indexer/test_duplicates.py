"""Near-duplicate groups (`lookalike duplicates`): exact copies always together, complete
linkage so that a chain of weak links does not merge, the copy to keep first."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import search.duplicates as duplicates
from indexer.encoding import TorchEncoder
from indexer.validation import precise_threshold
from search.duplicates import IDENTICAL, complete_linkage_groups, model_threshold

from ..conftest import run


def on_circle(*degrees: float) -> np.ndarray:
    """2-d codes at these angles: cosine similarity = cos(angle between them)."""
    return np.array([[np.cos(t), np.sin(t)] for t in np.radians(degrees)], np.float32)


COS_25 = float(np.cos(np.radians(25)))


@pytest.mark.parametrize("linkage_limit", [duplicates.LINKAGE_LIMIT, 1])  # dense, greedy
def test_a_chain_of_weak_links_is_not_merged(monkeypatch, linkage_limit):
    monkeypatch.setattr(duplicates, "LINKAGE_LIMIT", linkage_limit)
    # a ~ b and b ~ c are within 25°, a and c 40° apart; d is far from all.
    groups = complete_linkage_groups(on_circle(0, 20, 40, 180), COS_25)
    assert len(groups) == 1 and len(groups[0]) == 2 and 1 in groups[0]
    assert sorted(map(sorted, complete_linkage_groups(on_circle(0, 10, 20, 180), COS_25))) == [
        [0, 1, 2]]


@pytest.mark.parametrize("linkage_limit", [duplicates.LINKAGE_LIMIT, 1])
def test_every_pair_in_a_group_is_within_the_threshold(monkeypatch, linkage_limit):
    monkeypatch.setattr(duplicates, "LINKAGE_LIMIT", linkage_limit)
    rng = np.random.default_rng(0)
    codes = np.concatenate([c + 0.3 * rng.normal(size=(6, 16)) for c in rng.normal(size=(30, 16))])
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    groups = complete_linkage_groups(codes, 0.8)
    assert groups and all(len(g) > 1 for g in groups)
    assert len({i for g in groups for i in g}) == sum(len(g) for g in groups)  # disjoint
    for g in groups:
        sims = codes[g] @ codes[g].T
        assert sims.min() >= 0.8 - 1e-5


def test_no_codes_no_groups():
    assert complete_linkage_groups(np.zeros((0, 4), np.float32), 0.5) == []
    assert complete_linkage_groups(np.ones((1, 4), np.float32), 0.5) == []


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


def test_chunked_search_finds_the_same_groups(monkeypatch):
    rng = np.random.default_rng(1)
    codes = np.concatenate([c + 0.2 * rng.normal(size=(4, 8)) for c in rng.normal(size=(12, 8))])
    whole = sorted(map(sorted, complete_linkage_groups(codes, 0.8)))
    monkeypatch.setattr(duplicates, "CHUNK", 5)
    assert sorted(map(sorted, complete_linkage_groups(codes, 0.8))) == whole and whole


def test_the_precise_cut_and_the_models_own_threshold():
    copies, look_alikes = np.array([0.95, 0.9, 0.85, 0.6]), np.array([0.5, 0.88, 0.7, 0.3])
    assert precise_threshold(copies, look_alikes, 0.9) == 0.9  # 2 copies, 0 look-alikes
    assert precise_threshold(copies, look_alikes, 0.7) == 0.85  # 3 copies, 1 look-alike
    assert precise_threshold(np.array([0.5]), np.array([0.9]), 0.9) is None
    assert model_threshold(0.7, True) == 0.7
    assert model_threshold(None, False) == IDENTICAL > 0.999  # cannot tell: identical only
    assert model_threshold(None, True) == 0.37  # a checkpoint from before calibration
