"""Walking the latent space: sampling, interpolation and arithmetic.

Meaningful for a variational autoencoder, whose KL term pulls codes
towards N(0, I) so that the prior can be sampled and straight lines
between codes decode to plausible images (Kingma & Welling 2013). For the
other kinds these run too, but samples from N(0, I) may decode to noise.
"""
from __future__ import annotations

import numpy as np


def sample_prior(dim: int, n: int, seed: int | None = None) -> np.ndarray:
    """*n* codes drawn from the VAE prior N(0, I)."""
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """*steps* codes on the straight line from *a* to *b*, both ends included."""
    if steps < 2:
        raise ValueError("interpolation needs at least 2 steps")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return ((1 - t) * a[None] + t * b[None]).astype(np.float32)


def arithmetic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a − b + c: "the glasses of a, taken off b, put on c"."""
    return (a - b + c).astype(np.float32)
