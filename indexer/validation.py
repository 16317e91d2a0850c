"""What the held-out images decide about a run.

Which round's weights it keeps and when it stops (early stopping on the
held-out loss), and, once trained, above which reconstruction error a
query counts as unlike the collection (the anomaly threshold).
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .augment import Views
from .model import Autoencoder
from .pixels import to_tensor
from .training_data import view_pair

ANOMALY_PERCENTILE = 99.0
VALIDATION_PAIRS = 512  # held-out images whose view pairs each check scores (they cost 2 passes)


@dataclass
class History:
    """The losses of every validation round, and the weights of the best one.

    The last round is not always the best: the run keeps the best round's
    weights and gives up once ``patience`` rounds in a row failed to beat it.
    """

    patience: int
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    steps: int = 0  # optimizer steps taken
    seen: int = 0  # training images shown, repeats included
    best_loss: float = float("inf")
    best_round: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0  # rounds since the best one

    def record(self, train_loss: float, val_loss: float, model: torch.nn.Module) -> bool:
        """Note one round and keep its weights if it is the best yet; False once patience is out."""
        self.train_losses.append(train_loss)
        self.val_losses.append(val_loss)
        if val_loss < self.best_loss - 1e-6:
            self.best_loss, self.best_round, self.stale = val_loss, len(self.val_losses), 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale < self.patience

    def facts(self, steps_planned: int, n_train: int) -> dict[str, Any]:
        """The run's account for its checkpoint: how much budget it used, where it stopped."""
        return {
            "steps_run": self.steps,
            "steps_planned": steps_planned,
            "epochs_run": round(self.seen / n_train, 2),
            "rounds_run": len(self.train_losses),
            "best_round": self.best_round,
            "train_losses": self.train_losses,
            "val_losses": self.val_losses,
            "best_val_loss": self.best_loss,
        }


def validation_inputs(batches: list[torch.Tensor], views: Views | None, batch_size: int,
                      seed: int) -> list[torch.Tensor]:
    """What each round scores: the held-out batches, or for λ > 0 view pairs of some of them.

    The pairs are drawn once, so every round scores the same views.
    """
    if views is None:
        return batches
    return fixed_view_pairs(batches[:max(1, VALIDATION_PAIRS // batch_size)], views, seed)


def fixed_view_pairs(batches: Sequence[torch.Tensor], views: Views,
                     seed: int) -> list[torch.Tensor]:
    """The validation views, drawn with their own seed so training's draws are untouched.

    Kept in host memory; ``indexer.train.validation_loss`` moves one batch at a time to the device.
    """
    with torch.random.fork_rng(), _python_random(seed):
        torch.manual_seed(seed)
        return [view_pair(b, views, torch.device("cpu")) for b in batches]


@contextmanager
def _python_random(seed: int) -> Iterator[None]:
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
        x = to_tensor(batch, device)
        out.append((model(x) - x).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def error_facts(errors: np.ndarray) -> dict[str, Any]:
    """The checkpoint's anomaly threshold and reconstruction quality, from held-out *errors*."""
    return {
        # Queries above this held-out percentile are flagged "unlike this collection".
        "anomaly_threshold": float(np.percentile(errors, ANOMALY_PERCENTILE)),
        "anomaly_percentile": ANOMALY_PERCENTILE,
        "val_error_percentiles": {str(q): float(np.percentile(errors, q)) for q in (50, 90, 95, 99)},
        # Reconstruction quality of the clean held-out images, whatever the objective was.
        "val_psnr_db": float(10 * np.log10(1 / max(float(errors.mean()), 1e-12))),
    }


@torch.no_grad()
def copy_threshold(model: Autoencoder, batches: Sequence[torch.Tensor], device: torch.device,
                   seed: int) -> float | None:
    """The code similarity that best tells an edited copy from another image, for this model.

    Two edited views of each held-out image (the default edits, drawn with their own
    seed) are the true pairs, views of different images the false ones; the threshold
    with the best pair F1 among them is what ``lookalike duplicates`` and collapsed
    searches use (similarities are on each model's own scale). None with under 4 images.
    """
    batches = batches[:max(1, VALIDATION_PAIRS // len(batches[0]))] if batches else []
    if sum(len(b) for b in batches) < 4:
        return None
    pairs = fixed_view_pairs(batches, Views(model.config.image_size), seed)
    model.eval()
    a, b = [], []
    for pair in pairs:
        codes = torch.nn.functional.normalize(model.encode(pair.to(device)).float(), dim=1)
        a.append(codes[:len(pair) // 2].cpu())
        b.append(codes[len(pair) // 2:].cpu())
    sims = (torch.cat(a) @ torch.cat(b).T).numpy()
    return best_f1_threshold(sims[np.eye(len(sims), dtype=bool)],
                             sims[~np.eye(len(sims), dtype=bool)])


def best_f1_threshold(true: np.ndarray, false: np.ndarray) -> float:
    """The cut with the best F1 when pairs scoring ≥ it are called copies."""
    cuts = np.unique(np.concatenate([true, false]))
    true, false = np.sort(true), np.sort(false)
    found = len(true) - np.searchsorted(true, cuts)  # true pairs at or above each cut
    wrong = len(false) - np.searchsorted(false, cuts)
    f1 = 2 * found / (len(true) + found + wrong)
    return round(float(cuts[int(np.argmax(f1))]), 4)
