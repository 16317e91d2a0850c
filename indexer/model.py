"""The autoencoder family: its configs, its layers, its checkpoints, and what it reads and
writes (pixels ⇄ tensors, the denoising corruptions, walks in the latent space).

A checkpoint holds the model's config next to its weights, as nanoGPT's does
(``model_args`` saved beside the state dict), so a checkpoint alone rebuilds its
model. Training is ``indexer.train``; this module is all that encoding, the web
app's tools and the benches need of a model, so none of them loads the training code.
"""
from __future__ import annotations

import abc
import hashlib
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search.files import replace_atomically
from search.regular_files import open_regular, sha256_file

# 2: codes with a copy part (AEConfig.copy_dim). A Lookalike that reads only format 1 would
# drop copy_dim and encode codes unlike the index's, so those checkpoints say format 2.
CHECKPOINT_FORMAT = 2


class ModelConfigError(ValueError):
    """A config whose layer shapes cannot work; raised when the model is built."""


class CheckpointError(ValueError):
    """A file that is not a usable Lookalike checkpoint."""


def conv_out(size: int, kernel: int, stride: int, padding: int) -> float:
    """Spatial output of a convolution: O = (W − F + 2P)/S + 1 (CS231n)."""
    return (size - kernel + 2 * padding) / stride + 1


KINDS = ("ae", "dae", "vae", "linear")
# Every layer halves the size (doubles it, in the decoder): 4×4 kernels, stride 2, padding 1,
# as DCGAN's (Radford et al. 2016), which leave no checkerboard at the borders.
KERNEL, STRIDE, PADDING = 4, 2, 1


@dataclass
class AEConfig:
    """Everything needed to rebuild an autoencoder; stored in every checkpoint.

    ``kind``: ``ae`` plain, ``dae`` denoising (same network, corrupted
    inputs in training), ``vae`` variational (μ and log σ² heads),
    ``linear`` one linear map each way with no activations (the PCA
    baseline in autoencoder form). ``tied``: the decoder reuses the
    encoder's weights transposed (W* = Wᵀ).
    """

    image_size: int = 64
    channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = 64
    kind: str = "ae"
    tied: bool = False
    # The code's first copy_dim numbers are its copy part: the part the view-invariance term
    # acts on, which near-duplicate grouping reads. Search and the decoder read the whole
    # code. 0: the whole code is the copy part (every checkpoint from before the split).
    copy_dim: int = 0

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)

    @property
    def copy_part(self) -> slice:
        """The numbers of a code that tell copies apart (see ``copy_dim``)."""
        return slice(0, self.copy_dim or self.latent_dim)

    @property
    def depth(self) -> int:
        return len(self.widths)

    def feature_sizes(self) -> list[int]:
        """Spatial size after each encoder layer, checking every step is whole.

        When O is whole, the mirrored transposed convolution's output
        (O − 1)·S − 2P + F gives back the encoder's input W exactly, so the
        decoder needs no check of its own.
        """
        if self.kind not in KINDS:
            raise ModelConfigError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.image_size < 1 or self.channels < 1 or self.latent_dim < 1:
            raise ModelConfigError("image_size, channels and latent_dim must be positive")
        if not 0 <= self.copy_dim <= self.latent_dim:
            raise ModelConfigError(f"the copy part ({self.copy_dim}) must fit in the code "
                                   f"({self.latent_dim} numbers)")
        if self.kind == "linear":
            return []
        if not self.widths or any(w < 1 for w in self.widths):
            raise ModelConfigError("widths must be a non-empty list of positive numbers")
        sizes = []
        size = self.image_size
        for layer in range(self.depth):
            out = conv_out(size, KERNEL, STRIDE, PADDING)
            if out < 1 or out != int(out):
                raise ModelConfigError(
                    f"encoder layer {layer + 1}: (W − F + 2P)/S + 1 = ({size} − {KERNEL} "
                    f"+ 2·{PADDING})/{STRIDE} + 1 = {out:g} is not a whole positive "
                    f"size; choose an image size divisible by {STRIDE ** self.depth} "
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
        """The config a checkpoint stored. Checkpoints before #25 also stored the layers'
        kernel, stride and padding, which were always these: any other is refused."""
        layers = {"kernel": KERNEL, "stride": STRIDE, "padding": PADDING}
        other = {k: d[k] for k, v in layers.items() if d.get(k, v) != v}
        if other:
            raise ModelConfigError(f"layers with {other} are not a Lookalike model's "
                                   f"({layers})")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


# How much the copy part counts in a search's cosine (the detail part: the rest).
COPY_WEIGHT = 0.6


def split_code(z: torch.Tensor, copy_dim: int) -> torch.Tensor:
    """A code whose copy part and detail part each lie on a sphere, scaled COPY_WEIGHT and
    1 − COPY_WEIGHT: the cosine of two such codes is 0.69 of their copy parts' cosine and
    0.31 of their details' (0.6² and 0.4², over their sum). Unweighted, the detail part
    (which keeps pixels) drowned the copy part in a search for an edited copy:
    bench/copies.py mAP 0.78 for the whole code, 0.925 for its copy part alone, 0.906 with
    this weighting applied afterwards, where Fashion-MNIST's mAP stays that of the whole
    code. The scale keeps a code's length √D, like an unconstrained code's, for the
    decoder. *copy_dim* 0: the code as it is (no split).
    """
    if not copy_dim or copy_dim >= z.shape[1]:
        return z
    scale = z.shape[1] ** 0.5 / (COPY_WEIGHT ** 2 + (1 - COPY_WEIGHT) ** 2) ** 0.5
    return torch.cat([F.normalize(z[:, :copy_dim], dim=1) * COPY_WEIGHT,
                      F.normalize(z[:, copy_dim:], dim=1) * (1 - COPY_WEIGHT)], 1) * scale


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) per sample, closed form for diagonal Gaussians.

    Kingma & Welling, "Auto-Encoding Variational Bayes" (2013), appendix B:
    −½ Σ (1 + log σ² − μ² − σ²).
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


