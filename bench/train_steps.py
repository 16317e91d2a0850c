"""Training steps a second with the default recipe, and how much of a step the edited
views take: run it from two checkouts, one after the other, to compare them on one box.

    python -m bench.train_steps [--size 64] [--batch-size 64] [--steps 30] [--rounds 3]

A step is what ``indexer.train.train_one_epoch`` does per batch: each image and two edited
views of it (``Recipe.inputs``), the loss, backward, an AdamW step. Random pixels: the step's
cost does not depend on what the images show.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from indexer.model import AEConfig, build_model
from indexer.train import Recipe, TrainConfig, step_loss


def rate(size: int, batch_size: int, steps: int) -> tuple[float, float]:
    """(seconds a step, seconds of it spent making the views)."""
    torch.manual_seed(0)
    pixels = torch.from_numpy(np.random.default_rng(0).integers(
        0, 256, (batch_size, size, size, 3), dtype=np.uint8))
    config = TrainConfig(batch_size=batch_size, device="cpu")
    model_config = AEConfig(image_size=size)
    if "copy_dim" in AEConfig.__dataclass_fields__:  # the code's layout, where it has one
        model_config = AEConfig(image_size=size, latent_dim=128, copy_dim=64)
    model = build_model(model_config).to(memory_format=torch.channels_last)
    recipe = Recipe.build(config, model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    device = torch.device("cpu")
    spent_on_views = 0.0
    for step in range(steps + 3):  # three to warm up
        if step == 3:
            started, spent_on_views = time.perf_counter(), 0.0
        t = time.perf_counter()
        x = recipe.inputs(pixels, device, None)
        spent_on_views += time.perf_counter() - t
        optimizer.zero_grad()
        step_loss(model, recipe, x, None).backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps, spent_on_views / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    runs = [rate(args.size, args.batch_size, args.steps) for _ in range(args.rounds)]
    step = statistics.median(r[0] for r in runs)
    views = statistics.median(r[1] for r in runs)
    print(f"{args.size} px, batch {args.batch_size} (the image and two views): {1 / step:.2f} steps/s, "
          f"{step * 1000:.0f} ms a step, of which views {views * 1000:.0f} ms "
          f"({views / step:.0%}); median of {args.rounds} rounds of {args.steps} steps")


if __name__ == "__main__":
    main()
