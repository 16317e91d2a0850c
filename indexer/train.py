"""Training the autoencoder on a folder of images: the recipe, its losses, the loop.

Laid out as torchvision's reference training scripts are
(``references/classification/train.py``): a ``train_one_epoch`` over batches, an
evaluation function (``validation_loss``), and the run's config (a dataclass here,
as nanoGPT's) stored in the checkpoint with the facts of the run. One step's loss is
the model's own (reconstruction, and the VAE's KL term of Kingma & Welling 2013:
``Autoencoder.loss``) on inputs corrupted for a denoising model (Vincent et al. 2008),
plus the view-invariance term of Chen et al. 2020 below. The other modules of
training each answer one question: how the pixels get from the folder into batches
(``indexer.training_data``), which edits make a copy (``indexer.augment``), and what
the held-out images decide (the best round, when to stop, the anomaly and copy
thresholds: ``indexer.validation``).
"""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .augment import DEFAULT_EDITS, EDITS, MIN_CROP, Views
from .model import (NOISES, AEConfig, Autoencoder, build_model, corrupt, resolve_device,
                    save_checkpoint, to_pixels, to_tensor)
from .plots import save_loss_curve, save_reconstruction_grid
from .training_data import (NotEnoughImages, batches_of, data_fingerprint, image_and_views,
                            load_folder, mirrored_half, passes, split_indices)
from .validation import (COLLECTION_SAMPLE, History, copy_calibration, error_facts,
                         per_image_errors, validation_inputs)


class TrainingError(RuntimeError):
    """Training cannot start or cannot produce a model (no images, bad split)."""


DEFAULT_BUDGET = 1000  # optimizer steps: 10k photos train in ≤ 5 minutes on 2 CPU cores (BENCHMARKS.md)
DEFAULT_INVARIANCE = 0.1  # λ; 0 is the seed's plain autoencoder (BENCHMARKS.md: λ = 0.1 vs 1)
DEFAULT_LATENT = 128  # numbers in a code
DEFAULT_COPY_PART = 64  # of which the invariance term acts on the first (AEConfig.copy_dim)
MAX_IMAGES = 20_000  # a larger collection is sampled: the budget could not show it more
VALIDATIONS = 20  # held-out checks in a run, at most one per pass over the data
# The model `lookalike train` and `index` make unless told otherwise (AEConfig's own defaults
# describe the checkpoints of earlier versions, which had no copy part).
DEFAULT_MODEL = AEConfig(latent_dim=DEFAULT_LATENT, copy_dim=DEFAULT_COPY_PART)


@dataclass
class TrainConfig:
    """How a model is trained; stored in its checkpoint with the facts of the run.

    ``invariance`` (λ) > 0: every step sees each image and two edited views of
    it (``edits``, see ``indexer.augment``) and adds λ · NT-Xent between the
    views' copy parts to the reconstruction of the image. λ = 0: the plain
    recipe, the image with random flips and reconstruction only.
    """

    epochs: int | None = None  # at most this many passes over the data; None: the budget decides
    budget: int | None = DEFAULT_BUDGET  # optimizer steps; None: the epochs decide
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 5  # validations without a better loss before stopping
    seed: int = 0
    device: str = "auto"
    # Half the images the model rebuilds are mirrored; off for the linear-AE-vs-PCA baseline,
    # whose PCA sees the images as they are.
    flips: bool = True
    invariance: float = DEFAULT_INVARIANCE
    edits: tuple[str, ...] = DEFAULT_EDITS
    min_crop: float = MIN_CROP
    temperature: float = 0.2  # τ of NT-Xent
    head: bool = False  # True: the term acts through a projection head (SimCLR); False: on the code
    max_images: int = MAX_IMAGES
    beta: float = 1.0  # VAE: weight of the KL term
    noise: str = "gaussian"  # DAE: input corruption
    noise_level: float = 0.3  # σ for gaussian, pixel fraction for the others

    def __post_init__(self) -> None:
        self.edits = tuple(self.edits)
        problems = [
            (self.invariance < 0, "the invariance weight λ must be ≥ 0"),
            (self.budget is None and self.epochs is None, "give a step budget or a number of epochs"),
            (self.budget is not None and self.budget < 1, "the step budget must be at least 1"),
            (self.batch_size < 1, "the batch size must be at least 1"),
            (sorted(set(self.edits) - set(EDITS)) != [],
             f"unknown edit(s) {', '.join(sorted(set(self.edits) - set(EDITS)))}; "
             f"choose from {', '.join(EDITS)}"),
            (not 0 < self.min_crop <= 1, "the smallest crop must be a fraction of the area in (0, 1]"),
            (self.temperature <= 0, "the NT-Xent temperature must be > 0"),
            (self.noise not in NOISES, f"unknown noise {self.noise!r}; choose from "
                                       f"{', '.join(NOISES)}"),
        ]
        if self.invariance > 0:
            problems += [
                (not self.edits, "the invariance term needs at least one edit (--edits)"),
                (self.batch_size < 2, "the invariance term needs batches of at least 2 images"),
            ]
        for failed, message in problems:
            if failed:
                raise TrainingError(message)


