"""The view-invariance term: two edited views of one image should get one code.

Reconstruction alone teaches the code to keep pixels, so a cropped or
re-coloured copy lands far from its original. Pulling the codes of two
views together, against the other images of the batch, teaches the code
what edits to ignore (SimCLR: Chen et al., "A Simple Framework for
Contrastive Learning of Visual Representations", 2020).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """A small MLP between the code and the contrastive loss; never stored with the model.

    Chen et al. (2020) found the loss works best on such a projection for
    linear classification: the head may discard what the views disagree on
    without the code losing it. Search compares the codes themselves, and
    on bench/copies.py the term on the code beat the head by 0.15 mAP, so
    the head is an option (``--head``), not the default.
    """

    def __init__(self, latent_dim: int, hidden: int = 256, out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy), Chen et al. 2020, eq. 1.

    Row i of *a* and row i of *b* are two views of one image: each must pick
    its partner out of the 2N − 1 other rows by cosine similarity / τ.
    """
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / temperature
    n = a.shape[0]
    sim.fill_diagonal_(float("-inf"))  # a view is not its own partner
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)
