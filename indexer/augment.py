"""Edited views of images: the edits people make to photos, as training augmentations.

Search should find an image again after a crop, a filter, a border or a
re-save. Training on two such views of every image, with a term that pulls
their codes together (``indexer.train``), teaches the code what to ignore.

Every edit works on a whole batch at once, each image with its own random
parameters: kornia's augmentations where it has them (crops, flips,
rotations, colour, grey, erased boxes, blur, noise), and small batched
transforms of our own for a border, sepia, pasted text and JPEG artefacts.
An earlier version edited image by image in a Python loop (torchvision's
``transforms.v2``), which took about a third of every training step.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

# Every edit a view may get, in the order they are applied.
EDITS = ("crop", "flip", "rotate", "border", "jitter", "grey", "sepia", "box", "text", "blur",
         "jpeg", "noise")
DEFAULT_EDITS = EDITS
MIN_CROP = 0.4  # smallest crop, as a fraction of the image's area


def _chosen(x: torch.Tensor, p: float) -> torch.Tensor:
    """A (N, 1, 1, 1) mask: which images of the batch get an edit applied with chance *p*."""
    return (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p).to(x.dtype)


class Border(nn.Module):
    """A frame or a letterbox: the image shrunk onto a plain black or white canvas."""

    def __init__(self, p: float = 0.2, side: tuple[float, float] = (1.0, 1.4)):
        super().__init__()
        self.p, self.side = p, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        zoom = torch.empty(n).uniform_(*self.side)
        shift = (torch.rand(n, 2) * 2 - 1) * (zoom[:, None] - 1)  # anywhere on the canvas
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = zoom
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        fill = (torch.rand(n, 1, 1, 1, device=x.device) < 0.5).to(x.dtype)
        framed = F.grid_sample(x - fill, grid, align_corners=False) + fill  # outside: the fill
        on = _chosen(x, self.p)
        return on * framed + (1 - on) * x

    def extra_repr(self) -> str:
        return f"p={self.p}, side={self.side}, fill=black or white"


class Jitter(nn.Module):
    """Brightness, contrast and saturation factors in [1 − s, 1 + s] per image, in a random
    order per batch, as torchvision's ColorJitter applies them (and photo apps: as factors; kornia's
    ColorJitter adds the brightness, and its ColorJiggle trained denoisers that lost about
    1 dB against torchvision's, so the few lines are our own)."""

    GREY = torch.tensor([0.299, 0.587, 0.114])

    def __init__(self, strength: float = 0.4, p: float = 0.8):
        super().__init__()
        self.strength, self.p = strength, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        factors = 1 + (torch.rand(3, n, 1, 1, 1, device=x.device) * 2 - 1) * self.strength
        out = x
        for which in torch.randperm(3).tolist():
            grey = torch.einsum("c,nchw->nhw", self.GREY.to(x), out)[:, None]
            if which == 0:  # brightness: towards black
                out = out * factors[0]
            elif which == 1:  # contrast: towards the mean grey
                out = (out - grey.mean((2, 3), keepdim=True)) * factors[1] \
                    + grey.mean((2, 3), keepdim=True)
            else:  # saturation: towards the image's own grey
                out = (out - grey) * factors[2] + grey
            out = out.clamp(0, 1)
        on = _chosen(x, self.p)
        return on * out + (1 - on) * x

    def extra_repr(self) -> str:
        return f"brightness=contrast=saturation={self.strength}, p={self.p}"


