"""Pictures that show what training and search did.

matplotlib and torchvision are imported by the functions that draw: together
they add ~2 s to the start of every command that imports this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .images import ImageDecodeError, load_image
from .model import to_pixels, to_tensor


def tile_of(path: str | Path, size: int) -> np.ndarray:
    """An image file as a *size* px tile of a sheet; where it cannot be read (moved, damaged),
    a blank one, white as the sheet's paper, so a missing picture never looks like a dark one."""
    try:
        return load_image(path, size)
    except ImageDecodeError:
        return np.full((size, size, 3), 255, np.uint8)


def save_loss_curve(train: Sequence[float], val: Sequence[float], path: str | Path) -> None:
    from matplotlib.figure import Figure  # slow to import (module docstring)

    # matplotlib's object API: no pyplot, so no global backend and no figure to close.
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    checks = range(1, len(train) + 1)
    ax.plot(checks, train, label="train")
    ax.plot(checks, val, label="validation")
    ax.set_xlabel("validation check (one per pass or per 1/20 of the step budget)")
    ax.set_ylabel("training objective")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def _tiles(images: np.ndarray, cell: int) -> torch.Tensor:
    """uint8 (N, S, S, 3) → float (N, 3, cell, cell), enlarged without smoothing."""
    return F.interpolate(to_tensor(images), size=(cell, cell), mode="nearest")


def save_grid(images: np.ndarray, path: str | Path, nrow: int | None = None,
              cell: int = 96) -> None:
    """Images in rows of *nrow* (default: one row), each enlarged to a *cell*-pixel square."""
    from torchvision.utils import make_grid, save_image  # slow to import (module docstring)

    save_image(make_grid(_tiles(images, cell), nrow=nrow or len(images), padding=0), path)


def save_reconstruction_grid(originals: np.ndarray, recons: np.ndarray, path: str | Path,
                             cell: int = 96) -> None:
    """Originals in the top row, their reconstructions below."""
    save_grid(np.concatenate([originals, recons]), path, nrow=len(originals), cell=cell)


def save_result_sheet(query: np.ndarray, query_recon: np.ndarray,
                      hits: Sequence[tuple[np.ndarray, np.ndarray, str]],
                      path: str | Path, cell: int = 96) -> None:
    """Query and its reconstruction, then each hit above its reconstruction, with a caption."""
    from torchvision.utils import make_grid  # slow to import (module docstring)

    items = [(query, query_recon, "query")] + list(hits)
    images = np.stack([i[0] for i in items] + [i[1] for i in items])
    grid = make_grid(_tiles(images, cell), nrow=len(items), padding=4, pad_value=1.0)
    pixels = to_pixels(grid[None])[0]
    label_h = 14
    sheet = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + label_h), "white")
    sheet.paste(Image.fromarray(pixels), (0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, (_, _, caption) in enumerate(items):
        draw.text((4 + i * (cell + 4), pixels.shape[0]), caption[:16], fill="black")
    sheet.save(path)
