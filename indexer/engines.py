"""Where a work list is decoded and encoded: in this process tree, or on a Ray cluster.

An engine turns the paths an indexing run planned into batches of
:class:`Encoded`, in the order given; the job (``indexer.job``) commits
each batch to the catalog and the vector index itself, the same way
whichever engine made it, so a killed run resumes the same way too.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch

from .encoder import TorchEncoder
from .images import Decoded, batched, decode_file, decode_many
from .model import read_checkpoint

ENGINES = ("local", "ray")


class EngineError(RuntimeError):
    """The engine asked for cannot run here."""


@dataclass(frozen=True)
class Encoded:
    """One file's outcome: its code and reconstruction error, or why it has none."""

    path: str
    code: np.ndarray | None  # None: not decodable (error says why)
    recon_error: float = 0.0
    error: str | None = None
    width: int = 0
    height: int = 0
    format: str | None = None
    taken_at: float | None = None


class Engine(Protocol):
    def __call__(self, paths: Sequence[str]) -> Iterator[list[Encoded]]: ...


def encode_decoded(encoder: TorchEncoder, chunk: list[Decoded]) -> list[Encoded]:
    """Encode the decodable images of *chunk* in one model pass; the others keep their error."""
    good = [d for d in chunk if d.pixels is not None]
    codes, errors = (encoder.encode_with_error(np.stack([d.pixels for d in good]))
                     if good else ((), ()))
    found = {id(d): (c, e) for d, c, e in zip(good, codes, errors)}
    out = []
    for d in chunk:
        code, err = found.get(id(d), (None, 0.0))
        out.append(Encoded(str(d.path), None if code is None else code.astype(np.float32),
                           float(err), d.error or (None if code is not None else "unreadable"),
                           d.width, d.height, d.format, d.taken_at))
    return out


@dataclass(frozen=True)
class LocalEngine:
    """Decoding processes (``indexer.images.decode_many``) feeding this process's model."""

    encoder: TorchEncoder
    batch_size: int = 128
    workers: int | None = None

    def __call__(self, paths: Sequence[str]) -> Iterator[list[Encoded]]:
        decoded = decode_many(list(paths), self.encoder.image_size, self.workers)
        for chunk in batched(decoded, self.batch_size):
            yield encode_decoded(self.encoder, chunk)


class RayEncoder:
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
        done = encode_decoded(self.encoder, [decode_file(Path(p), size) for p in batch["path"]])
        return to_columns(done, self.encoder.dim)


def to_columns(done: list[Encoded], dim: int) -> dict[str, np.ndarray]:
    """Encoded rows as the columns Ray Data moves (numbers and strings only)."""
    codes = np.zeros((len(done), dim), np.float32)
    for i, e in enumerate(done):
        if e.code is not None:
            codes[i] = e.code
    return {
        "path": np.array([e.path for e in done], dtype=object),
        "ok": np.array([e.code is not None for e in done]),
        "code": codes,
        "recon_error": np.array([e.recon_error for e in done], np.float64),
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
        out.append(Encoded(str(path), batch["code"][i].copy() if ok else None,
                           float(batch["recon_error"][i]), str(batch["error"][i]) or None,
                           int(batch["width"][i]), int(batch["height"][i]),
                           str(batch["format"][i]) or None, None if math.isnan(taken) else taken))
    return out


@dataclass(frozen=True)
class RayEngine:
    """Ray Data: ``map_batches`` over an actor pool of :class:`RayEncoder`, results in order.

    *address* None starts a local cluster (every core of this machine); "auto" or
    ``ray://host:port`` joins a running one. *concurrency* is the number of actors
    (default: one per CPU of the cluster), each on one CPU with one torch thread.
    """

    encoder: TorchEncoder
    batch_size: int = 128
    address: str | None = None
    concurrency: int | None = None

    def __call__(self, paths: Sequence[str]) -> Iterator[list[Encoded]]:
        if not paths:
            return
        import ray  # only here: Ray Data is an optional extra, and slow to import

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # ids follow the plan, as locally
        context.enable_progress_bars = False
        actors = self.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        checkpoint = Path(self.encoder.checkpoint.path).read_bytes()
        dataset = ray.data.from_items([{"path": str(p)} for p in paths]).map_batches(
            RayEncoder, fn_constructor_kwargs={"checkpoint": checkpoint},
            batch_size=self.batch_size, batch_format="numpy", concurrency=actors, num_cpus=1)
        for batch in dataset.iter_batches(batch_size=self.batch_size, batch_format="numpy"):
            yield from_columns(batch)


def make_engine(name: str, encoder: TorchEncoder, batch_size: int = 128,
                workers: int | None = None, ray_address: str | None = None,
                ray_concurrency: int | None = None) -> Engine:
    if name == "local":
        return LocalEngine(encoder, batch_size, workers)
    if name == "ray":
        if importlib.util.find_spec("ray") is None:
            raise EngineError("the ray engine needs Ray Data: pip install 'lookalike[ray]'")
        return RayEngine(encoder, batch_size, ray_address, ray_concurrency)
    raise ValueError(f"engine must be one of {ENGINES}, not {name!r}")
