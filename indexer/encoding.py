"""Images → codes: the trained model as the search side sees it (:class:`TorchEncoder`,
which checkpoint serves), and where a work list is decoded and encoded (``index
--engine``): in this process tree, or on a Ray cluster.

An :class:`Encoding` turns the paths an indexing run planned into batches
of :class:`Encoded`, in the order given; the job (``indexer.job``) commits
each batch to the catalog and the vector index itself, the same way
whichever encoding made it, so a killed run resumes the same way too.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch

from search.checkpoints import kept_checkpoint
from search.store import Store

from .images import Decoded, batched, decode_file, decode_many
from .model import (Checkpoint, load_checkpoint, read_checkpoint, resolve_device, to_pixels,
                    to_tensor)

# Where a work list is encoded: `index --engine` (the option keeps the name users know; here an
# "engine" is only ever the search engine or SQLAlchemy's).
ENCODINGS = ("local", "ray")
MAX_BLOCKS = 10_000  # of the Ray encoding's work list: above 10k batches, blocks hold several


class TorchEncoder:
    """Wraps a checkpoint for inference; satisfies ``search.engine.Encoder``."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device | str = "cpu"):
        torch.set_flush_denormal(True)  # see indexer.train: denormals are ~100× slower
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        # NHWC: oneDNN's convolutions run batches ~15-20% faster that way on CPU
        # (bench/memory_format.py); a single image costs the same either way.
        self.model = checkpoint.model.to(self.device, memory_format=torch.channels_last).eval()
        # The decoder pass that measures the reconstruction error runs in bfloat16 where the
        # CPU computes it natively (AVX-512 BF16, AMX): 2.4× faster than float32, which
        # cuts the model's share of indexing by a third, and the errors stay within 0.1 %
        # (bench/indexing.py). Codes are float32 everywhere, so searches do not change.
        self.error_in_bf16 = self.device.type == "cpu" and native_bf16()
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
        with torch.autocast("cpu", torch.bfloat16, enabled=self.error_in_bf16):
            recon = self.model.decode(z)
        err = (recon.float() - x).pow(2).flatten(1).mean(1)
        return z.float().cpu().numpy(), err.cpu().numpy()

    def reconstruct(self, pixels: np.ndarray) -> np.ndarray:
        """Round trip through the bottleneck; for a denoising model, the denoised image."""
        return self.decode(self.encode(pixels))


def native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16, or AMX's tiles).

    Not oneDNN's own ``_is_mkldnn_bf16_supported``, which says yes to any AVX-512
    CPU (Skylake to Ice Lake), where it emulates bfloat16 at a cost. These checks
    are torch's private ones; should a release drop them, the answer is no, and
    errors are float32 as before.
    """
    checks = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(check() for check in checks if check is not None)
    except RuntimeError:
        return False


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


class EncodingError(RuntimeError):
    """The encoding asked for cannot run here, or its cluster failed."""


@dataclass(frozen=True)
class Encoded:
    """One file's outcome: its code and reconstruction error, or why it has none."""

    path: str
    code: np.ndarray | None  # None: not decodable (error says why)
    reconstruction_error: float = 0.0
    error: str | None = None
    width: int = 0
    height: int = 0
    format: str | None = None
    taken_at: float | None = None


class Encoding(Protocol):
    def __call__(self, paths: Sequence[str]) -> Iterator[list[Encoded]]: ...


def encode_decoded(encoder: TorchEncoder, chunk: list[Decoded]) -> list[Encoded]:
    """Encode the decodable images of *chunk* in one model pass; the others keep their error."""
    good = [d.pixels for d in chunk if d.pixels is not None]
    encoded = iter(zip(*encoder.encode_with_error(np.stack(good)))) if good else iter(())
    out = []
    for d in chunk:
        if d.pixels is None:
            out.append(Encoded(str(d.path), None, 0.0, d.error or "unreadable"))
            continue
        code, err = next(encoded)
        out.append(Encoded(str(d.path), code.astype(np.float32), float(err), None,
                           d.width, d.height, d.format, d.taken_at))
    return out


@dataclass(frozen=True)
class LocalEncoding:
    """Decoding processes (``indexer.images.decode_many``) feeding this process's model."""

    encoder: TorchEncoder
    batch_size: int = 128
    workers: int | None = None

    def __call__(self, paths: Sequence[str]) -> Iterator[list[Encoded]]:
        decoded = decode_many(list(paths), self.encoder.image_size, self.workers)
        for chunk in batched(decoded, self.batch_size):
            yield encode_decoded(self.encoder, chunk)