class Sepia(nn.Module):
    """The classic sepia tone matrix (Microsoft's, used by most photo apps)."""

    MATRIX = torch.tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        toned = torch.einsum("ij,njhw->nihw", self.MATRIX.to(x), x).clamp(0, 1)
        on = _chosen(x, self.p)
        return on * toned + (1 - on) * x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PasteText(nn.Module):
    """A caption or watermark: a few random characters in a random colour and place.

    Text is drawn by Pillow once, into a bank of masks, and pasted from the
    bank batch-wise; drawing it per image was the slowest edit of all.
    """

    LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

    def __init__(self, size: int, p: float = 0.15, bank: int = 128):
        super().__init__()
        self.p = p
        masks = []
        for _ in range(bank):
            canvas = Image.new("L", (size, size))
            text = "".join(random.choices(self.LETTERS, k=random.randint(3, 8)))
            xy = (random.randint(0, max(0, size // 2)), random.randint(0, max(0, size - 12)))
            ImageDraw.Draw(canvas).text(xy, text, fill=255, font_size=max(8, size // 6))
            masks.append(np.asarray(canvas))
        self.register_buffer("masks", torch.from_numpy(np.stack(masks))[:, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pick = torch.randint(len(self.masks), (n,), device=x.device)
        alpha = self.masks[pick].to(x) / 255 * _chosen(x, self.p)
        colour = torch.rand(n, 3, 1, 1, device=x.device, dtype=x.dtype)
        return x * (1 - alpha) + colour * alpha

    def extra_repr(self) -> str:
        return f"p={self.p}, bank={len(self.masks)}"


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


# The JPEG standard's example quantisation tables (ITU-T T.81, Annex K), luma and chroma.
LUMA_Q = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    dtype=torch.float32)
CHROMA_Q = torch.full((8, 8), 99.0)
CHROMA_Q[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99],
                                 [47, 66, 99, 99]], dtype=torch.float32)
YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]])


class JpegArtefacts(nn.Module):
    """A JPEG save at a random quality, batch-wise: YCbCr, 4:2:0 chroma, 8×8 block DCT
    quantised with the standard's tables scaled as libjpeg scales them for a quality."""

    def __init__(self, p: float = 0.3, quality: tuple[int, int] = (30, 90)):
        super().__init__()
        self.p, self.quality = p, quality
        self.register_buffer("dct", _dct_matrix(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        pad_h, pad_w = -h % 16, -w % 16
        img = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") * 255
        ycc = torch.einsum("ij,njhw->nihw", YCBCR.to(x), img)
        ycc[:, 1:] += 128
        chroma = F.interpolate(F.avg_pool2d(ycc[:, 1:], 2), scale_factor=2, mode="nearest")
        ycc = torch.cat([ycc[:, :1], chroma], 1) - 128
        quality = torch.randint(self.quality[0], self.quality[1] + 1, (n,)).float()
        scale = torch.where(quality < 50, 5000 / quality, 200 - 2 * quality) / 100
        tables = torch.stack([LUMA_Q, CHROMA_Q, CHROMA_Q])[None] * scale[:, None, None, None]
        tables = tables.clamp(1, 255).floor().to(x)[:, :, None, None]  # (n, 3, 1, 1, 8, 8)
        blocks = ycc.unfold(2, 8, 8).unfold(3, 8, 8)  # (n, 3, H/8, W/8, 8, 8)
        coeffs = self.dct @ blocks @ self.dct.T
        blocks = self.dct.T @ (torch.round(coeffs / tables) * tables) @ self.dct
        ycc = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, 3, h + pad_h, w + pad_w) + 128
        ycc[:, 1:] -= 128
        rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(YCBCR).to(x), ycc)
        saved = (rgb[:, :, :h, :w] / 255).clamp(0, 1)
        on = _chosen(x, self.p)
        return on * saved + (1 - on) * x

    def extra_repr(self) -> str:
        return f"p={self.p}, quality={self.quality}"


def _edit(name: str, size: int, min_crop: float) -> nn.Module:
    """One edit as a batched transform of float (N, 3, S, S) images in [0, 1]."""
    import kornia.augmentation as K  # here, not at the top: only training edits images

    return {
        "crop": lambda: K.RandomResizedCrop((size, size), scale=(min_crop, 1.0)),
        "flip": lambda: K.RandomHorizontalFlip(),
        "rotate": lambda: K.RandomRotation(15.0, p=0.3),
        "border": lambda: Border(p=0.2),
        # No hue shift: photo apps rarely offer it.
        "jitter": lambda: Jitter(0.4, p=0.8),
        "grey": lambda: K.RandomGrayscale(p=0.15),
        "sepia": lambda: Sepia(p=0.1),
        "box": lambda: K.RandomErasing(scale=(0.02, 0.12), value=0.0, p=0.2),
        "text": lambda: PasteText(size, p=0.15),
        "blur": lambda: K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=0.3),
        "jpeg": lambda: JpegArtefacts(p=0.3),
        "noise": lambda: K.RandomGaussianNoise(std=0.04, p=0.2),
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
        self.edits = tuple(e for e in EDITS if e in edits)
        self.transform = nn.Sequential(*(_edit(e, size, min_crop) for e in self.edits))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, S, S, 3) on the CPU → float (N, 3, S, S) in [0, 1]."""
        x = batch.permute(0, 3, 1, 2).float().div_(255)
        with torch.no_grad():
            return self.transform(x).clamp_(0, 1).contiguous()

    def describe(self) -> str:
        """The pipeline with its parameters, for the checkpoint to record."""
        return repr(self.transform)
