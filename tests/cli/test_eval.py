"""``lookalike eval``: the autoencoder against chance and the baselines, on classes and on
copies (the metric code by hand: tests/indexer/test_retrieval.py)."""
from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from web.cli import cli

from ..synthetic import distinct_images


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
