"""Pixels ⇄ tensors: the one conversion between images as arrays and what the model takes.

Images travel as uint8 arrays (N, S, S, 3), as decoded; the model takes
float (N, 3, S, S) in [0, 1]. A permuted NHWC tensor is already
channels-last in memory, which is how the model's convolutions run fastest
on a CPU, so that layout is kept rather than copied back.
"""
from __future__ import annotations

import numpy as np
import torch


def to_tensor(pixels: np.ndarray | torch.Tensor,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, S, S, 3) → float (N, 3, S, S) in [0, 1] on *device*, channels-last."""
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8))
    x = pixels.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """float (N, 3, S, S) in [0, 1] → uint8 (N, S, S, 3), on the host."""
    return images.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