# -- the view-invariance term: two edited views of one image should get one code ------------
# Reconstruction alone teaches the code to keep pixels, so a cropped or
# re-coloured copy lands far from its original. Pulling the codes of two
# views together, against the other images of the batch, teaches the code
# what edits to ignore (SimCLR: Chen et al., "A Simple Framework for
# Contrastive Learning of Visual Representations", 2020).

class ProjectionHead(nn.Module):
    """A small MLP between the code and the contrastive loss; never stored with the model.

    Chen et al. (2020) found the loss works best on such a projection for
    linear classification: the head may discard what the views disagree on
    without the code losing it. Search compares the codes themselves, and
    on bench/copies.py the term on the code beat the head by 0.15 mAP, so
    the head is an option (``--head``), not the default.
    """

    def __init__(self, latent_dim: int, hidden: int = 256, out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy), Chen et al. 2020, eq. 1.

    Row i of *a* and row i of *b* are two views of one image: each must pick
    its partner out of the 2N − 1 other rows by cosine similarity / τ.
    """
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / temperature
    n = a.shape[0]
    sim.fill_diagonal_(float("-inf"))  # a view is not its own partner
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


@dataclass
class Recipe:
    """What one step computes: the config, and for λ > 0 the views and the projection head."""

    config: TrainConfig
    views: Views | None = None
    head: torch.nn.Module | None = None
    copy_part: slice = field(default_factory=lambda: slice(None))  # what the term acts on

    @classmethod
    def build(cls, config: TrainConfig, model_config: AEConfig) -> "Recipe":
        if config.invariance == 0:
            return cls(config)
        width = model_config.copy_part.stop
        head = ProjectionHead(width) if config.head else torch.nn.Identity()
        return cls(config, Views(model_config.image_size, config.edits, config.min_crop), head,
                   model_config.copy_part)

    @property
    def contrastive(self) -> bool:
        return self.views is not None

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.head.parameters()) if self.head is not None else []

    def inputs(self, batch: torch.Tensor, device: torch.device,
               generator: torch.Generator | None) -> torch.Tensor:
        """What a step trains on: the image, flipped half the time, and for λ > 0 two edited
        views of it after it (``training_data.image_and_views``)."""
        if self.views is not None:
            return image_and_views(batch, self.views, device, self.config.flips)
        x = to_tensor(batch, device)
        return mirrored_half(x, generator) if self.config.flips else x

    def describe(self) -> dict[str, Any]:
        if self.views is None:
            return {"invariance": 0.0, "edits": ["flip"] if self.config.flips else [],
                    "loss": "reconstruction"}
        part = f"the code's first {self.copy_part.stop} numbers (its copy part)"
        return {"invariance": self.config.invariance, "edits": list(self.views.edits),
                "augmentations": self.views.describe(), "temperature": self.config.temperature,
                "acts_on": f"projection head on the {part}" if self.config.head else part,
                "loss": "reconstruction of the image + λ · NT-Xent between two edited views "
                        "(Chen et al. 2020)"}


def step_loss(model: Autoencoder, recipe: Recipe, x: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
    """The training objective on prepared inputs *x* (the image and two views when λ > 0).

    The decoder rebuilds the image, not its edited views: rebuilding a crop's borders and
    pasted text cost the clean images 0.4–0.6 dB of PSNR on Fashion-MNIST at the same cost per
    step (the encoder sees three batches, the decoder one, instead of two each). The image
    and the views are encoded apart: one pass over all three gave 0.2–0.4 dB more and
    found copies less well (BENCHMARKS.md). A denoising model sees corrupted inputs and is
    scored against the clean ones.
    """
    c = recipe.config
    if recipe.contrastive:
        x, views = x.tensor_split([len(x) // 3])
    inputs = corrupt(x, c.noise, c.noise_level, generator) if model.config.kind == "dae" else x
    out = model.loss(inputs, x, c.beta)
    if not recipe.contrastive:
        return out.total
    a, b = recipe.head(model.encode(views)[:, recipe.copy_part]).chunk(2)
    return out.total + c.invariance * nt_xent(a, b, c.temperature)


def train_one_epoch(
    model: Autoencoder,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    recipe: Recipe,
    generator: torch.Generator | None = None,
    on_batch: Callable[[float], None] | None = None,
) -> float:
    """One round over *batches* (uint8 NHWC tensors); returns the mean training loss."""
    model.train()
    if recipe.head is not None:
        recipe.head.train()
    total, count = 0.0, 0
    for batch in batches:
        x = recipe.inputs(batch, device, generator)
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(model, recipe, x, generator)
        loss.backward()
        optimizer.step()
        value = loss.item()  # one device sync per step
        total += value * len(batch)
        count += len(batch)
        if on_batch:
            on_batch(value)
    return total / max(count, 1)


@torch.no_grad()
def validation_loss(model: Autoencoder, batches: Sequence[torch.Tensor], device: torch.device,
             recipe: Recipe) -> float:
    """Mean held-out loss in eval mode; every random draw is fixed, so rounds compare.

    Batches are uint8 images, or for λ > 0 images and views made once (``validation_inputs``).
    """
    model.eval()
    if recipe.head is not None:
        recipe.head.eval()
    gen = torch.Generator().manual_seed(1234)
    total, count = 0.0, 0
    # A VAE samples its codes from the global generator: fixed here, and training's draws kept.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(1234)
        for batch in batches:
            x = to_tensor(batch, device) if recipe.views is None else batch.to(device)
            loss = step_loss(model, recipe, x, gen)
            total += loss.item() * len(x)
            count += len(x)
    return total / max(count, 1)


@dataclass(frozen=True)
class Schedule:
    """How many optimizer steps a run takes, and how often it checks the held-out loss."""

    steps: int
    per_round: int  # steps between validations

    @classmethod
    def plan(cls, n_train: int, config: TrainConfig) -> "Schedule":
        per_epoch = (-(-n_train // config.batch_size) if config.invariance == 0
                     else max(1, n_train // config.batch_size))
        limits = [config.budget, None if config.epochs is None else config.epochs * per_epoch]
        steps = min(n for n in limits if n is not None)
        return cls(steps, min(steps, max(per_epoch, -(-steps // VALIDATIONS))))

    def rounds(self, stream: Iterator[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        """The first ``steps`` batches of *stream*, cut into validation rounds.

        A round is taken whole before it is trained on: a pass that starts
        inside it is shuffled before the round's steps draw their flips and
        noise from the same generator, and a seed repeats a run only if that
        order stays.
        """
        budget = itertools.islice(stream, self.steps)
        while round_ := list(itertools.islice(budget, self.per_round)):
            yield round_


def fit(
    pixels: np.ndarray,
    model_config: AEConfig,
    train_config: TrainConfig,
    progress: bool = True,
    on_round: Callable[[int, float, float], None] | None = None,
) -> tuple[Autoencoder, dict[str, Any]]:
    """Train a fresh model on *pixels* (N, S, S, 3 uint8) within the step budget.

    Returns the model holding the weights of its best validation round and
    the facts that go into the checkpoint. Same seed and same pixels give
    the same weights on CPU.
    """
    if len(pixels) < 2:
        raise TrainingError(f"need at least 2 images to train, found {len(pixels)}")
    c = train_config
    model, recipe, device = _start(model_config, c)
    train_idx, val_idx = split_indices(len(pixels), c.val_fraction, c.seed)
    data = torch.from_numpy(np.require(pixels, requirements=["C", "W"]))
    # The run's shuffles, and for λ = 0 its flips and noise; the views and their image's
    # flips draw from the global generators, seeded in _start.
    gen = torch.Generator().manual_seed(c.seed)
    val_batches = batches_of(data, val_idx, c.batch_size, None)
    val_inputs = validation_inputs(val_batches, recipe.views, c.batch_size, c.seed + 1,
                                   c.flips)
    schedule = Schedule.plan(len(train_idx), c)
    rounds = schedule.rounds(passes(data, train_idx, c.batch_size, gen, whole=recipe.contrastive))
    started = time.time()
    history = _train(model, recipe, rounds, val_inputs, schedule.steps, device, gen,
                     progress, on_round)
    if history.best_state is not None:
        model.load_state_dict(history.best_state)
    model.eval()
    others = np.random.default_rng(c.seed).permutation(train_idx)
    sample = torch.from_numpy(np.concatenate([val_idx, others])[:COLLECTION_SAMPLE])
    copies = copy_calibration(model, data[sample], device, c.seed + 2)
    return model, {
        **error_facts(per_image_errors(model, val_batches, device)),
        "copies": copies,
        "copy_threshold": copies["threshold"],
        **history.facts(schedule.steps, len(train_idx)),
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "data_fingerprint": data_fingerprint(pixels),
        "train_config": asdict(c),
        "recipe": recipe.describe(),
        "device": str(device),
        "seconds": round(time.time() - started, 2),
        "torch": str(torch.__version__),
    }


def _start(model_config: AEConfig, config: TrainConfig) -> tuple[Autoencoder, Recipe, torch.device]:
    """A fresh model and recipe on the device, every random source seeded before they draw."""
    # Weight decay drives many weights towards denormal floats, which are
    # ~100× slower on x86 CPUs; flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
    torch.manual_seed(config.seed)
    random.seed(config.seed)  # the edits' own draws (indexer.augment)
    device = resolve_device(config.device)
    # Channels-last (NHWC) weights and batches: oneDNN's CPU convolutions train
    # ~12% faster that way, and encode batches ~20% faster (indexer.encoding).
    model = build_model(model_config).to(device, memory_format=torch.channels_last)
    recipe = Recipe.build(config, model_config)
    if recipe.head is not None:
        recipe.head.to(device)
    return model, recipe, device


def _train(model: Autoencoder, recipe: Recipe, rounds: Iterable[list[torch.Tensor]],
           val_inputs: Sequence[torch.Tensor], steps: int, device: torch.device,
           gen: torch.Generator, progress: bool,
           on_round: Callable[[int, float, float], None] | None) -> History:
    """Train and validate round after round, until the rounds or the patience run out."""
    c = recipe.config
    # AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019) as the regulariser.
    optimizer = torch.optim.AdamW([*model.parameters(), *recipe.parameters()],
                                  lr=c.lr, weight_decay=c.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = History(c.patience)
    bar = tqdm(total=steps, desc="training", unit="step", disable=not progress)

    def tick(loss: float) -> None:
        history.steps += 1
        scheduler.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    for round_, round_batches in enumerate(rounds, start=1):
        history.seen += sum(len(b) for b in round_batches)
        train_loss = train_one_epoch(model, round_batches, optimizer, device, recipe, gen, tick)
        val_loss = validation_loss(model, val_inputs, device, recipe)
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if on_round:
            on_round(round_, train_loss, val_loss)
        if not history.record(train_loss, val_loss, model):
            break
    bar.close()
    return history


def train_folder(
    folder: str | Path,
    checkpoint_path: str | Path,
    model_config: AEConfig,
    train_config: TrainConfig,
    progress: bool = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Decode, train, and write checkpoint + loss curve + reconstruction grid.

    Returns a summary dict (paths, losses, skipped files) for the caller to report.
    """
    model_config.feature_sizes()  # fail before decoding thousands of files
    try:
        loaded = load_folder(folder, model_config.image_size, workers, progress,
                             train_config.max_images, train_config.seed)
    except NotEnoughImages as exc:
        raise TrainingError(str(exc)) from exc
    model, facts = fit(loaded.pixels, model_config, train_config, progress)
    facts["source_folder"] = str(Path(folder).resolve())
    facts["n_images"] = len(loaded.paths)
    facts["n_found"] = loaded.found
    checkpoint_path = Path(checkpoint_path)
    sha = save_checkpoint(checkpoint_path, model, facts)
    stem = checkpoint_path.with_suffix("")
    loss_png, grid_png = _save_pictures(model, loaded.pixels, facts, stem)
    return {
        "checkpoint": checkpoint_path,
        "sha256": sha,
        "loss_curve": loss_png,
        "reconstructions": grid_png,
        "failures": loaded.failures,
        "facts": facts,
    }


def _save_pictures(model: Autoencoder, pixels: np.ndarray, facts: dict[str, Any],
                   stem: Path) -> tuple[Path, Path]:
    """The loss curve, and 8 images over their reconstructions: a run seen at a glance."""
    loss_png = stem.parent / f"{stem.name}-loss.png"
    grid_png = stem.parent / f"{stem.name}-reconstructions.png"
    save_loss_curve(facts["train_losses"], facts["val_losses"], loss_png)
    sample = pixels[:: max(1, len(pixels) // 8)][:8]
    with torch.no_grad():
        device = next(model.parameters()).device
        recon = model(to_tensor(sample, device)).cpu()
    save_reconstruction_grid(sample, to_pixels(recon), grid_png)
    return loss_png, grid_png
