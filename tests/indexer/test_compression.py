"""The model as a tool, below the command line: compressed codes, a codebook trained once
however many processes ask, and the latent helpers (the commands: tests/cli/test_tools.py)."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.compression import Codebooks, CompressionError, compress_code, decompress_code
from indexer.model import arithmetic, interpolate, load_checkpoint, sample_prior
from search.store import Store, codebook_path

from ..conftest import TINY, index_into


def test_a_codebook_written_meanwhile_is_used_not_replaced(data_dir, collection):
    """Two processes (the CLI and the server) that both find no codebook train only one:
    the second to take the lock loads the first one's file."""
    index_into(data_dir, collection)
    store = Store.open(data_dir)
    sha = load_checkpoint(data_dir / "model.pt").sha256
    late = Codebooks(data_dir, lambda: store)
    assert late.find(sha) is None
    first = Codebooks(data_dir, lambda: store).get_or_train(sha)
    path = codebook_path(data_dir, sha)
    stamp = path.stat().st_mtime_ns
    second = late.get_or_train(sha)
    assert path.stat().st_mtime_ns == stamp
    code = np.random.default_rng(0).normal(size=TINY.latent_dim).astype(np.float32)
    assert first.encode(code) == second.encode(code)
    store.close()


def test_compression_refuses_foreign_or_damaged_codes():
    code = np.arange(8, dtype=np.float32)
    blob = compress_code(code, "float32", "ab" * 32)
    assert np.array_equal(decompress_code(blob, "ab" * 32), code)
    with pytest.raises(CompressionError, match="different model"):
        decompress_code(blob, "cd" * 32)
    with pytest.raises(CompressionError, match="truncated"):
        decompress_code(blob[:-3], "ab" * 32)
    with pytest.raises(CompressionError, match="not a Lookalike"):
        decompress_code(b"hello world", "ab" * 32)
    half = decompress_code(compress_code(code, "float16", "ab" * 32), "ab" * 32)
    assert np.allclose(half, code)


def test_latent_helpers():
    a, b = np.zeros(4, np.float32), np.ones(4, np.float32)
    line = interpolate(a, b, 5)
    assert line.shape == (5, 4) and np.allclose(line[2], 0.5) and np.allclose(line[-1], b)
    assert np.allclose(arithmetic(b, a, b), 2 * b)
    s = sample_prior(16, 2000, seed=0)
    assert abs(s.mean()) < 0.05 and abs(s.std() - 1) < 0.05
    with pytest.raises(ValueError):
        interpolate(a, b, 1)
