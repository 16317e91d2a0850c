"""The convolutional autoencoder and its checkpoints.

A checkpoint holds the model's config next to its weights (as in
pytorch/examples and nanoGPT), so a checkpoint alone rebuilds its model.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = 1


class ModelConfigError(ValueError):
    """A config whose layer shapes cannot work; raised when the model is built."""


class CheckpointError(ValueError):
    """A file that is not a usable Lookalike checkpoint."""


def conv_out(size: int, kernel: int, stride: int, padding: int) -> float:
    """Spatial output of a convolution: O = (W − F + 2P)/S + 1 (CS231n)."""
    return (size - kernel + 2 * padding) / stride + 1


@dataclass
class AEConfig:
    """Everything needed to rebuild an autoencoder; stored in every checkpoint."""

    image_size: int = 64
    channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = 64
    kernel: int = 4
    stride: int = 2
    padding: int = 1
    kind: str = "ae"

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)

    @property
    def depth(self) -> int:
        return len(self.widths)

    def feature_sizes(self) -> list[int]:
        """Spatial size after each encoder layer, checking every step is whole.

        When O is whole, the mirrored transposed convolution's output
        (O − 1)·S − 2P + F gives back the encoder's input W exactly, so the
        decoder needs no check of its own.
        """
        if self.image_size < 1 or self.channels < 1 or self.latent_dim < 1:
            raise ModelConfigError("image_size, channels and latent_dim must be positive")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ModelConfigError("widths must be a non-empty list of positive numbers")
        if self.kernel < 1 or self.stride < 1 or self.padding < 0:
            raise ModelConfigError("kernel and stride must be ≥ 1, padding ≥ 0")
        sizes = []
        size = self.image_size
        for layer in range(self.depth):
            out = conv_out(size, self.kernel, self.stride, self.padding)
            if out < 1 or out != int(out):
                raise ModelConfigError(
                    f"encoder layer {layer + 1}: (W − F + 2P)/S + 1 = ({size} − {self.kernel} "
                    f"+ 2·{self.padding})/{self.stride} + 1 = {out:g} is not a whole positive "
                    f"size; choose an image size divisible by {self.stride ** self.depth} "
                    f"or fewer layers"
                )
            size = int(out)
            sizes.append(size)
        return sizes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AEConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class ConvAutoencoder(nn.Module):
    """Strided-conv encoder to a bottleneck vector, a mirrored decoder, sigmoid output.

    Inputs are float tensors in [0, 1], shape (N, C, S, S).
    """

    def __init__(self, config: AEConfig):
        super().__init__()
        sizes = config.feature_sizes()
        self.config = config
        k, s, p = config.kernel, config.stride, config.padding
        layers: list[nn.Module] = []
        in_ch = config.channels
        for w in config.widths:
            layers += [nn.Conv2d(in_ch, w, k, s, p), nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            in_ch = w
        self.encoder_conv = nn.Sequential(*layers)
        self.bottom = (config.widths[-1], sizes[-1], sizes[-1])
        flat = config.widths[-1] * sizes[-1] * sizes[-1]
        self.to_latent = nn.Linear(flat, config.latent_dim)
        self.from_latent = nn.Linear(config.latent_dim, flat)
        dec: list[nn.Module] = []
        rev = list(reversed(config.widths))
        for i, w in enumerate(rev):
            out_ch = rev[i + 1] if i + 1 < len(rev) else config.channels
            dec.append(nn.ConvTranspose2d(w, out_ch, k, s, p))
            if i + 1 < len(rev):
                dec += [nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2)]
        self.decoder_conv = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder_conv(x)
        return self.to_latent(h.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, *self.bottom)
        h = torch.relu(h)
        return torch.sigmoid(self.decoder_conv(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def build_model(config: AEConfig) -> ConvAutoencoder:
    """The one place a config becomes a model, so every caller gets the same checks."""
    return ConvAutoencoder(config)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: ConvAutoencoder, facts: dict[str, Any]) -> str:
    """Write config + weights + training facts atomically; returns the file's sha256.

    Weights are saved from CPU copies, so a checkpoint made on a GPU loads anywhere.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "facts": facts,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ckpt-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


@dataclass
class Checkpoint:
    model: ConvAutoencoder
    facts: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild a model from a checkpoint onto *device*, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no model checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a Lookalike checkpoint")
    if payload.get("format", 0) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was written by a newer Lookalike; upgrade to load it")
    config = AEConfig.from_dict(payload["config"])
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(model, payload.get("facts", {}), path, file_sha256(path))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available")
    return torch.device(name)
