"""Edited views of an image: the edits people make to photos, as training augmentations.

Search should find an image again after a crop, a filter, a border or a
re-save. Training on two such views of every image, with a term that pulls
their codes together (``indexer.train``), teaches the code what to ignore.
The edits are torchvision's ``transforms.v2`` where it has them; sepia,
pasted text and JPEG artefacts (torchvision's own JPEG transform relies on
its image codecs, deprecated since 0.29) are small transforms of our own.
"""
from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

# Every edit a view may get, in the order they are applied.
EDITS = ("crop", "flip", "rotate", "border", "jitter", "grey", "sepia", "box", "text", "blur",
         "jpeg", "noise")
DEFAULT_EDITS = EDITS
MIN_CROP = 0.4  # smallest crop, as a fraction of the image's area


class Sepia(nn.Module):
    """The classic sepia tone matrix (Microsoft's, used by most photo apps) on uint8 RGB."""

    MATRIX = torch.tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("ij,jhw->ihw", self.MATRIX, img.float())
        return out.clamp_(0, 255).to(torch.uint8)


class PasteText(nn.Module):
    """A caption or watermark: a few random characters in a random colour and place."""

    LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        size = img.shape[-1]
        pil = Image.fromarray(img.permute(1, 2, 0).numpy())
        text = "".join(random.choices(self.LETTERS, k=random.randint(3, 8)))
        fill = tuple(random.randint(0, 255) for _ in range(3))
        xy = (random.randint(0, max(0, size // 2)), random.randint(0, max(0, size - 12)))
        ImageDraw.Draw(pil).text(xy, text, fill=fill, font_size=max(8, size // 6))
        return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)


class JpegArtefacts(nn.Module):
    """A JPEG save and reload at a random quality, through Pillow (as photo apps save)."""

    def __init__(self, quality: tuple[int, int] = (30, 90)):
        super().__init__()
        self.quality = quality

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        out = io.BytesIO()
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(out, "JPEG",
                                                            quality=random.randint(*self.quality))
        return torch.from_numpy(np.asarray(Image.open(out)).copy()).permute(2, 0, 1)

    def extra_repr(self) -> str:
        return f"quality={self.quality}"


def transforms_v2():
    """torchvision's ``transforms.v2``, imported when a view is first built.

    Importing torchvision takes ~1.5 s (it loads every model family); the
    commands that only index or search must not pay that at every start.
    """
    from torchvision.transforms import v2  # here, not at the top: see above
    return v2


def _edit(name: str, size: int, min_crop: float) -> nn.Module:
    """One edit as a transform on a uint8 (3, S, S) tensor (float after ``noise``)."""
    v2 = transforms_v2()
    maybe = v2.RandomApply
    return {
        "crop": lambda: v2.RandomResizedCrop(size, scale=(min_crop, 1.0), antialias=True),
        "flip": lambda: v2.RandomHorizontalFlip(),
        "rotate": lambda: maybe([v2.RandomRotation(15)], p=0.3),
        # A frame or a letterbox: the image shrunk onto a plain canvas, brought back to size.
        "border": lambda: maybe([v2.RandomChoice([v2.RandomZoomOut(fill, side_range=(1.0, 1.4))
                                                  for fill in (0, 255)]),
                                 v2.Resize((size, size), antialias=True)], p=0.2),
        # No hue shift: it costs more than all the other edits together, and photo apps rarely offer it.
        "jitter": lambda: maybe([v2.ColorJitter(0.4, 0.4, 0.4)], p=0.8),
        "grey": lambda: v2.RandomGrayscale(p=0.15),
        "sepia": lambda: maybe([Sepia()], p=0.1),
        "box": lambda: v2.RandomErasing(p=0.2, scale=(0.02, 0.12), value=0),
        "text": lambda: maybe([PasteText()], p=0.15),
        "blur": lambda: maybe([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.3),
        "jpeg": lambda: maybe([JpegArtefacts((30, 90))], p=0.3),
        "noise": lambda: v2.Compose([v2.ToDtype(torch.float32, scale=True),
                                     maybe([v2.GaussianNoise(sigma=0.04)], p=0.2)]),
    }[name]()


class Views:
    """Random edited views of a batch of images; each image gets its own edits.

    Randomness comes from torch's and Python's global generators, which
    ``indexer.train.fit`` seeds, so a seed gives the same views again.
    """

    def __init__(self, size: int, edits: tuple[str, ...] = DEFAULT_EDITS,
                 min_crop: float = MIN_CROP):
        unknown = [e for e in edits if e not in EDITS]
        if unknown:
            raise ValueError(f"unknown edit(s) {', '.join(unknown)}; choose from {', '.join(EDITS)}")
        if not 0 < min_crop <= 1:
            raise ValueError("the smallest crop must be a fraction of the area in (0, 1]")
        ordered = [e for e in EDITS if e in edits]
        steps = [_edit(e, size, min_crop) for e in ordered]
        v2 = transforms_v2()
        if "noise" not in ordered:
            steps.append(v2.ToDtype(torch.float32, scale=True))
        self.edits = tuple(ordered)
        self.transform = v2.Compose(steps)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, S, S, 3) on the CPU → float (N, 3, S, S) in [0, 1]."""
        images = batch.permute(0, 3, 1, 2)
        return torch.stack([self.transform(img.contiguous()) for img in images]).clamp_(0, 1)

    def describe(self) -> str:
        """The pipeline with its parameters, for the checkpoint to record."""
        return repr(self.transform)
