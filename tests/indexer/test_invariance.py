"""The view-invariance recipe: edited views, the NT-Xent term, the step budget (what `lookalike
train` records of it: tests/cli/test_train.py)."""
from __future__ import annotations

import io
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.optim.optimizer import register_optimizer_step_post_hook

from indexer.augment import EDITS, Border, JpegArtefacts, PasteText, Sepia, Views
from indexer.model import AEConfig
from indexer.train import Schedule, TrainConfig, TrainingError, fit, nt_xent

from ..conftest import TINY
from ..synthetic import CLASSES, distinct_images, make_image

pytestmark = pytest.mark.any_catalog


def _pixels(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.asarray(make_image(CLASSES[i % 3], rng, size)) for i in range(n)])


def _view_retrieval(model, pixels: np.ndarray, seed: int = 5) -> tuple[float, float]:
    """(share of views whose nearest other view is their partner, same − other cosine), in
    the part of the code that duplicate grouping reads."""
    torch.manual_seed(seed), random.seed(seed)
    views = Views(pixels.shape[1])
    batch = torch.from_numpy(pixels)
    part = model.config.copy_part
    with torch.no_grad():
        a = torch.nn.functional.normalize(model.encode(views(batch))[:, part], dim=1)
        b = torch.nn.functional.normalize(model.encode(views(batch))[:, part], dim=1)
    sim = a @ b.T
    same = sim.diag()
    others = (sim.sum(1) - same) / (len(sim) - 1)
    top1 = (sim.argmax(1) == torch.arange(len(sim))).float().mean().item()
    return top1, (same - others).mean().item()


def test_views_are_edited_copies_in_range_and_seeded():
    batch = torch.from_numpy(_pixels(6))
    views = Views(32)
    torch.manual_seed(0), random.seed(0)
    one = views(batch)
    torch.manual_seed(0), random.seed(0)
    again = views(batch)
    assert one.shape == (6, 3, 32, 32) and one.dtype == torch.float32
    assert 0 <= one.min() and one.max() <= 1
    assert torch.equal(one, again)
    original = batch.permute(0, 3, 1, 2).float() / 255
    assert not torch.allclose(one, original, atol=0.05)  # crops alone move every image


@pytest.mark.parametrize("edit", EDITS)
def test_every_edit_runs_on_its_own(edit):
    batch = torch.from_numpy(_pixels(64))
    torch.manual_seed(0), random.seed(0)
    out = Views(32, (edit,))(batch)
    assert out.shape == (64, 3, 32, 32) and torch.isfinite(out).all()
    # And it edits: each edit picks an image with its own chance (0.1 at least), so of 64
    # some change by more than a level of 8 bits; an edit that does nothing fails here.
    original = batch.permute(0, 3, 1, 2).float() / 255
    changed = (out - original).abs().flatten(1).amax(1) > 1.5 / 255
    assert changed.any(), edit


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * np.log10(1 / ((a - b) ** 2).mean().item())


def test_our_own_edits():
    grey = torch.full((2, 3, 8, 8), 100 / 255)
    sepia = Sepia(p=1.0)(grey)
    assert (sepia[0, :, 0, 0] * 255).round().tolist() == [135, 120, 94]  # 100 · row sums
    torch.manual_seed(0), random.seed(0)
    batch = torch.from_numpy(_pixels(8)).permute(0, 3, 1, 2).float() / 255
    texted = PasteText(32, p=1.0)(batch)
    changed = (texted != batch).flatten(1).any(1)
    assert texted.shape == batch.shape and changed.all()
    assert ((texted != batch).float().mean() < 0.3)  # a caption, not a new image
    framed = Border(p=1.0, side=(1.3, 1.3))(batch)
    plain = lambda edge: ((edge == 0).all((1, 2)) | (edge == 1).all((1, 2)))  # noqa: E731
    # Shrunk by 1.3 onto the canvas, each image leaves a plain black or white band on its
    # left or its right (or both), whatever the shift.
    assert (plain(framed[:, :, :, 0]) | plain(framed[:, :, :, -1])).all()
    assert not torch.equal(framed, batch)


@pytest.mark.parametrize("quality", [30, 60, 90])
def test_jpeg_artefacts_are_those_of_a_jpeg_save_at_that_quality(quality):
    """Ours (batched, in torch) against Pillow's libjpeg at the same quality."""
    img = _pixels(1, size=64)[0]
    out = io.BytesIO()
    Image.fromarray(img).save(out, "JPEG", quality=quality)
    pillow = torch.from_numpy(np.asarray(Image.open(out)).copy()).permute(2, 0, 1) / 255
    x = torch.from_numpy(img).permute(2, 0, 1)[None] / 255
    ours = JpegArtefacts(p=1.0, quality=(quality, quality))(x)[0]
    assert not torch.equal(ours, x[0])
    assert abs(_psnr(ours, x[0]) - _psnr(pillow, x[0])) < 2.5  # as lossy as libjpeg, ±2.5 dB
    assert _psnr(ours, pillow) > 30  # and lossy in the same places


def test_unknown_edit_and_bad_crop_are_refused():
    with pytest.raises(ValueError, match="unknown edit.*sharpen"):
        Views(32, ("crop", "sharpen"))
    with pytest.raises(ValueError, match="smallest crop"):
        Views(32, min_crop=0)


def test_nt_xent_prefers_matching_pairs():
    a = torch.randn(8, 4)
    matched = nt_xent(a, a + 0.01 * torch.randn(8, 4))
    shuffled = nt_xent(a, a[torch.randperm(8)] + 0.01 * torch.randn(8, 4))
    assert matched < shuffled
    assert matched < np.log(15)  # better than chance among the 2N − 1 candidates


