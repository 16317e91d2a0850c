"""Model shapes, config checks, checkpoints and training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from indexer.model import (
    AEConfig,
    CheckpointError,
    ModelConfigError,
    build_model,
    conv_out,
    load_checkpoint,
    save_checkpoint,
)
from indexer.train import TrainConfig, TrainingError, fit, train_folder


def test_conv_out_formula():
    assert conv_out(64, 4, 2, 1) == 32
    assert conv_out(28, 5, 1, 0) == 24
    assert conv_out(7, 4, 2, 1) == 3.5


@pytest.mark.parametrize("size,widths", [(64, (32, 64, 128, 256)), (32, (8, 16)), (96, (8,) * 5)])
def test_shapes_round_trip(size, widths):
    cfg = AEConfig(image_size=size, widths=widths, latent_dim=12)
    model = build_model(cfg).eval()
    x = torch.rand(2, 3, size, size)
    z = model.encode(x)
    assert z.shape == (2, 12)
    y = model.decode(z)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("cfg,message", [
    (AEConfig(image_size=60, widths=(8, 16, 32)), "not a whole positive size"),
    (AEConfig(image_size=8, widths=(8,) * 5), "not a whole positive size"),
    (AEConfig(latent_dim=0), "positive"),
    (AEConfig(widths=()), "widths"),
    (AEConfig(image_size=32, kernel=3, stride=2, padding=1, widths=(8,)), "16.5"),
])
def test_impossible_configs_fail_at_build(cfg, message):
    with pytest.raises(ModelConfigError, match=message):
        build_model(cfg)


def test_checkpoint_round_trip(tmp_path):
    cfg = AEConfig(image_size=16, widths=(8, 16), latent_dim=5)
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    sha = save_checkpoint(tmp_path / "m.pt", model, {"epochs_run": 3, "data_fingerprint": "abc"})
    ckpt = load_checkpoint(tmp_path / "m.pt", "cpu")
    assert ckpt.sha256 == sha and ckpt.facts["epochs_run"] == 3
    assert ckpt.model.config == cfg
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), ckpt.model(x))
    assert not list(tmp_path.glob(".ckpt-*"))  # no temp file left behind


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no model checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Lookalike checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def _pixels(n=24, size=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3, size, size, 3))
    return np.clip(base[rng.integers(0, 3, n)] + rng.normal(0, 10, (n, size, size, 3)),
                   0, 255).astype(np.uint8)


def test_same_seed_same_weights_on_cpu():
    cfg = AEConfig(image_size=16, widths=(8, 16), latent_dim=4)
    tc = TrainConfig(epochs=2, batch_size=8, seed=7, device="cpu")
    pixels = _pixels()
    m1, f1 = fit(pixels, AEConfig(**cfg.to_dict()), tc, progress=False)
    m2, f2 = fit(pixels, AEConfig(**cfg.to_dict()), tc, progress=False)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert f1["train_losses"] == f2["train_losses"]
    m3, _ = fit(pixels, AEConfig(**cfg.to_dict()), TrainConfig(epochs=2, batch_size=8, seed=8,
                                                               device="cpu"), progress=False)
    assert not torch.equal(m1.to_latent.weight, m3.to_latent.weight)


def test_training_learns_and_stops_early():
    cfg = AEConfig(image_size=16, widths=(8, 16), latent_dim=8)
    pixels = _pixels(48)
    model, facts = fit(pixels, cfg, TrainConfig(epochs=15, batch_size=8, seed=0, device="cpu",
                                                patience=15), progress=False)
    assert facts["val_losses"][-1] < facts["val_losses"][0]
    assert facts["n_train"] + facts["n_val"] == 48 and facts["n_val"] >= 1
    # lr 0 never improves after the first epoch, so patience 2 stops at epoch 3.
    _, facts = fit(pixels, cfg, TrainConfig(epochs=15, lr=1e-12, patience=2, device="cpu"),
                   progress=False)
    assert facts["epochs_run"] == 3


def test_too_few_images():
    with pytest.raises(TrainingError, match="at least 2"):
        fit(_pixels(1), AEConfig(image_size=16, widths=(8,)), TrainConfig(device="cpu"),
            progress=False)


def test_train_folder_writes_artifacts(collection_src, tmp_path):
    cfg = AEConfig(image_size=16, widths=(8, 16), latent_dim=4)
    out = train_folder(collection_src, tmp_path / "m.pt", cfg,
                       TrainConfig(epochs=1, device="cpu"), progress=False, workers=0)
    assert out["checkpoint"].is_file()
    from PIL import Image

    grid = Image.open(out["reconstructions"])
    assert grid.size[1] == 2 * grid.size[0] // 8  # 8 originals over 8 reconstructions
    assert Image.open(out["loss_curve"]).size[0] > 100
    ckpt = load_checkpoint(out["checkpoint"])
    assert ckpt.facts["n_images"] == 60 and len(ckpt.facts["data_fingerprint"]) == 64