class RayEncodeActor:
    """A Ray Data actor: loads the model once, then decodes and encodes batches of paths.

    The checkpoint travels as bytes, so workers on other hosts need no copy
    of the data dir; the images they read must be at the same paths there.
    """

    def __init__(self, checkpoint: bytes, threads: int = 1):
        torch.set_num_threads(threads)
        loaded = read_checkpoint(io.BytesIO(checkpoint))
        loaded.sha256 = hashlib.sha256(checkpoint).hexdigest()
        self.encoder = TorchEncoder(loaded, "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = self.encoder.image_size
        paths = [Path(os.fsdecode(p)) for p in batch["path"]]
        done = encode_decoded(self.encoder, [decode_file(p, size) for p in paths])
        return to_columns(done, self.encoder.dim)


def to_columns(done: list[Encoded], dim: int) -> dict[str, np.ndarray]:
    """Encoded rows as the columns Ray Data moves (numbers and strings only)."""
    codes = np.zeros((len(done), dim), np.float32)
    for i, e in enumerate(done):
        if e.code is not None:
            codes[i] = e.code
    return {
        "path": np.array([os.fsencode(e.path) for e in done], dtype=object),
        "ok": np.array([e.code is not None for e in done]),
        "code": codes,
        "reconstruction_error": np.array([e.reconstruction_error for e in done], np.float64),
        "error": np.array([e.error or "" for e in done], dtype=object),
        "width": np.array([e.width for e in done], np.int64),
        "height": np.array([e.height for e in done], np.int64),
        "format": np.array([e.format or "" for e in done], dtype=object),
        "taken_at": np.array([math.nan if e.taken_at is None else e.taken_at for e in done]),
    }


def from_columns(batch: dict[str, np.ndarray]) -> list[Encoded]:
    out = []
    for i, path in enumerate(batch["path"]):
        ok = bool(batch["ok"][i])
        taken = float(batch["taken_at"][i])
        out.append(Encoded(os.fsdecode(path), batch["code"][i].copy() if ok else None,
                           float(batch["reconstruction_error"][i]), str(batch["error"][i]) or None,
                           int(batch["width"][i]), int(batch["height"][i]),
                           str(batch["format"][i]) or None, None if math.isnan(taken) else taken))
    return out


class RayEncoding:
    """Ray Data: ``map_batches`` over an actor pool of :class:`RayEncodeActor`, results in order.

    *address* None starts a local cluster (every core of this machine); "auto" or
    ``ray://host:port`` joins a running one, at once, so that a wrong address is
    told before the run plans anything. *actors* defaults to one per CPU of the
    cluster, each on one CPU with one torch thread. An actor that dies (a file
    that crashes the decoder) is not restarted: the run stops with an error, as
    the local encoding's does, and the next run carries on from the last batch.
    """

    def __init__(self, encoder: TorchEncoder, batch_size: int = 128,
                 address: str | None = None, actors: int | None = None):
        self.batch_size = batch_size
        self.checkpoint = Path(encoder.checkpoint.path).read_bytes()
        if hashlib.sha256(self.checkpoint).hexdigest() != encoder.sha256:
            raise EncodingError(f"{encoder.checkpoint.path} changed since it was loaded; "
                                "run the command again")
        self.ray = _connect(address)
        self.actors = actors or max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def __call__(self, paths: Sequence[str]) -> Iterator[list[Encoded]]:
        if not paths:
            return
        ray = self.ray
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # ids follow the plan, as locally
        context.enable_progress_bars = False  # the job draws its own
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # not each start and end
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "disabled"
        # Paths as bytes: Arrow's strings cannot hold a name that is not UTF-8. A block per
        # batch: Ray would otherwise put a short list in one block, which one actor gets; and
        # no more actors than blocks (each is a process that takes seconds to start).
        blocks = min(math.ceil(len(paths) / self.batch_size), MAX_BLOCKS)
        items = [{"path": os.fsencode(p)} for p in paths]
        with warnings.catch_warnings():
            # Ray 2.60 deprecates these extra arguments, yet they are its only way to keep a
            # dead actor from being restarted, forever, on the same file (pyproject: <2.64).
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
            dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                RayEncodeActor, fn_constructor_kwargs={"checkpoint": self.checkpoint},
                batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(self.actors, blocks)), num_cpus=1,
                max_restarts=0, max_task_retries=0)
        try:
            for batch in dataset.iter_batches(batch_size=self.batch_size, batch_format="numpy"):
                yield from_columns(batch)
        except ray.exceptions.RayError as exc:
            raise EncodingError(f"the Ray cluster failed to encode: {exc}") from exc


def _connect(address: str | None):
    """The ``ray`` module, connected to (or having started) a cluster."""
    import ray  # only here: Ray Data is an optional extra, and slow to import

    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
            where = f"join the Ray cluster at {address}" if address else \
                "start a local Ray cluster"
            raise EncodingError(f"cannot {where}: {exc}") from exc
    return ray


def make_encoding(name: str, encoder: TorchEncoder, batch_size: int = 128,
                  workers: int | None = None, ray_address: str | None = None,
                  ray_actors: int | None = None) -> Encoding:
    """The encoding ``--engine NAME`` asks for (local: *workers* decoding processes)."""
    if name == "local":
        return LocalEncoding(encoder, batch_size, workers)
    if name == "ray":
        if importlib.util.find_spec("ray") is None:
            raise EncodingError("the ray encoding (--engine ray) needs Ray Data: "
                                "pip install 'lookalike[ray]'")
        return RayEncoding(encoder, batch_size, ray_address, ray_actors)
    raise ValueError(f"the encoding must be one of {ENCODINGS}, not {name!r}")
