"""The metric code against hand-computed examples (the AE against chance, with ``lookalike
eval``: tests/cli/test_eval.py)."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.retrieval import (EvaluationError, chi2_distances, colour_histograms, label_of,
                              pca_projection, retrieval_metrics)


def test_retrieval_metrics_by_hand():
    # 1-D codes, L2. Query at 0.0 (label a); database sorted by distance:
    # 0.1 a, 0.2 b, 0.3 a, 0.4 b, 0.5 b  → relevance 1 0 1 0 0, AP = (1 + 2/3)/2
    db = np.array([[0.1], [0.2], [0.3], [0.4], [0.5]], np.float32)
    dl = ["a", "b", "a", "b", "b"]
    m = retrieval_metrics(np.zeros((1, 1), np.float32), ["a"], db, dl, "l2")
    assert m.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert m.p_at_1 == 1.0
    assert m.p_at_10 == pytest.approx(2 / 5)  # k is capped at the database size
    assert m.knn10_accuracy == 0.0  # 3 b's outvote 2 a's
    # Query at 0.45, label b: ranking 0.4 b, 0.5 b, 0.3 a, 0.2 b, 0.1 a → AP = (1 + 1 + 3/4)/3
    m = retrieval_metrics(np.array([[0.45]], np.float32), ["b"], db, dl, "l2", chunk=1)
    assert m.mAP == pytest.approx((1 + 1 + 0.75) / 3)


def test_cosine_ignores_scale():
    db = np.array([[1, 0], [0, 1], [10, 1]], np.float32)
    m = retrieval_metrics(np.array([[5, 0]], np.float32), ["x"], db, ["x", "y", "x"], "cosine")
    assert m.mAP == 1.0


def test_pca_projection_finds_the_main_axis():
    rng = np.random.default_rng(0)
    x = np.outer(rng.normal(size=500), [3, 4, 0]) + rng.normal(0, 0.01, (500, 3))
    mean, axes = pca_projection(x, 1)
    assert abs(abs(axes[:, 0] @ np.array([0.6, 0.8, 0])) - 1) < 1e-3


def test_colour_histograms_and_chi2_by_hand():
    red = np.zeros((1, 4 * 4 * 3), np.uint8).reshape(1, 4, 4, 3)
    red[..., 0] = 255
    half = red.copy()
    half[:, :2] = 0  # half the pixels black
    hist = colour_histograms(np.concatenate([red, half]).reshape(2, -1), bins=2)
    # bins (r, g, b) → index r·4 + g·2 + b: red is bin 4, black bin 0.
    assert hist[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert hist[1].tolist() == [0.5, 0, 0, 0, 0.5, 0, 0, 0]
    # χ²(red, half) = (0 − .5)²/.5 + (1 − .5)²/1.5 = 0.5 + 1/6
    m = retrieval_metrics(hist[:1], ["a"], hist, ["a", "b"], "chi2")
    assert m.p_at_1 == 1.0
    assert chi2_distances(hist[:1], hist)[0].tolist() == pytest.approx([0.0, 0.5 + 1 / 6])


def test_copies_labels_flat_originals_and_folders(tmp_path):
    assert label_of(str(tmp_path / "cat.jpg"), tmp_path, "copies") == "cat"
    assert label_of(str(tmp_path / "cat" / "crop.jpg"), tmp_path, "copies") == "cat"
    with pytest.raises(EvaluationError, match="class sub-folder"):
        label_of(str(tmp_path / "cat.jpg"), tmp_path, "classes")
