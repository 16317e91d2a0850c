"""Training the autoencoder on a folder of images.

The loop follows pytorch/examples: explicit ``train_one_epoch`` and
``evaluate`` functions, a config dataclass, and a checkpoint that records
how the weights came to be.
"""
from __future__ import annotations

import hashlib
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .augment import DEFAULT_EDITS, EDITS, MIN_CROP, Views
from .images import Decoded, decode_many, walk_images
from .invariance import ProjectionHead, nt_xent
from .model import AEConfig, Autoencoder, build_model, resolve_device, save_checkpoint
from .plots import save_loss_curve, save_reconstruction_grid


class TrainingError(RuntimeError):
    """Training cannot start or cannot produce a model (no images, bad split)."""


NOISES = ("gaussian", "salt-and-pepper", "masking")
ANOMALY_PERCENTILE = 99.0


DEFAULT_BUDGET = 600  # optimizer steps: ≤ 10 minutes on 2 CPU cores at 64 px (BENCHMARKS.md)
DEFAULT_INVARIANCE = 0.1  # λ; 0 is the seed's plain autoencoder (BENCHMARKS.md: λ = 0.1 vs 1)
MAX_IMAGES = 20_000  # a larger collection is sampled: the budget could not show it more
VALIDATIONS = 20  # held-out checks in a run, at most one per pass over the data
VALIDATION_PAIRS = 512  # held-out images whose view pairs each check scores (they cost 2 passes)


@dataclass
class TrainConfig:
    """How a model is trained; stored in its checkpoint with the facts of the run.

    ``invariance`` (λ) > 0: every step sees two edited views of each image
    (``edits``, see ``indexer.augment``) and adds λ · NT-Xent between their
    codes to the reconstruction of each view. λ = 0: the plain recipe, one
    view with random flips and reconstruction only.
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
    augment: bool = True  # plain recipe: random horizontal flips
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
        ]
        if self.invariance > 0:
            problems += [
                (not self.edits, "the invariance term needs at least one edit (--edits)"),
                (self.batch_size < 2, "the invariance term needs batches of at least 2 images"),
            ]
        for failed, message in problems:
            if failed:
                raise TrainingError(message)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 → (N, 3, S, S) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)


def corrupt(x: torch.Tensor, noise: str, level: float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupted copy of *x* (pixels in [0, 1]) for denoising training and benchmarks.

    Vincent et al., "Extracting and Composing Robust Features with
    Denoising Autoencoders" (2008): gaussian (σ = level), salt-and-pepper
    and masking (that fraction of pixels set to 0/1, or to 0).
    """
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, not {noise!r}")
    if noise == "gaussian":
        n = torch.randn(x.shape, generator=generator).to(x.device)
        return (x + level * n).clamp(0, 1)
    pick = (torch.rand((x.shape[0], 1, *x.shape[2:]), generator=generator) < level).to(x.device)
    if noise == "masking":
        return x.masked_fill(pick, 0.0)
    salt = (torch.rand((x.shape[0], 1, *x.shape[2:]), generator=generator) < 0.5).to(x.device)
    return torch.where(pick, salt.float().expand_as(x), x)