def test_a_step_sees_the_image_it_rebuilds_then_two_views_of_it():
    """What the decoder is scored against is the image itself (mirrored or not), not an
    edited view: rows 0..N−1 are the images, N..2N−1 and 2N..3N−1 their views."""
    from indexer.training_data import image_and_views

    batch = torch.from_numpy(distinct_images(6, size=32))
    images = batch.permute(0, 3, 1, 2).float() / 255
    views = Views(32, ("crop", "jitter"))
    torch.manual_seed(0)
    x = image_and_views(batch, views, torch.device("cpu"))
    assert x.shape == (18, 3, 32, 32)
    first = x[:6]
    as_is = (first - images).abs().flatten(1).amax(1) < 1e-6
    mirrored = (first - images.flip(-1)).abs().flatten(1).amax(1) < 1e-6
    assert bool((as_is | mirrored).all()) and mirrored.any() and as_is.any()
    assert not torch.allclose(x[6:12], images) and not torch.allclose(x[6:12], x[12:])
    plain = image_and_views(batch, views, torch.device("cpu"), flips=False)
    assert torch.equal(plain[:6], images)


def test_invariance_brings_two_views_of_one_image_together():
    """After a short training, an edited view lies nearer its partner than the other images'
    views, in the code's copy part (the term acts there; the decoder reads the whole code)."""
    pixels, held_out = distinct_images(96), distinct_images(24, seed=1)
    results = {}
    for lam in (1.0, 0.0):
        config = AEConfig(image_size=32, widths=(8, 16, 32), latent_dim=32,
                          copy_dim=16 if lam else 0)
        model, _ = fit(pixels, config, TrainConfig(budget=80, batch_size=32, invariance=lam,
                                                   device="cpu", patience=80), progress=False)
        results[lam] = _view_retrieval(model.eval(), held_out)
    top1, gap = results[1.0]
    assert gap > 0 and top1 > 2 / 24  # views of one image closer than views of two images
    assert gap > 1.3 * results[0.0][1]  # and clearly closer than without the term


def test_step_budget_is_honoured_and_bounds_the_epochs():
    counted = []  # every optimizer step, whichever optimizer the trainer uses
    hook = register_optimizer_step_post_hook(lambda *_: counted.append(1))
    try:
        _, facts = fit(_pixels(40), TINY, TrainConfig(budget=7, batch_size=8, device="cpu"),
                       progress=False)
    finally:
        hook.remove()
    assert len(counted) == 7 and facts["steps_run"] == facts["steps_planned"] == 7
    # --epochs caps a budget larger than the data needs: 36 images, batch 8 → 4 whole batches.
    assert Schedule.plan(36, TrainConfig(budget=1000, epochs=2, batch_size=8)).steps == 8
    assert Schedule.plan(36, TrainConfig(budget=5, epochs=2, batch_size=8)).steps == 5
    assert Schedule.plan(36, TrainConfig(budget=None, epochs=3, batch_size=8)).steps == 12
    for bad, message in [(dict(budget=0), "budget"), (dict(invariance=-1), "λ"),
                         (dict(budget=None), "budget or a number of epochs"),
                         (dict(edits=()), "at least one edit"), (dict(batch_size=1), "at least 2"),
                         (dict(edits=("blur", "sharpen")), "unknown edit.*sharpen"),
                         (dict(min_crop=1.5), "smallest crop"), (dict(temperature=0), "temperature")]:
        with pytest.raises(TrainingError, match=message):
            TrainConfig(**bad)
    TrainConfig(edits=(), invariance=0, batch_size=1)  # the plain recipe needs neither


def test_zero_invariance_is_the_plain_recipe():
    """λ = 0 ignores the edits: one flipped view, reconstruction only, no projection head."""
    pixels = _pixels(30)
    runs = [fit(pixels, TINY, TrainConfig(budget=6, batch_size=8, invariance=0,
                                                       edits=edits, device="cpu"), progress=False)
            for edits in (EDITS, ("crop",))]
    (m1, f1), (m2, f2) = runs
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert f1["recipe"] == {"invariance": 0.0, "edits": ["flip"], "loss": "reconstruction"}
    _, f3 = fit(pixels, TINY, TrainConfig(budget=6, batch_size=8, invariance=1,
                                                       device="cpu"), progress=False)
    assert min(f3["train_losses"]) > 1  # NT-Xent over 2·8 views starts near log 15


def test_large_collections_are_sampled(collection_src, tmp_path):
    from indexer.train import train_folder

    result = train_folder(collection_src, tmp_path / "m.pt",
                          AEConfig(image_size=16, widths=(8, 16), latent_dim=4),
                          TrainConfig(budget=2, max_images=25, device="cpu"), progress=False,
                          workers=0)
    facts = result["facts"]
    assert facts["n_found"] == 60 and facts["n_images"] == 25
    assert facts["n_train"] + facts["n_val"] == 25


@pytest.mark.parametrize("kind, head", [("dae", False), ("vae", False), ("ae", True)])
def test_the_recipe_trains_every_search_kind_and_the_projection_head(kind, head):
    model, facts = fit(_pixels(24), replace(TINY, kind=kind),
                       TrainConfig(budget=4, batch_size=8, head=head, device="cpu"),
                       progress=False)
    assert np.isfinite(facts["val_losses"]).all() and facts["steps_run"] == 4
    part = f"the code's first {TINY.latent_dim} numbers (its copy part)"  # TINY: no split
    assert facts["recipe"]["acts_on"] == (f"projection head on the {part}" if head else part)
    assert not any(k.startswith("net.") for k in model.state_dict())  # the head is not stored
