"""The metric code against hand-computed examples, and the AE against chance."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from web.cli import cli
from indexer.retrieval import (EvaluationError, chi2_distances, colour_histograms, label_of,
                              pca_projection, retrieval_metrics)

from ..synthetic import distinct_images


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


def test_eval_cli_beats_chance(data_dir, collection):
    runner = CliRunner()
    base = ["--data-dir", str(data_dir), "-q"]
    assert runner.invoke(cli, base + ["index", str(collection), "--workers", "0"]).exit_code == 0
    result = runner.invoke(cli, base + ["eval", str(collection), "--query-fraction", "0.25",
                                        "--json"])
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)["results"]
    ae = res["autoencoder (cosine)"]
    assert ae["queries"] == 15 and ae["database"] == 45
    assert ae["mAP"] > 0.5 and ae["p_at_1"] > 0.6  # chance: mAP ≈ P@1 ≈ 1/3
    assert {"raw pixels (L2)", "PCA-16 (L2)", "PCA-16 (cosine)"} <= set(res)
    table = runner.invoke(cli, base + ["eval", str(collection), "--no-baselines"])
    assert table.exit_code == 0 and "autoencoder" in table.stdout and "PCA" not in table.stdout


def test_eval_errors(data_dir, collection):
    runner = CliRunner()
    result = runner.invoke(cli, ["--data-dir", str(data_dir), "eval", str(collection)])
    assert result.exit_code == 1 and "lookalike index" in result.output


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


def test_eval_copies_mode_finds_resaved_copies(data_dir, tmp_path):
    """Originals flat, JPEG re-saves as queries in folders named after them."""
    db, queries = tmp_path / "db", tmp_path / "queries"
    db.mkdir()
    for i, img in enumerate(distinct_images(12, seed=3, size=48)):
        Image.fromarray(img).save(db / f"photo{i}.png")
        (queries / f"photo{i}").mkdir(parents=True)
        Image.fromarray(img).save(queries / f"photo{i}" / "resaved.jpg", quality=60)
    runner = CliRunner()
    base = ["--data-dir", str(data_dir), "-q"]
    assert runner.invoke(cli, base + ["index", str(db), "--workers", "0"]).exit_code == 0
    result = runner.invoke(cli, base + ["eval", str(db), "--queries", str(queries),
                                        "--mode", "copies", "--json"])
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)["results"]
    assert set(res) == {"autoencoder (cosine)", "colour histogram (χ²)", "phash (Hamming)",
                        "dhash (Hamming)"}
    assert res["autoencoder (cosine)"]["queries"] == 12 and res["autoencoder (cosine)"]["database"] == 12
    assert res["phash (Hamming)"]["p_at_1"] == 1.0  # a re-save keeps its perceptual hash
    assert res["autoencoder (cosine)"]["p_at_1"] > 0.5  # chance: 1/12
