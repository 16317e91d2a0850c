"""``lookalike train``: the recipe's options reach the checkpoint, and bad ones are refused
before anything is written (the recipe itself: tests/indexer/test_invariance.py)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from indexer.model import load_checkpoint
from web.cli import cli

pytestmark = pytest.mark.any_catalog


def test_checkpoint_records_the_recipe(collection_src, tmp_path):
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(cli, ["-q", "--data-dir", str(tmp_path / "d"), "train",
                                      str(collection_src), "-o", str(out), "--image-size", "32",
                                      "--widths", "8,16", "--budget", "4", "--invariance", "0.5",
                                      "--edits", "crop, grey,jpeg", "--min-crop", "0.6"])
    assert result.exit_code == 0, result.output
    facts = load_checkpoint(out).facts
    assert facts["recipe"]["invariance"] == 0.5
    assert facts["recipe"]["edits"] == ["crop", "grey", "jpeg"]
    assert "RandomResizedCrop" in facts["recipe"]["augmentations"]
    assert "scale=(0.6, 1.0)" in facts["recipe"]["augmentations"]
    assert facts["train_config"]["budget"] == 4 and facts["steps_run"] == 4


@pytest.mark.parametrize("args, message", [
    (["--edits", "crop,sharpen"], "unknown edit(s) sharpen"),
    (["--edits", " , "], "needs at least one edit"),
    (["--invariance", "-1"], "is not in the range x>=0"),
    (["--budget", "0"], "0 is not in the range x>=1"),
])
def test_bad_recipe_options_are_refused_before_anything_is_written(collection_src, tmp_path,
                                                                    args, message):
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "train",
                                      str(collection_src), "-o", str(out), *args])
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()
