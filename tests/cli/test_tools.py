"""The model as a tool from the command line: denoising, anomalies, compression and latent
exploration (below the command line: tests/indexer/test_compression.py; the web's endpoints
for them: tests/web/test_tools_*.py)."""
from __future__ import annotations

import json
import shutil

import faiss
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from indexer.compression import psnr
from indexer.images import load_image
from web.cli import cli

from ..conftest import TINY


def invoke(data_dir, *args, ok=True):
    """``lookalike --data-dir DATA_DIR ARGS``, not quiet: these tests read what it prints."""
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def dae_dir(tmp_path_factory, collection_src):
    """A denoiser that must really help (test_denoise_improves_psnr wants 2 dB): the tiny
    architecture with twice its code size, trained for 40 epochs."""
    d = tmp_path_factory.mktemp("dae")
    invoke(d, "-q", "train", str(collection_src), "--kind", "dae",
           "--image-size", str(TINY.image_size), "--widths", ",".join(map(str, TINY.widths)),
           "--latent-dim", str(2 * TINY.latent_dim), "--epochs", "40", "--patience", "40",
           "--lr", "3e-3", "--batch-size", "16")
    return d


def test_denoise_improves_psnr(dae_dir, collection_src, tmp_path):
    rng = np.random.default_rng(0)
    gains = []
    for i, path in enumerate(sorted(collection_src.rglob("*.png"))[::10]):
        clean = load_image(path, 32)
        noisy = np.clip(clean + rng.normal(0, 0.3 * 255, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / f"noisy{i}.png")
        invoke(dae_dir, "denoise", str(tmp_path / f"noisy{i}.png"), "-o", str(tmp_path / "o.png"))
        out = np.asarray(Image.open(tmp_path / "o.png"))
        assert out.shape == clean.shape
        gains.append(psnr(clean, out) - psnr(clean, noisy))
    assert np.mean(gains) > 2, gains  # dB


def test_denoise_bad_input(dae_dir, tmp_path):
    (tmp_path / "x.png").write_bytes(b"nope")
    result = invoke(dae_dir, "denoise", str(tmp_path / "x.png"), "-o", str(tmp_path / "o.png"),
                    ok=False)
    assert result.exit_code == 1 and "not a recognised image" in result.output
    assert not (tmp_path / "o.png").exists()


def test_anomalies_find_the_odd_one_out(data_dir, collection, tmp_path):
    rng = np.random.default_rng(1)
    odd = collection / "odd" / "noise.png"
    odd.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(odd)
    invoke(data_dir, "-q", "index", str(collection), "--workers", "0")
    top = json.loads(invoke(data_dir, "anomalies", "--top", "1", "--json").stdout)
    assert top["anomalies"][0]["path"] == str(odd.resolve())
    flagged = json.loads(invoke(data_dir, "anomalies", "--json", "--sheet",
                                str(tmp_path / "s.png")).stdout)
    assert flagged["threshold"] > 0
    assert str(odd.resolve()) in [a["path"] for a in flagged["anomalies"]]
    assert len(flagged["anomalies"]) < 20  # the default threshold flags a minority of 61
    assert (tmp_path / "s.png").exists()


def test_compress_round_trip_every_dtype(data_dir, collection, tmp_path):
    invoke(data_dir, "-q", "index", str(collection), "--workers", "0")
    image = next(collection.rglob("*.png"))
    sizes = {}
    for dtype in ("float32", "float16", "uint8", "pq"):
        code = tmp_path / f"{dtype}.lkc"
        out = invoke(data_dir, "compress", str(image), "-o", str(code), "--dtype", dtype).stdout
        assert "PSNR" in out
        sizes[dtype] = code.stat().st_size
        invoke(data_dir, "decompress", str(code), "-o", str(tmp_path / f"{dtype}.png"))
        restored = np.asarray(Image.open(tmp_path / f"{dtype}.png"))
        assert psnr(load_image(image, 32), restored) > 15
    assert sizes["float32"] > sizes["float16"] > sizes["uint8"] > sizes["pq"]
    assert sizes["float32"] < image.stat().st_size


def test_a_pq_code_decodes_with_only_the_model_and_its_codebook(data_dir, collection, tmp_path):
    """A model and its codebook copied elsewhere decode codes: no catalog needed."""
    invoke(data_dir, "-q", "index", str(collection), "--workers", "0")
    image = next(collection.rglob("*.png"))
    code = tmp_path / "x.lkc"
    invoke(data_dir, "compress", str(image), "-o", str(code), "--dtype", "pq")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(data_dir / "model.pt", elsewhere)
    result = invoke(elsewhere, "decompress", str(code), "-o", str(tmp_path / "x.png"), ok=False)
    assert result.exit_code == 1 and "no product quantiser at" in result.output
    for codebook in data_dir.glob("pq-*.faiss"):
        shutil.copy(codebook, elsewhere)
    invoke(elsewhere, "decompress", str(code), "-o", str(tmp_path / "x.png"))
    assert psnr(load_image(image, 32), np.asarray(Image.open(tmp_path / "x.png"))) > 15
    assert not (elsewhere / "catalog.sqlite").exists()


def test_compress_refuses_a_codebook_it_cannot_save(data_dir, collection, tmp_path,
                                                     monkeypatch):
    """Codes made with a codebook that is not on disk could never be decoded."""
    invoke(data_dir, "-q", "index", str(collection), "--workers", "0")

    def read_only(*args):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(faiss, "write_ProductQuantizer", read_only)
    code = tmp_path / "x.lkc"
    result = invoke(data_dir, "compress", str(next(collection.rglob("*.png"))), "-o", str(code),
                    "--dtype", "pq", ok=False)
    assert result.exit_code == 1 and "cannot save the PQ codebook" in result.output
    assert not code.exists() and not list(data_dir.glob("pq-*.faiss"))


def test_explore_commands(data_dir, collection, tmp_path):
    invoke(data_dir, "-q", "index", str(collection), "--workers", "0")
    a, b, c = sorted(collection.rglob("*.png"))[:3]
    invoke(data_dir, "sample", "-n", "4", "--seed", "1", "-o", str(tmp_path / "s.png"))
    assert Image.open(tmp_path / "s.png").size == (4 * 96, 96)
    invoke(data_dir, "interpolate", str(a), str(b), "--steps", "6", "-o", str(tmp_path / "i.png"))
    assert Image.open(tmp_path / "i.png").size == (6 * 96, 96)
    out = invoke(data_dir, "arithmetic", str(a), str(b), str(c), "-k", "3",
                 "-o", str(tmp_path / "a.png")).stdout
    assert Image.open(tmp_path / "a.png").size == (4 * 96, 96)
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3
