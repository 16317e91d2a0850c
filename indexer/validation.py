"""What the held-out images decide about a run.

Which round's weights it keeps and when it stops (early stopping on the
held-out loss), and, once trained, above which reconstruction error a
query counts as unlike the collection (the anomaly threshold) and from
which similarity two images count as copies (the copy threshold).
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .augment import Views
from .model import Autoencoder, to_tensor
from .training_data import image_and_views

ANOMALY_PERCENTILE = 99.0
VALIDATION_IMAGES = 512  # held-out images each check scores with their views (3 passes each)


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
                      seed: int, flips: bool = True) -> list[torch.Tensor]:
    """What each round scores: the held-out batches, or for λ > 0 some of them with their
    views (``training_data.image_and_views``), drawn once so every round scores the same.
    """
    if views is None:
        return batches
    return fixed_inputs(batches[:max(1, VALIDATION_IMAGES // batch_size)], views, seed, flips)


def fixed_inputs(batches: Sequence[torch.Tensor], views: Views, seed: int,
                flips: bool = True) -> list[torch.Tensor]:
    """The validation views, drawn with their own seed so training's draws are untouched.

    Kept in host memory; ``indexer.train.validation_loss`` moves one batch at a time to the device.
    """
    with _seeded(seed):
        return [image_and_views(b, views, torch.device("cpu"), flips) for b in batches]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Torch's and Python's generators seeded for the block, and given back after it, so
    what validation draws leaves training's draws as they were."""
    state = random.getstate()
    random.seed(seed)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
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


COLLECTION_SAMPLE = 2000  # images of the collection the calibration compares with each other
PROBES = 512  # of which this many get edited copies
COPY_PRECISION = 0.99  # of the pairs the threshold calls copies, at least this share must be
COPIES_PER_PROBE = 4  # edited copies of each probe (with one, a threshold moved by up to 0.34
#                        from one order of the same sample to another)
MIN_RECALL = 0.25  # of the (harshly) edited copies; a threshold that finds fewer cannot tell
COPY_LEVEL = 0.1  # a neighbour closer than this share's worst edited copy is copy-close…
GAP = 0.1  # …and, with the ones above it, a copy already there when the next falls this far…
STANDS_OUT = 15  # …and that fall is this many times the usual step between its neighbours
GROUP = 2  # copies an image must hold for that: a lone close neighbour may be a look-alike
NEIGHBOURS = 20  # ranks looked at for that drop: more copies of one image than this are rare


@torch.no_grad()
def copy_calibration(model: Autoencoder, images: torch.Tensor, device: torch.device,
                     seed: int) -> dict[str, Any]:
    """The similarity of two codes' copy parts from which two images count as copies, for
    this model and this collection: the ``copies`` facts of its checkpoint.

    *images* (uint8 NHWC) are a sample of the collection, held-out images first. Each of
    the first PROBES gets COPIES_PER_PROBE edited copies (the default edits, drawn with
    their own seed), compared with its original. What the copies must stand apart from is
    not a random pair but the image each probe already looks most like in the sample: on
    a collection of look-alikes (a shop's sneakers, a bird feeder's visitors) that one is
    far closer than most random pairs, and a threshold that only beat random pairs (as
    before) filed 370 of the demo's 400 garments as copies. An image's copies already in the
    collection are its nearest images, so ``nearest_look_alikes`` looks past them where
    they stand apart as a group. The threshold is the lowest cut at which at least
    COPY_PRECISION of the pairs above it are copies. Where that cut keeps fewer than
    MIN_RECALL of the edited copies, the model cannot tell copies from look-alikes here:
    it says so (``separable``: false), gives no threshold, and only identical images group.
    """
    probes = images[:PROBES]
    if len(probes) < 4 or len(images) < 2:
        return {"threshold": None, "separable": False, "reason": "too few images"}
    if model.config.channels != 3:  # the edits are of colour photos (bench/autoencoders.py)
        return {"threshold": None, "separable": False, "reason": "not colour images"}
    model.eval()
    everyone = _copy_parts(model, to_tensor(images, torch.device("cpu")), device)
    if not torch.isfinite(everyone).all():  # a run that diverged: no similarity means anything
        return {"threshold": None, "separable": False, "reason": "codes not finite"}
    with _seeded(seed):  # the views' own draws (a bank of text) too
        views = Views(model.config.image_size)
        # One batch of edited copies at a time (each 0.4 GB at 256 px), then only similarities.
        copies = np.concatenate([(_copy_parts(model, views(probes), device)
                                  * everyone[:len(probes)]).sum(1).numpy()
                                 for _ in range(COPIES_PER_PROBE)])
    sims = everyone[:len(probes)] @ everyone.T
    sims[torch.arange(len(probes)), torch.arange(len(probes))] = -2.0  # not itself
    look_alikes, held, farthest = nearest_look_alikes(sims.numpy(),
                                                      float(np.quantile(copies, COPY_LEVEL)))
    threshold = threshold_for(copies, look_alikes, held, farthest)
    recall = float((copies >= threshold).mean()) if threshold is not None else 0.0
    separable = recall >= MIN_RECALL
    return {
        "threshold": threshold if separable else None,
        "separable": separable,
        "copy_recall": round(recall, 4),  # of the probes' copies, at the threshold
        "look_alike_rate": (round(float((look_alikes >= threshold).mean()), 4)
                            if threshold is not None else None),  # nearest look-alikes passing
        "holding_copies": round(float(held.mean()), 4),  # probes whose copies stood apart
        "copy_similarity_median": round(float(np.median(copies)), 4),
        # of each probe's nearest image, copy or not: what an edited copy must stand out from
        "look_alike_similarity_median": round(float(np.median(sims.max(1).values.numpy())), 4),
        "probes": int(len(probes)),
        "sample": int(len(images)),
    }


