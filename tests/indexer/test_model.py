"""Model shapes, config checks, checkpoints and training."""
from __future__ import annotations

import os

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
from search.regular_files import sha256_file

pytestmark = pytest.mark.any_catalog


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
    (AEConfig(image_size=33, widths=(8,)), "16.5"),
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



def test_a_checkpoint_that_cannot_be_read_is_a_checkpoint_error(tmp_path, monkeypatch):
    """Not an OSError the web app would answer with a 500 and the CLI with a traceback."""
    import indexer.model

    save_checkpoint(tmp_path / "m.pt", build_model(AEConfig(image_size=16, widths=(8,))), {})

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(indexer.model, "open_regular", unreadable)
    with pytest.raises(CheckpointError, match="cannot read the checkpoint .*Permission denied"):
        load_checkpoint(tmp_path / "m.pt")


def test_a_checkpoint_of_other_layers_is_refused_and_an_older_one_of_ours_loads(tmp_path):
    """Checkpoints before #25 stored each layer's kernel, stride and padding, always 4, 2, 1."""
    cfg = AEConfig(image_size=16, widths=(8,), latent_dim=4)
    save_checkpoint(tmp_path / "m.pt", build_model(cfg), {})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    for layers, loads in (({"kernel": 4, "stride": 2, "padding": 1}, True),
                          ({"kernel": 3, "stride": 2, "padding": 1}, False)):
        payload["config"].update(layers)
        torch.save(payload, tmp_path / "old.pt")
        if loads:
            assert load_checkpoint(tmp_path / "old.pt").model.config == cfg
        else:
            with pytest.raises(CheckpointError, match="'kernel': 3"):
                load_checkpoint(tmp_path / "old.pt")


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
    # lr 0 never improves after the first check, so patience 2 stops at the third.
    _, facts = fit(pixels, cfg, TrainConfig(epochs=15, lr=1e-12, patience=2, device="cpu",
                                            invariance=0),
                   progress=False)
    assert facts["rounds_run"] == 3


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


@pytest.mark.parametrize("kind", ["ae", "dae", "vae", "linear"])
@pytest.mark.parametrize("tied", [False, True])
def test_every_kind_trains_saves_and_reloads(kind, tied, tmp_path):
    cfg = AEConfig(image_size=16, widths=(8, 16), latent_dim=6, kind=kind, tied=tied)
    model, facts = fit(_pixels(24), cfg, TrainConfig(epochs=2, batch_size=8, device="cpu"),
                       progress=False)
    assert np.isfinite(facts["val_losses"]).all() and facts["anomaly_threshold"] > 0
    save_checkpoint(tmp_path / "m.pt", model, facts)
    again = load_checkpoint(tmp_path / "m.pt").model
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert again.encode(x).shape == (2, 6)
        assert torch.allclose(again(x), model.eval()(x))  # VAE: eval forward uses μ, no noise


