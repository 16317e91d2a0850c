"""The FAISS wrapper: ids are catalog keys, cosine by default, atomic saves."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from search.vector_index import (COMPRESSED_LIMIT, EXACT_LIMIT, VectorIndex, VectorIndexError,
                                 build_index, choose_index_type, load_index, normalise,
                                 pq_subquantizers)

pytestmark = pytest.mark.any_catalog


def _codes(n=50, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_cosine_search_returns_catalog_ids_best_first():
    codes = _codes()
    ids = np.arange(1000, 1050)
    index = VectorIndex.create(8)
    index.add(ids, codes)
    scores, found = index.search(codes[7:8] * 3.0, 5)  # scale does not matter for cosine
    assert found[0, 0] == 1007 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert (np.diff(scores[0]) <= 1e-6).all()
    expected = normalise(codes) @ normalise(codes[7:8]).T
    assert scores[0, 1] == pytest.approx(np.sort(expected[:, 0])[-2], abs=1e-5)


def test_k_larger_than_index_pads_with_minus_one_or_clamps():
    index = VectorIndex.create(8)
    index.add(np.array([5, 9]), _codes(2))
    scores, found = index.search(_codes(1, seed=3), 10)
    assert set(found[0].tolist()) <= {5, 9, -1} and {5, 9} <= set(found[0].tolist())


def test_remove_and_ids():
    index = VectorIndex.create(8)
    index.add(np.arange(10), _codes(10))
    assert index.remove([2, 3, 99]) == 2
    assert sorted(index.ids().tolist()) == [0, 1, 4, 5, 6, 7, 8, 9]
    _, found = index.search(_codes(10)[2:3], 10)
    assert 2 not in found[0]


def test_scores_are_cosine_similarities_whatever_the_codes_length():
    index = VectorIndex.create(8)
    codes = _codes(5)
    index.add(np.arange(5), codes * np.arange(1, 6)[:, None])  # lengths do not count
    scores, found = index.search(codes[:1] * 7, 2)
    assert found[0, 0] == 0 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    unit = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    assert scores[0, 1] == pytest.approx(float(unit[0] @ unit[found[0, 1]]), abs=1e-5)


def test_save_load_mmap_round_trip(tmp_path):
    index = VectorIndex.create(8)
    index.add(np.arange(20) * 3, _codes(20))
    path = tmp_path / "i.faiss"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["i.faiss"]  # no temp file left
    for mmap in (False, True):
        loaded = load_index(path, mmap=mmap)
        assert loaded.metric == "cosine" and loaded.ntotal == 20
        assert sorted(loaded.ids().tolist()) == sorted((np.arange(20) * 3).tolist())
    faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatL2(8)), str(tmp_path / "l2.faiss"))
    with pytest.raises(VectorIndexError, match="not an index Lookalike wrote"):
        load_index(tmp_path / "l2.faiss")


def test_bad_shapes_and_files(tmp_path):
    index = VectorIndex.create(8)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.arange(2), np.zeros((2, 4), np.float32))
    with pytest.raises(VectorIndexError, match="no vector index"):
        load_index(tmp_path / "missing.faiss")
    (tmp_path / "junk.faiss").write_bytes(b"junk")
    with pytest.raises(VectorIndexError, match="cannot read"):
        load_index(tmp_path / "junk.faiss")


def test_zero_vector_does_not_become_nan():
    assert np.isfinite(normalise(np.zeros((1, 4), np.float32))).all()


def test_index_type_is_chosen_by_size():
    assert choose_index_type(10) == "flat"
    assert choose_index_type(EXACT_LIMIT) == "ivf"
    assert choose_index_type(COMPRESSED_LIMIT - 1) == "ivf"
    assert choose_index_type(COMPRESSED_LIMIT) == "ivfpq"
    assert choose_index_type(10, "ivf") == "ivf"
    with pytest.raises(ValueError):
        choose_index_type(10, "hnsw")


def test_pq_codes_are_a_quarter_of_the_dimensions_and_divide_them():
    assert [pq_subquantizers(d) for d in (16, 64, 128, 30, 7)] == [4, 16, 32, 6, 1]


def test_ivfpq_shortlist_reranked_exactly_finds_the_true_neighbours():
    """PQ alone ranks coarsely; its shortlist, re-scored with the full codes (what the search
    engine does with the catalog's), gives the exact top 10 nearly always."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(64, 32))
    codes = (centres[rng.integers(0, 64, 20_000)] + 0.4 * rng.normal(size=(20_000, 32)))
    ids = np.arange(20_000, dtype=np.int64) * 3 + 7
    index = build_index(ids, codes, 32, choice="ivfpq")
    assert index.approximate and index.index_type == "ivfpq"
    assert "IndexIVFPQ" in index.faiss_class and "8 bytes/code" in index.faiss_class
    queries = codes[:50]
    exact = VectorIndex.create(32)
    exact.add(ids, codes)
    _, truth = exact.search(queries, 10)
    _, shortlist = index.search(queries, 100)
    by_id = dict(zip(ids.tolist(), codes))
    recall = []
    for q, short, true in zip(queries, shortlist, truth):
        short = short[short != -1]
        scores = index.exact_scores(q[None], np.stack([by_id[i] for i in short]))
        top = short[np.argsort(-scores)[:10]]
        recall.append(len(set(top) & set(true)) / 10)
    assert np.mean(recall) >= 0.95
    assert index.remove(ids[:100]) == 100 and index.ntotal == 19_900
    assert not set(ids[:100]) & set(index.ids().tolist())
