"""The trained model as the search side sees it: pixels → codes, codes → pixels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from search.checkpoints import kept_checkpoint
from search.store import Store

from .model import Checkpoint, load_checkpoint, resolve_device
from .pixels import to_pixels, to_tensor


class TorchEncoder:
    """Wraps a checkpoint for inference; satisfies ``search.engine.Encoder``."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device | str = "cpu"):
        torch.set_flush_denormal(True)  # see indexer.train: denormals are ~100× slower
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        # NHWC: oneDNN's convolutions run batches ~15-20% faster that way on CPU
        # (bench/memory_format.py); a single image costs the same either way.
        self.model = checkpoint.model.to(self.device, memory_format=torch.channels_last).eval()
        self.image_size = checkpoint.model.config.image_size
        self.dim = checkpoint.model.config.latent_dim
        self.sha256 = checkpoint.sha256
        self.kind = checkpoint.model.config.kind
        # Reconstruction MSE above this (a held-out percentile, see indexer.validation)
        # marks an image as unlike the training collection.
        self.anomaly_threshold: float | None = checkpoint.facts.get("anomaly_threshold")
        # The numbers of a code that tell copies apart, and the similarity from which two
        # images are copies for this model (indexer.validation.copy_calibration); a model
        # that could not tell copies from look-alikes on its collection has no threshold.
        self.copy_part = checkpoint.model.config.copy_part
        copies = checkpoint.facts.get("copies") or {}
        self.copy_threshold: float | None = checkpoint.facts.get("copy_threshold")
        self.separates_copies: bool = copies.get("separable", True)

    @classmethod
    def from_path(cls, path: str | Path, device: str = "auto") -> "TorchEncoder":
        dev = resolve_device(device)
        return cls(load_checkpoint(path, dev), dev)

    @torch.inference_mode()
    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 → (N, D) float32 codes."""
        return self.model.encode(to_tensor(pixels, self.device)).float().cpu().numpy()

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, D) codes → (N, S, S, 3) uint8 reconstructions."""
        z = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32)).to(self.device)
        return to_pixels(self.model.decode(z))

    @torch.inference_mode()
    def encode_with_error(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes and per-image reconstruction MSE (pixels in [0, 1]) in one pass."""
        x = to_tensor(pixels, self.device)
        z = self.model.encode(x)
        err = (self.model.decode(z) - x).pow(2).flatten(1).mean(1)
        return z.float().cpu().numpy(), err.float().cpu().numpy()

    def reconstruct(self, pixels: np.ndarray) -> np.ndarray:
        """Round trip through the bottleneck; for a denoising model, the denoised image."""
        return self.decode(self.encode(pixels))


def load_serving(store: Store, model_path: str | Path, device: str = "auto"
                 ) -> tuple[TorchEncoder, Path | None]:
    """The encoder searches use, and the newer checkpoint that waits for its re-encode (or
    None).

    ``lookalike train`` into a data dir keeps the model that built the index
    (``search.checkpoints``): until a re-encode with the new one finishes,
    the index holds the old model's codes, and only the old model's codes
    compare with them. So while the index says another checkpoint built it
    and that one is kept, it is the one loaded.
    """
    encoder = TorchEncoder.from_path(model_path, device)
    kept = kept_checkpoint(store, encoder.sha256)
    if kept is not None:
        older = TorchEncoder.from_path(kept, device)
        if older.sha256 == store.index_model():
            return older, Path(model_path)
    return encoder, None
