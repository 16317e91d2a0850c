"""Near-duplicate grouping: complete linkage so that a chain of weak links does not merge,
every pair within the threshold, the cut a model calibrates (the command:
tests/cli/test_duplicates.py)."""
from __future__ import annotations

import numpy as np
import pytest

import search.duplicates as duplicates
from indexer.validation import precise_threshold
from search.duplicates import IDENTICAL, complete_linkage_groups, model_threshold


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