def _as_float(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC → float NCHW in [0, 1], kept channels-last in memory (see ``fit``)."""
    x = batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


@dataclass
class Recipe:
    """What one step computes: the config, and for λ > 0 the views and the projection head."""

    config: TrainConfig
    views: Views | None = None
    head: torch.nn.Module | None = None

    @classmethod
    def plain(cls) -> "Recipe":
        """Reconstruction only, no flips: what the loop functions do when given no recipe."""
        return cls(TrainConfig(augment=False, invariance=0))

    @classmethod
    def build(cls, config: TrainConfig, model_config: AEConfig) -> "Recipe":
        if config.invariance == 0:
            return cls(config)
        head = ProjectionHead(model_config.latent_dim) if config.head else torch.nn.Identity()
        return cls(config, Views(model_config.image_size, config.edits, config.min_crop), head)

    @property
    def contrastive(self) -> bool:
        return self.views is not None

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.head.parameters()) if self.head is not None else []

    def describe(self) -> dict[str, Any]:
        if self.views is None:
            return {"invariance": 0.0, "edits": ["flip"] if self.config.augment else [],
                    "loss": "reconstruction"}
        return {"invariance": self.config.invariance, "edits": list(self.views.edits),
                "augmentations": self.views.describe(), "temperature": self.config.temperature,
                "acts_on": "projection head" if self.config.head else "code",
                "loss": "reconstruction of two views + λ · NT-Xent (Chen et al. 2020)"}


def plain_inputs(batch: torch.Tensor, config: TrainConfig, device: torch.device,
                 generator: torch.Generator | None) -> torch.Tensor:
    x = _as_float(batch, device)
    if config.augment:
        flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def view_pair(batch: torch.Tensor, views: Views, device: torch.device) -> torch.Tensor:
    """Two edited views of each image, stacked: rows i and N + i show the same image."""
    pair = torch.cat([views(batch), views(batch)])
    return pair.to(device).contiguous(memory_format=torch.channels_last)


def step_loss(model: Autoencoder, recipe: Recipe, x: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
    """The training objective on prepared inputs *x* (a view pair when λ > 0).

    A denoising model sees corrupted inputs and is scored against the clean ones.
    """
    c = recipe.config
    inputs = corrupt(x, c.noise, c.noise_level, generator) if model.config.kind == "dae" else x
    out = model.loss(inputs, x, c.beta)
    if not recipe.contrastive:
        return out.total
    a, b = recipe.head(out.code).chunk(2)
    return out.total + c.invariance * nt_xent(a, b, c.temperature)


def train_one_epoch(
    model: Autoencoder,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    recipe: Recipe | None = None,
    generator: torch.Generator | None = None,
    on_batch: Callable[[float], None] | None = None,
) -> float:
    """One round over *batches* (uint8 NHWC tensors); returns the mean training loss."""
    recipe = recipe or Recipe.plain()
    model.train()
    if recipe.head is not None:
        recipe.head.train()
    total, count = 0.0, 0
    for batch in batches:
        x = (plain_inputs(batch, recipe.config, device, generator) if recipe.views is None
             else view_pair(batch, recipe.views, device))
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
def evaluate(model: Autoencoder, batches: Sequence[torch.Tensor], device: torch.device,
             recipe: Recipe | None = None) -> float:
    """Mean held-out loss in eval mode; every random draw is fixed, so rounds compare.

    Batches are uint8 images, or for λ > 0 view pairs made once (``fixed_view_pairs``).
    """
    recipe = recipe or Recipe.plain()
    model.eval()
    if recipe.head is not None:
        recipe.head.eval()
    gen = torch.Generator().manual_seed(1234)
    total, count = 0.0, 0
    # A VAE samples its codes from the global generator: fixed here, and training's draws kept.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(1234)
        for batch in batches:
            x = _as_float(batch, device) if recipe.views is None else batch.to(device)
            loss = step_loss(model, recipe, x, gen)
            total += loss.item() * len(x)
            count += len(x)
    return total / max(count, 1)


def fixed_view_pairs(batches: Sequence[torch.Tensor], views: Views,
                     seed: int) -> list[torch.Tensor]:
    """The validation views, drawn once with their own seed so training's draws are untouched.

    Kept in host memory; ``evaluate`` moves one batch at a time to the device.
    """
    with torch.random.fork_rng(), _python_random(seed):
        torch.manual_seed(seed)
        return [view_pair(b, views, torch.device("cpu")) for b in batches]


@contextmanager
def _python_random(seed: int):
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


@torch.no_grad()
def per_image_errors(model: Autoencoder, batches: Sequence[torch.Tensor],
                     device: torch.device) -> np.ndarray:
    """Reconstruction MSE of each clean image: the anomaly score."""
    model.eval()
    out = []
    for batch in batches:
        x = _as_float(batch, device)
        out.append((model(x) - x).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def data_fingerprint(pixels: np.ndarray) -> str:
    """A hash of the exact training pixels, so a checkpoint says what it saw."""
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split; at least one image on each side when n ≥ 2."""
    if n < 2:
        raise TrainingError(f"need at least 2 images to train, found {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    return order[n_val:], order[:n_val]


def _batches(data: torch.Tensor, idx: np.ndarray, size: int, gen: torch.Generator | None,
             whole: bool = False) -> list[torch.Tensor]:
    """Batches of *idx* (shuffled with *gen*); *whole*: drop a short last one when others exist."""
    if gen is not None:
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
    end = len(idx) - len(idx) % size if whole and len(idx) >= size else len(idx)
    return [data[torch.from_numpy(idx[i : i + size])] for i in range(0, end, size)]


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


def _rounds(data: torch.Tensor, idx: np.ndarray, batch_size: int, schedule: Schedule,
            gen: torch.Generator, whole: bool) -> Iterator[list[torch.Tensor]]:
    """Shuffled passes over *idx*, as many as the budget asks, cut into validation rounds.

    *whole*: every batch full, since a contrastive term needs the other images as negatives.
    """
    pending: list[torch.Tensor] = []
    left = schedule.steps
    while left:
        for batch in _batches(data, idx, batch_size, gen, whole)[:left]:
            pending.append(batch)
            left -= 1
            if len(pending) == schedule.per_round or not left:
                yield pending
                pending = []


class _Best:
    """The weights of the best validation round so far, and when to give up."""

    def __init__(self, patience: int):
        self.patience, self.loss, self.round, self.stale, self.state = patience, float("inf"), 0, 0, None

    def offer(self, round_: int, loss: float, model: torch.nn.Module) -> bool:
        """Keep the weights if *loss* is the best yet; False once patience is spent."""
        if loss < self.loss - 1e-6:
            self.loss, self.round, self.stale = loss, round_, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale < self.patience


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
    # Weight decay drives many weights towards denormal floats, which are
    # ~100× slower on x86 CPUs; flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
    torch.manual_seed(train_config.seed)
    random.seed(train_config.seed)  # the edits' own draws (indexer.augment)
    device = resolve_device(train_config.device)
    # Channels-last (NHWC) weights and batches: oneDNN's CPU convolutions train
    # ~12% faster that way, and encode batches ~20% faster (indexer.encoder).
    model = build_model(model_config).to(device, memory_format=torch.channels_last)
    recipe = Recipe.build(train_config, model_config)
    if recipe.head is not None:
        recipe.head.to(device)
    train_idx, val_idx = split_indices(len(pixels), train_config.val_fraction, train_config.seed)
    data = torch.from_numpy(np.require(pixels, requirements=["C", "W"]))
    gen = torch.Generator().manual_seed(train_config.seed)
    val_batches = _batches(data, val_idx, train_config.batch_size, None)
    val_inputs = (val_batches if recipe.views is None
                  else fixed_view_pairs(val_batches[:max(1, VALIDATION_PAIRS // train_config.batch_size)],
                                        recipe.views, train_config.seed + 1))
    # AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019) as the regulariser.
    optimizer = torch.optim.AdamW([*model.parameters(), *recipe.parameters()],
                                  lr=train_config.lr, weight_decay=train_config.weight_decay)
    schedule = Schedule.plan(len(train_idx), train_config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=schedule.steps)
    train_losses: list[float] = []
    val_losses: list[float] = []
    best = _Best(train_config.patience)
    started = time.time()
    bar = tqdm(total=schedule.steps, desc="training", unit="step", disable=not progress)

    steps_run = 0

    def tick(loss: float) -> None:
        nonlocal steps_run
        steps_run += 1
        scheduler.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    rounds = _rounds(data, train_idx, train_config.batch_size, schedule, gen,
                     whole=recipe.contrastive)
    seen = 0
    for round_, batches in enumerate(rounds, start=1):
        seen += sum(len(b) for b in batches)
        train_losses.append(train_one_epoch(model, batches, optimizer, device, recipe, gen, tick))
        val_losses.append(evaluate(model, val_inputs, device, recipe))
        bar.set_postfix(loss=f"{train_losses[-1]:.4f}", val=f"{val_losses[-1]:.4f}")
        if on_round:
            on_round(round_, train_losses[-1], val_losses[-1])
        if not best.offer(round_, val_losses[-1], model):
            break
    bar.close()
    if best.state is not None:
        model.load_state_dict(best.state)
    model.eval()
    errors = per_image_errors(model, val_batches, device)
    facts = {
        # Queries above this held-out percentile are flagged "unlike this collection".
        "anomaly_threshold": float(np.percentile(errors, ANOMALY_PERCENTILE)),
        "anomaly_percentile": ANOMALY_PERCENTILE,
        "val_error_percentiles": {str(q): float(np.percentile(errors, q)) for q in (50, 90, 95, 99)},
        # Reconstruction quality of the clean held-out images, whatever the objective was.
        "val_psnr_db": float(10 * np.log10(1 / max(float(errors.mean()), 1e-12))),
        "steps_run": steps_run,
        "steps_planned": schedule.steps,
        "epochs_run": round(seen / len(train_idx), 2),
        "rounds_run": len(train_losses),
        "best_round": best.round,
        "train_losses": train_losses,
        "val_losses": val_losses,
        "best_val_loss": best.loss,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "data_fingerprint": data_fingerprint(pixels),
        "train_config": asdict(train_config),
        "recipe": recipe.describe(),
        "device": str(device),
        "seconds": round(time.time() - started, 2),
        "torch": str(torch.__version__),
    }
    return model, facts


@dataclass
class LoadedFolder:
    pixels: np.ndarray
    paths: list[Path]
    failures: list[Decoded]
    found: int = 0  # image files under the folder, before any sampling


def load_folder(
    folder: str | Path, size: int, workers: int | None = None, progress: bool = True,
    max_images: int | None = None, seed: int = 0,
) -> LoadedFolder:
    """Decode the images under *folder*, a seeded sample of *max_images* when there are more.

    Bad files are collected, not raised.
    """
    paths = walk_images(folder)
    found = len(paths)
    if not paths:
        raise TrainingError(f"no images found under {folder}")
    if max_images is not None and len(paths) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), max_images, replace=False))
        paths = [paths[i] for i in keep]
    arrays, good, failures = [], [], []
    for d in tqdm(decode_many(paths, size, workers), total=len(paths), desc="decoding",
                  unit="img", disable=not progress):
        if d.pixels is None:
            failures.append(d)
        else:
            arrays.append(d.pixels)
            good.append(d.path)
    if len(arrays) < 2:
        raise TrainingError(f"need at least 2 readable images under {folder}, found {len(arrays)}")
    return LoadedFolder(np.stack(arrays), good, failures, found)


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
    loaded = load_folder(folder, model_config.image_size, workers, progress,
                         train_config.max_images, train_config.seed)
    model, facts = fit(loaded.pixels, model_config, train_config, progress)
    facts["source_folder"] = str(Path(folder).resolve())
    facts["n_images"] = len(loaded.paths)
    facts["n_found"] = loaded.found
    checkpoint_path = Path(checkpoint_path)
    sha = save_checkpoint(checkpoint_path, model, facts)
    stem = checkpoint_path.with_suffix("")
    loss_png = stem.parent / f"{stem.name}-loss.png"
    grid_png = stem.parent / f"{stem.name}-reconstructions.png"
    save_loss_curve(facts["train_losses"], facts["val_losses"], loss_png)
    sample = loaded.pixels[:: max(1, len(loaded.pixels) // 8)][:8]
    with torch.no_grad():
        device = next(model.parameters()).device
        recon = model(to_tensor(sample).to(device)).cpu()
    save_reconstruction_grid(sample, to_uint8(recon), grid_png)
    return {
        "checkpoint": checkpoint_path,
        "sha256": sha,
        "loss_curve": loss_png,
        "reconstructions": grid_png,
        "failures": loaded.failures,
        "facts": facts,
    }


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) float in [0, 1] → (N, S, S, 3) uint8."""
    return (images.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