def threshold_for(copies: np.ndarray, look_alikes: np.ndarray, held: np.ndarray,
                  farthest: np.ndarray) -> float | None:
    """Where the cut between copies and look-alikes goes, from what ``copy_calibration``
    measured: the probes' edited copies (a whole number of rounds of all probes, one after
    the other) and, per probe, its nearest look-alike, whether it held copies and the
    farthest of those (``nearest_look_alikes``). None where no cut is precise enough.
    Apart from the measuring so that a rule can be tried on what was measured
    (``bench/calibration.py``)."""
    if not len(look_alikes) or len(copies) % len(look_alikes):
        raise ValueError(f"{len(copies)} edited copies for {len(look_alikes)} probes")
    rounds = len(copies) // len(look_alikes)
    # The nearest image of a probe that has a copy in the collection is that copy. The probes
    # seen holding copies tell what share of the collection has some, at least: that share
    # of the closest look-alikes (copies too, where a group did not stand apart) does not
    # count against the threshold; nor do the look-alikes below the drops of the probes
    # that hold copies among them: they may be copies edited harder than the group above
    # (keeping them all: pair F1 0.54–0.61 on bench/copies.py's folder against 0.88).
    # (Before, a fixed tenth was set aside and 90 % precision asked: a tenth of a collection
    # without copies passed by construction, 12 % of 10k photo-like JPEGs grouped.)
    holding = float(held.mean())
    kept = look_alikes[look_alikes <= np.quantile(look_alikes, 1 - holding)]
    # Precision is that of the pairs a cut would group, and in a collection that holds
    # copies many of the close pairs are those copies: each probe holding some adds its
    # farthest one as a copy pair, next to its edited copy and its one look-alike.
    # Each probe's other pairs count once for each of its edited copies, so that more
    # copies make the measure steadier without tilting the mix COPY_PRECISION is set for.
    positives = np.concatenate([copies, np.repeat(farthest[held], rounds)])
    threshold = precise_threshold(positives, np.repeat(kept, rounds), COPY_PRECISION)
    if threshold is not None and held.any():
        # Below the drop of a probe holding copies lies another photo, or a copy edited
        # harder than the group above it: never group below the middle of those (where
        # nearly every probe holds copies, little else is left to set the threshold by).
        # The median, not a higher quantile: the 75th cost the copies bench 0.01–0.02 of F1
        # for a group or two fewer joining two look-alike photos on a weak model.
        threshold = max(threshold, round(float(np.median(look_alikes[held])), 4))
    return threshold


def _copy_parts(model: Autoencoder, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The copy parts of *x*'s codes on the unit sphere, on the CPU, 256 images at a time."""
    out = [model.encode(x[i:i + 256].to(device)).float()[:, model.config.copy_part]
           for i in range(0, len(x), 256)]
    return torch.nn.functional.normalize(torch.cat(out), dim=1).cpu()


def nearest_look_alikes(sims: np.ndarray,
                        level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each probe's nearest image that is not a copy of it already in the collection,
    whether it held such copies, and (where it did) the farthest of them.

    *sims*: the probes' similarities to the sample, each to itself below −1. Copies and
    look-alikes differ in how they lie around an image more than in how close they are:
    a photo's copies stand apart as a small group, the closest at least as close as an
    edited copy (*level*), then a drop of GAP or more before the other photos begin; a
    garment's look-alikes fade into one another. So where the largest step down a probe's
    ranked neighbours starts at or above *level*, is at least GAP, stands out from the
    usual step between them (STANDS_OUT times their median: on a small collection's
    spread-out similarities a fall of GAP alone is common; where the group is most of
    the few neighbours there are, its own steps set the usual one) and has at least GROUP
    neighbours above it, those are taken as its copies and its nearest look-alike is the
    first one below; otherwise it is the nearest of all. Measured with the default recipe
    (``bench/calibration.py``): 49–57 % of the probes of bench/copies.py's training
    folder (every photo with nine copies) held copies that way, 1 % of 10k distinct
    photo-like JPEGs; 0 of the suite's 40 distinct photos with its small model (53 % with
    GAP alone).
    """
    ranked = -np.sort(-sims, axis=1)[:, :min(NEIGHBOURS + 1, sims.shape[1] - 1)]  # not itself
    if ranked.shape[1] < 2:
        return ranked[:, 0], np.zeros(len(ranked), bool), ranked[:, 0]
    drops = np.where(ranked[:, :-1] >= level, ranked[:, :-1] - ranked[:, 1:], 0.0)
    step = drops.argmax(1)
    rows = np.arange(len(ranked))
    usual = np.median(ranked[:, :-1] - ranked[:, 1:], axis=1)
    held = (drops[rows, step] >= np.maximum(GAP, STANDS_OUT * usual)) & (step + 1 >= GROUP)
    return np.where(held, ranked[rows, step + 1], ranked[:, 0]), held, ranked[rows, step]


def precise_threshold(true: np.ndarray, false: np.ndarray, precision: float) -> float | None:
    """The lowest cut at which at least *precision* of the pairs scoring ≥ it are true;
    None when no cut is that precise."""
    cuts = np.unique(np.concatenate([true, false]))
    true, false = np.sort(true), np.sort(false)
    found = len(true) - np.searchsorted(true, cuts)  # true pairs at or above each cut
    wrong = len(false) - np.searchsorted(false, cuts)
    good = np.flatnonzero((found > 0) & (found >= precision * (found + wrong)))
    return round(float(cuts[good[0]]), 4) if len(good) else None
