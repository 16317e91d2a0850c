"""A reviewer's decisions on duplicate groups: contents kept apart never group again, a kept
image comes first, and both hold across moved files and a new model, by content."""
from __future__ import annotations

import shutil
from datetime import datetime

import pytest

import search.duplicates as duplicates
from indexer.encoding import TorchEncoder
from search.decisions import (KEEP, NOT_DUPLICATES, BadDecision, Decision, UnknownImages,
                              list_decisions, record_decision, undo_decision)
from search.duplicates import complete_linkage_groups, find_duplicates, with_status
from search.store import Store

from ..conftest import index_into, make_model
from .test_duplicates import COS_25, on_circle


@pytest.mark.parametrize("linkage_limit", [duplicates.LINKAGE_LIMIT, 1])  # dense, greedy
def test_rows_kept_apart_never_share_a_group(monkeypatch, linkage_limit):
    monkeypatch.setattr(duplicates, "LINKAGE_LIMIT", linkage_limit)
    codes = on_circle(0, 10, 20, 180)
    assert sorted(map(sorted, complete_linkage_groups(codes, COS_25))) == [[0, 1, 2]]
    split = complete_linkage_groups(codes, COS_25, apart=[[0, 2]])
    assert split and all(not {0, 2} <= set(g) for g in split)
    assert complete_linkage_groups(codes, COS_25, apart=[[0, 1, 2]]) == []
    # Even where every pair passes (cosine ≥ -1), a decision still holds.
    everything = complete_linkage_groups(codes, -1.0, apart=[[0, 3]])
    assert all(not {0, 3} <= set(g) for g in everything)
    assert sum(len(g) for g in everything) >= 3  # the rest still group


def decision(kind: str, contents: set[str], keep: str | None = None) -> Decision:
    return Decision(1, kind, frozenset(contents), 7 if keep else None, keep, datetime(2026, 1, 1))


def test_which_groups_a_decision_settles():
    keep = decision(KEEP, {"a", "b", "c"}, keep="a")
    assert keep.covers(frozenset("ab")) and keep.covers(frozenset("abc"))
    assert not keep.covers(frozenset("abd"))  # a new copy: asked again
    assert not keep.covers(frozenset("bc"))  # the kept one is not in it
    apart = decision(NOT_DUPLICATES, {"a", "b"})
    assert not apart.covers(frozenset("a"))  # a's identical files are still copies
    assert decision(NOT_DUPLICATES, {"a"}).covers(frozenset("a"))  # dismissed identical files


@pytest.fixture
def with_copies(untrained_data_dir, collection):
    """The collection indexed, with two identical copies of one image and a larger copy."""
    original = sorted(collection.rglob("*.png"))[0]
    shutil.copy(original, collection / "same-bytes.png")
    shutil.copy(original, collection / "same-again.png")
    index_into(untrained_data_dir, collection)
    return untrained_data_dir, original


def groups_of(data_dir, threshold: float = 1.0, status: str = "all"):
    store = Store.open(data_dir)
    sha = TorchEncoder.from_path(data_dir / "model.pt", "cpu").sha256
    try:
        return with_status(find_duplicates(store, sha, threshold, 2, list_decisions(store)),
                           status)
    finally:
        store.close()


def test_a_kept_image_stays_first_across_a_move_and_a_new_model(with_copies, collection):
    data_dir, original = with_copies
    (group,) = groups_of(data_dir)
    kept = group.members[-1]
    store = Store.open(data_dir)
    recorded = record_decision(store, KEEP, [m.id for m in group.members], kept.id)
    store.close()
    moved = collection / "moved-away.png"
    shutil.move(kept.path, moved)
    index_into(data_dir, collection, prune=True)
    make_model(data_dir / "model.pt", seed=1)  # every code changes
    index_into(data_dir, collection)
    assert groups_of(data_dir, status="pending") == []
    (settled,) = groups_of(data_dir, status="reviewed")
    assert settled.decision.id == recorded.id
    assert settled.members[0].path == str(moved)
    shutil.copy(original, collection / "a-third-copy.png")  # the same content: still settled
    index_into(data_dir, collection)
    assert len(groups_of(data_dir, status="reviewed")[0].members) == 4


def test_bad_decisions_record_nothing(with_copies):
    data_dir, _ = with_copies
    store = Store.open(data_dir)
    try:
        with pytest.raises(BadDecision, match="at least two"):
            record_decision(store, NOT_DUPLICATES, [1, 1])
        with pytest.raises(BadDecision, match="unknown decision"):
            record_decision(store, "delete", [1, 2])
        with pytest.raises(UnknownImages, match="99999"):
            record_decision(store, KEEP, [1, 99999], 1)
        assert list_decisions(store) == []
        made = record_decision(store, NOT_DUPLICATES, [1, 2])
        assert [d.id for d in list_decisions(store)] == [made.id]
        assert undo_decision(store, made.id) and not undo_decision(store, made.id)
        assert list_decisions(store) == []
    finally:
        store.close()


def test_decisions_outlive_reopening_the_catalog(with_copies):
    data_dir, _ = with_copies
    store = Store.open(data_dir)
    made = record_decision(store, NOT_DUPLICATES, [1, 2, 3])
    store.close()
    again = Store.open(data_dir)  # migrations run again on every open: a no-op at head
    try:
        (kept,) = list_decisions(again)
        assert kept.id == made.id and len(kept.contents) == len(made.contents)
    finally:
        again.close()