class Loss(NamedTuple):
    total: torch.Tensor  # what to minimise
    mse: torch.Tensor  # per-pixel reconstruction MSE, detached


class Autoencoder(nn.Module, abc.ABC):
    """The interface every kind shares: encode, decode, forward and the training loss."""

    config: AEConfig

    @abc.abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code used for search (μ for a VAE)."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] (unbounded for the linear kind) from codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, target: torch.Tensor, beta: float = 1.0) -> Loss:
        """The reconstruction loss for inputs *x*.

        *target* differs from *x* for a denoising autoencoder (clean vs corrupted).
        """
        code = self.encode(x)
        mse = F.mse_loss(self.decode(code), target)
        return Loss(mse, mse.detach())


class ConvAutoencoder(Autoencoder):
    """Strided-conv encoder to a bottleneck vector, a mirrored decoder, sigmoid output.

    Inputs are float tensors in [0, 1], shape (N, C, S, S). With
    ``tied``, each transposed convolution uses its mirror convolution's
    weight tensor (``conv_transpose2d`` reads the (out, in, k, k) weight
    of a conv as its transpose) and the latent layers share one matrix.
    """

    def __init__(self, config: AEConfig):
        super().__init__()
        sizes = config.feature_sizes()
        self.config = config
        k, s, p = KERNEL, STRIDE, PADDING
        self.convs = nn.ModuleList()
        self.enc_norms = nn.ModuleList()
        in_ch = config.channels
        for w in config.widths:
            self.convs.append(nn.Conv2d(in_ch, w, k, s, p))
            self.enc_norms.append(nn.BatchNorm2d(w))
            in_ch = w
        self.bottom = (config.widths[-1], sizes[-1], sizes[-1])
        flat = config.widths[-1] * sizes[-1] * sizes[-1]
        heads = 2 if config.kind == "vae" else 1
        self.to_latent = nn.Linear(flat, heads * config.latent_dim)
        rev = list(reversed(config.widths))
        outs = rev[1:] + [config.channels]
        if config.tied:
            self.from_latent_bias = nn.Parameter(torch.zeros(flat))
            self.deconv_biases = nn.ParameterList([nn.Parameter(torch.zeros(o)) for o in outs])
        else:
            self.from_latent = nn.Linear(config.latent_dim, flat)
            self.deconvs = nn.ModuleList(nn.ConvTranspose2d(w, o, k, s, p) for w, o in zip(rev, outs))
        self.dec_norms = nn.ModuleList(nn.BatchNorm2d(o) for o in outs[:-1])

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv, norm in zip(self.convs, self.enc_norms):
            h = F.leaky_relu(norm(conv(h)), 0.2)
        return self.to_latent(h.flatten(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self._heads(x)[:, : self.config.latent_dim]
        return split_code(z, self.config.copy_dim) if self.config.kind != "vae" else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.tied:
            h = F.linear(z, self.to_latent.weight[: c.latent_dim].t(), self.from_latent_bias)
        else:
            h = self.from_latent(z)
        h = torch.relu(h.view(-1, *self.bottom))
        for i in range(c.depth):
            if c.tied:
                conv = self.convs[c.depth - 1 - i]
                h = F.conv_transpose2d(h, conv.weight, self.deconv_biases[i], STRIDE, PADDING)
            else:
                h = self.deconvs[i](h)
            if i < c.depth - 1:
                h = F.leaky_relu(self.dec_norms[i](h), 0.2)
        return torch.sigmoid(h)

    def loss(self, x, target, beta=1.0):
        if self.config.kind != "vae":
            return super().loss(x, target, beta)
        heads = self._heads(x)
        mu, logvar = heads.chunk(2, dim=1)
        logvar = logvar.clamp(-10, 10)
        # Reparameterisation trick (Kingma & Welling 2013): z = μ + σ·ε, ε ~ N(0, I).
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.decode(z)
        sse = (recon - target).pow(2).flatten(1).sum(1)
        # Negative ELBO with a Gaussian likelihood, per pixel so it reads like the MSE.
        loss = (sse + beta * kl_divergence(mu, logvar)).mean() / recon[0].numel()
        return Loss(loss, F.mse_loss(recon, target).detach())


class LinearAutoencoder(Autoencoder):
    """x̂ = W₂(W₁x + b₁) + b₂ on flattened pixels: no activations, no sigmoid.

    Its optimum spans the top principal subspace (Baldi & Hornik 1989), so
    its reconstruction error is PCA's at the same dimension: the floor every
    learned model must beat.
    """

    def __init__(self, config: AEConfig):
        super().__init__()
        config.feature_sizes()
        self.config = config
        n = config.channels * config.image_size ** 2
        self.encoder = nn.Linear(n, config.latent_dim)
        if config.tied:
            self.decoder_bias = nn.Parameter(torch.zeros(n))
        else:
            self.decoder = nn.Linear(config.latent_dim, n)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.tied:
            out = F.linear(z, self.encoder.weight.t(), self.decoder_bias)
        else:
            out = self.decoder(z)
        return out.view(-1, c.channels, c.image_size, c.image_size)


def build_model(config: AEConfig) -> Autoencoder:
    """The one place a config becomes a model, so every caller gets the same checks."""
    config.feature_sizes()
    return LinearAutoencoder(config) if config.kind == "linear" else ConvAutoencoder(config)


def save_checkpoint(path: str | os.PathLike, model: Autoencoder, facts: dict[str, Any]) -> str:
    """Write config + weights + training facts atomically; returns the file's sha256.

    Weights are saved from CPU copies, so a checkpoint made on a GPU loads anywhere.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT if model.config.copy_dim else 1,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "facts": facts,
    }
    replace_atomically(path, lambda tmp: torch.save(payload, tmp), "ckpt")
    return sha256_file(path)


@dataclass
class Checkpoint:
    model: Autoencoder
    facts: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild a model from a checkpoint onto *device*, in eval mode.

    The file is read once, and its sha256 is that of the bytes the model came from: read
    twice, a checkpoint replaced in between (``lookalike train`` beside a serving app) gave
    one model's weights under the other's name.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no model checkpoint at {path}")
    try:
        with open_regular(path) as f:
            data = f.read()
    except OSError as exc:  # unreadable, or no longer a regular file
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc}") from exc
    checkpoint = read_checkpoint(io.BytesIO(data), device, str(path))
    checkpoint.path, checkpoint.sha256 = path, hashlib.sha256(data).hexdigest()
    return checkpoint


def read_checkpoint(source: str | os.PathLike | BinaryIO, device: str | torch.device = "cpu",
                    name: str = "the checkpoint") -> Checkpoint:
    """A checkpoint from a file or a stream (a Ray worker gets the bytes, not the file)."""
    try:
        payload = torch.load(source, map_location=device, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{name} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{name} is not a Lookalike checkpoint")
    if payload.get("format", 0) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{name} was written by a newer Lookalike; upgrade to load it")
    try:
        model = build_model(AEConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (ModelConfigError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{name} does not rebuild its model: {exc}") from exc
    model.to(device).eval()
    return Checkpoint(model, payload.get("facts", {}))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available")
    return torch.device(name)


# -- pixels ⇄ tensors: the one conversion between images as arrays and what the model takes --
# Images travel as uint8 arrays (N, S, S, 3), as decoded; the model takes
# float (N, 3, S, S) in [0, 1]. A permuted NHWC tensor is already
# channels-last in memory, which is how the model's convolutions run fastest
# on a CPU, so that layout is kept rather than copied back.

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


# -- input corruption for denoising autoencoders, in training and in the denoise tool -------
# Vincent et al., "Extracting and Composing Robust Features with Denoising
# Autoencoders" (2008).

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


# -- walking the latent space: sampling, interpolation and arithmetic ------------------------
# Meaningful for a variational autoencoder, whose KL term pulls codes
# towards N(0, I) so that the prior can be sampled and straight lines
# between codes decode to plausible images (Kingma & Welling 2013). For the
# other kinds these run too, but samples from N(0, I) may decode to noise.

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
