"""Pictures that show what training and search did."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw


def save_loss_curve(train: Sequence[float], val: Sequence[float], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = range(1, len(train) + 1)
    ax.plot(epochs, train, label="train")
    ax.plot(epochs, val, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction loss (MSE)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_reconstruction_grid(originals: np.ndarray, recons: np.ndarray, path: str | Path,
                             cell: int = 96) -> None:
    """Originals in the top row, their reconstructions below."""
    n = len(originals)
    sheet = Image.new("RGB", (n * cell, 2 * cell), "white")
    for i, (o, r) in enumerate(zip(originals, recons)):
        sheet.paste(Image.fromarray(o).resize((cell, cell), Image.Resampling.NEAREST), (i * cell, 0))
        sheet.paste(Image.fromarray(r).resize((cell, cell), Image.Resampling.NEAREST), (i * cell, cell))
    sheet.save(path)


def save_result_sheet(query: np.ndarray, query_recon: np.ndarray,
                      hits: Sequence[tuple[np.ndarray, np.ndarray, str]],
                      path: str | Path, cell: int = 96) -> None:
    """Query and its reconstruction, then each hit above its reconstruction, with a caption."""
    cols = 1 + len(hits)
    label_h = 14
    sheet = Image.new("RGB", (cols * (cell + 4), 2 * cell + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    items = [(query, query_recon, "query")] + list(hits)
    for i, (img, recon, caption) in enumerate(items):
        x = i * (cell + 4)
        sheet.paste(Image.fromarray(img).resize((cell, cell)), (x, 0))
        sheet.paste(Image.fromarray(recon).resize((cell, cell)), (x, cell))
        draw.text((x + 2, 2 * cell + 1), caption[:16], fill="black")
    sheet.save(path)
