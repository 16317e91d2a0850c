"""Make the pictures in README.md from the bundled sample collection.

    python -m bench.readme_pictures        # writes docs/*.png (about 3 minutes on 2 cores)

Trains three small models (ae, dae, vae) on the 400 sample images at
32×32 with Lookalike's own code; each picture is what the matching CLI
command shows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from indexer.encoding import TorchEncoder
from indexer.model import (AEConfig, Checkpoint, corrupt, interpolate, sample_prior, to_pixels,
                           to_tensor)
from indexer.train import TrainConfig, fit
from indexer.training_data import load_folder

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "indexer" / "sample" / "fashion-mnist"
DOCS = ROOT / "docs"
CELL = 64


def grid(rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    """Labelled rows of images, scaled up with nearest-neighbour so pixels stay crisp."""
    label_w = 110
    cols = max(len(images) for _, images in rows)
    sheet = Image.new("RGB", (label_w + cols * (CELL + 2), len(rows) * (CELL + 2)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        y = r * (CELL + 2)
        draw.text((4, y + CELL // 2 - 6), label, fill="black")
        for c, img in enumerate(images):
            tile = Image.fromarray(img).resize((CELL, CELL), Image.Resampling.NEAREST)
            sheet.paste(tile, (label_w + c * (CELL + 2), y))
    sheet.save(path)


def train(kind: str, pixels: np.ndarray, epochs: int = 60) -> TorchEncoder:
    cfg = AEConfig(image_size=32, widths=(32, 64, 128), latent_dim=32, kind=kind)
    model, facts = fit(pixels, cfg, TrainConfig(epochs=epochs, patience=15, device="cpu", budget=None,
                                                beta=0.5), progress=True)
    return TorchEncoder(Checkpoint(model, facts), "cpu")


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    torch.manual_seed(0)
    pixels = load_folder(SAMPLE, 32, progress=False).pixels
    picks = pixels[np.linspace(0, len(pixels) - 1, 10).astype(int)]

    ae = train("ae", pixels)
    grid([("original", picks), ("reconstruction", ae.reconstruct(picks))], DOCS / "reconstructions.png")

    dae = train("dae", pixels)
    noisy = to_pixels(corrupt(to_tensor(picks), "gaussian", 0.3, torch.Generator().manual_seed(0)))
    grid([("original", picks), ("noisy, sigma 0.3", noisy), ("denoised", dae.reconstruct(noisy))],
         DOCS / "denoising.png")

    vae = train("vae", pixels, epochs=80)
    ends = vae.encode(picks[[1, 8]])
    grid([("interpolation", vae.decode(interpolate(ends[0], ends[1], 10))),
          ("prior samples", vae.decode(sample_prior(vae.dim, 10, seed=0)))],
         DOCS / "interpolation.png")
    print(f"wrote {', '.join(p.name for p in sorted(DOCS.glob('*.png')))} in {DOCS}")


if __name__ == "__main__":
    main()
