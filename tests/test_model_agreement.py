"""Commands that compare codes refuse an index another model built, as the web app does."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from indexer.model import AEConfig, build_model, save_checkpoint

from .conftest import TINY
from .test_cli_index import run


@pytest.mark.parametrize("latent_dim", [TINY.latent_dim, TINY.latent_dim * 2])
def test_search_refuses_an_index_of_another_model(data_dir, collection, latent_dim):
    runner = CliRunner()
    run(runner, data_dir, "index", str(collection), "--workers", "0")
    query = sorted(collection.rglob("*.png"))[0]
    assert run(runner, data_dir, "search", str(query), "-k", "3").stdout.count("\n") == 3

    other = build_model(AEConfig(**{**TINY.to_dict(), "latent_dim": latent_dim}))
    save_checkpoint(data_dir / "model.pt", other, {"note": "retrained"})
    for args in (["search", str(query)], ["arithmetic", str(query), str(query), str(query),
                                          "-o", str(data_dir / "a.png")]):
        result = run(runner, data_dir, *args, ok=False)
        assert result.exit_code == 1, result.output
        assert "another model" in result.output or "different model" in result.output
        assert "index --reencode" in result.output
        assert "Traceback" not in result.output

    run(runner, data_dir, "index", str(collection), "--workers", "0", "--reencode")
    assert run(runner, data_dir, "search", str(query), "-k", "3").stdout.count("\n") == 3