def test_tied_decoder_uses_encoder_weights():
    model = build_model(AEConfig(image_size=16, widths=(8, 16), latent_dim=4, tied=True))
    untied = build_model(AEConfig(image_size=16, widths=(8, 16), latent_dim=4))
    n_tied = sum(p.numel() for p in model.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_tied < n_untied
    # Changing an encoder conv weight changes the decoder's output: the weights are shared.
    model.eval()
    z = torch.randn(1, 4)
    before = model.decode(z).clone()
    with torch.no_grad():
        model.convs[0].weight.mul_(2)
    assert not torch.allclose(before, model.decode(z))
    lin = build_model(AEConfig(image_size=4, latent_dim=3, kind="linear", tied=True))
    assert not hasattr(lin, "decoder")


def test_vae_loss_has_kl_and_encode_is_mu():
    from indexer.model import kl_divergence

    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    assert torch.allclose(kl_divergence(mu, logvar), torch.zeros(2))
    # KL(N(1, 1) ‖ N(0, 1)) = ½ per dimension
    assert kl_divergence(torch.ones(1, 4), torch.zeros(1, 4)).item() == pytest.approx(2.0)
    model = build_model(AEConfig(image_size=16, widths=(8, 16), latent_dim=5, kind="vae")).eval()
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(model.encode(x), model.encode(x))  # deterministic μ


def test_corruptions():
    from indexer.train import corrupt

    x = torch.full((2, 3, 8, 8), 0.5)
    g = torch.Generator().manual_seed(0)
    noisy = corrupt(x, "gaussian", 0.3, g)
    assert 0.2 < (noisy - x).std() < 0.4
    masked = corrupt(x, "masking", 0.5, g)
    assert 0.3 < (masked == 0).float().mean() < 0.7
    sp = corrupt(x, "salt-and-pepper", 0.5, g)
    assert ((sp == 0) | (sp == 1)).float().mean() > 0.3 and (sp == 0.5).any()
    with pytest.raises(ValueError):
        corrupt(x, "bogus", 0.1)


def test_linear_autoencoder_matches_pca():
    """A linear AE spans the top principal subspace (Baldi & Hornik 1989): same error as PCA."""
    from indexer.retrieval import pca_projection

    from ..synthetic import CLASSES, make_image

    rng = np.random.default_rng(0)
    pixels = np.stack([np.asarray(make_image(CLASSES[i % 3], rng, 8)) for i in range(200)])
    tc = TrainConfig(epochs=300, budget=3000, batch_size=16, lr=1e-2, weight_decay=0,
                     patience=300, flips=False, invariance=0, val_fraction=0.25, device="cpu")
    model, _ = fit(pixels, AEConfig(image_size=8, latent_dim=4, kind="linear"), tc, progress=False)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    flat = x.reshape(len(x), -1).numpy()
    train = np.sort(np.random.default_rng(0).permutation(200)[50:])  # fit's own split
    mean, axes = pca_projection(flat[train], 4)
    pca_error = (((flat - mean) @ axes @ axes.T + mean - flat) ** 2).mean()
    with torch.no_grad():
        ae_error = ((model(x) - x) ** 2).mean().item()
    assert 0.97 < ae_error / pca_error < 1.08


def test_the_plain_recipe_mirrors_half_its_images_unless_flips_are_off():
    from indexer.train import Recipe

    batch = torch.from_numpy(_pixels(n=64))
    flipped = Recipe.build(TrainConfig(invariance=0, device="cpu"), AEConfig()).inputs(
        batch, torch.device("cpu"), torch.Generator().manual_seed(0))
    plain = Recipe.build(TrainConfig(invariance=0, flips=False, device="cpu"), AEConfig()).inputs(
        batch, torch.device("cpu"), torch.Generator().manual_seed(0))
    x = plain.float()
    mirrored = [bool(torch.equal(f, i.flip(-1))) and not torch.equal(f, i)
                for f, i in zip(flipped.float(), x)]
    assert torch.equal(plain, torch.from_numpy(batch.numpy()).permute(0, 3, 1, 2).float() / 255)
    assert 16 <= sum(mirrored) <= 48
    assert all(m or torch.equal(f, i) for m, f, i in zip(mirrored, flipped.float(), x))


def test_a_checkpoint_replaced_while_it_loads_keeps_the_name_of_the_weights_it_gave(
        tmp_path, monkeypatch):
    """The sha256 names the bytes the model came from, not whatever the path holds after."""
    import indexer.model

    first, second = tmp_path / "model.pt", tmp_path / "other.pt"
    save_checkpoint(first, build_model(AEConfig(image_size=16, widths=(8,), latent_dim=4)), {})
    save_checkpoint(second, build_model(AEConfig(image_size=16, widths=(8,), latent_dim=5)), {})
    expected = sha256_file(first)
    read = indexer.model.read_checkpoint

    def read_then_replace(*args, **kwargs):
        checkpoint = read(*args, **kwargs)
        os.replace(second, first)  # `lookalike train` lands meanwhile
        return checkpoint

    monkeypatch.setattr(indexer.model, "read_checkpoint", read_then_replace)
    checkpoint = load_checkpoint(first)
    assert checkpoint.model.config.latent_dim == 4 and checkpoint.sha256 == expected


@pytest.mark.parametrize("error_in_bf16", [False, True])
def test_indexing_stores_the_searched_codes_and_the_float32_error(error_in_bf16):
    """The index stores ``encode``'s codes exactly, and each image's reconstruction error as
    float32 measures it, within 0.5 %, whichever precision the decoder pass runs in (bfloat16
    where the CPU has it natively; forced here, so both paths run on any machine)."""
    from indexer.encoding import TorchEncoder
    from indexer.model import AEConfig, Checkpoint, build_model, to_tensor

    torch.manual_seed(0)
    encoder = TorchEncoder(Checkpoint(build_model(AEConfig(image_size=32, latent_dim=16))))
    encoder.error_in_bf16 = error_in_bf16
    pixels = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    codes, errors = encoder.encode_with_error(pixels)
    assert codes.dtype == errors.dtype == np.float32
    np.testing.assert_array_equal(codes, encoder.encode(pixels))
    with torch.inference_mode():
        x = to_tensor(pixels, "cpu")
        float32 = (encoder.model.decode(torch.from_numpy(codes)) - x).pow(2).flatten(1).mean(1)
    np.testing.assert_allclose(errors, float32.numpy(), rtol=5e-3)
    # Exact in float32; in bfloat16 the pass really ran in it (else the speed is not had).
    assert np.array_equal(errors, float32.numpy()) is not error_in_bf16
