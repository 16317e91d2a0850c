"""Input corruption for denoising autoencoders, in training and in the denoise tool.

Vincent et al., "Extracting and Composing Robust Features with Denoising
Autoencoders" (2008). Torch only: the web app's denoise tool adds noise
without loading the training code (and torchvision with it).
"""
from __future__ import annotations

import torch

NOISES = ("gaussian", "salt-and-pepper", "masking")


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
