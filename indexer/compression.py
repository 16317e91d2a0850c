"""Latent codes as a compressed image format.

A ``.lkc`` file is a small header plus one code: float32, float16, uint8
(per-code linear quantisation) or PQ (product quantisation, Jégou et al.
2011, with a codebook trained on the collection's codes and kept in the
data dir). Decompressing needs the same checkpoint: the header holds the
first bytes of its sha256 and a mismatch is refused.

:class:`Codebooks` owns the PQ codebook files (``search.store.codebook_path``) for
both ``lookalike compress`` and ``/api/compress``: a code compressed by one
decompresses in the other.
"""
from __future__ import annotations

import io
import logging
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
from PIL import Image
from sqlalchemy import select

from search.catalog import ImageRecord, ModelRecord
from search.files import file_key, replace_atomically
from search.store import Store, codebook_path
from search.vector_index import pq_split

log = logging.getLogger(__name__)

MAGIC = b"LKC1"
DTYPES = ("float32", "float16", "uint8", "pq")
_HEADER = struct.Struct("<4sB8sH")  # magic, dtype index, checkpoint sha prefix, dim
MIN_CODES = 32  # fewer indexed codes than this cannot fill a useful PQ codebook


class CompressionError(ValueError):
    """A code file that is not ours, is damaged, or belongs to another model."""


class TooFewCodes(CompressionError):
    """PQ needs a codebook, learnt from at least MIN_CODES codes this model indexed."""


@dataclass
class ProductQuantizer:
    """A FAISS product quantiser with its file, trained once per model and collection."""

    pq: faiss.ProductQuantizer

    @classmethod
    def train(cls, codes: np.ndarray, m: int = 8, nbits: int = 8) -> "ProductQuantizer":
        d = codes.shape[1]
        m = pq_split(d, m)
        nbits = min(nbits, max(1, int(np.log2(max(len(codes), 2)))))
        pq = faiss.ProductQuantizer(d, m, nbits)
        pq.train(np.ascontiguousarray(codes, dtype=np.float32))
        return cls(pq)

    @classmethod
    def load(cls, path: Path) -> "ProductQuantizer":
        return cls(faiss.read_ProductQuantizer(str(path)))

    def save(self, path: Path) -> None:
        """Atomically: a full disk or a crash leaves the previous codebook, never half of one."""
        replace_atomically(path, lambda tmp: faiss.write_ProductQuantizer(self.pq, tmp), "pq")

    def encode(self, code: np.ndarray) -> bytes:
        return self.pq.compute_codes(code.reshape(1, -1).astype(np.float32)).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        return self.pq.decode(np.frombuffer(data, np.uint8).reshape(1, -1))[0]


def code_dtype(blob: bytes) -> str | None:
    """The dtype a code file's header names, or None when it names none."""
    return DTYPES[blob[4]] if len(blob) > 4 and blob[4] < len(DTYPES) else None


def compress_code(code: np.ndarray, dtype: str, checkpoint_sha256: str,
                  pq: ProductQuantizer | None = None) -> bytes:
    code = np.asarray(code, dtype=np.float32).reshape(-1)
    if dtype not in DTYPES:
        raise CompressionError(f"dtype must be one of {DTYPES}")
    header = _HEADER.pack(MAGIC, DTYPES.index(dtype), bytes.fromhex(checkpoint_sha256[:16]),
                          len(code))
    if dtype == "float32":
        payload = code.tobytes()
    elif dtype == "float16":
        payload = code.astype(np.float16).tobytes()
    elif dtype == "uint8":
        lo, hi = float(code.min()), float(code.max())
        scale = (hi - lo) / 255 or 1.0
        payload = struct.pack("<ff", lo, scale) + np.round((code - lo) / scale).astype(np.uint8).tobytes()
    else:
        if pq is None:
            raise CompressionError("PQ compression needs a trained product quantiser")
        payload = pq.encode(code)
    return header + payload


def decompress_code(blob: bytes, checkpoint_sha256: str,
                    pq: ProductQuantizer | None = None) -> np.ndarray:
    if len(blob) < _HEADER.size or blob[:4] != MAGIC:
        raise CompressionError("not a Lookalike code file")
    _, dtype_index, sha, dim = _HEADER.unpack_from(blob)
    if sha.hex() != checkpoint_sha256[:16]:
        raise CompressionError("this code was made by a different model checkpoint")
    if dtype_index >= len(DTYPES):
        raise CompressionError("unknown code type")
    dtype, payload = DTYPES[dtype_index], blob[_HEADER.size:]
    expected = {"float32": 4 * dim, "float16": 2 * dim, "uint8": 8 + dim}.get(dtype)
    if expected is not None and len(payload) != expected:
        raise CompressionError("code file is truncated or damaged")
    if dtype == "float32":
        return np.frombuffer(payload, np.float32).copy()
    if dtype == "float16":
        return np.frombuffer(payload, np.float16).astype(np.float32)
    if dtype == "uint8":
        lo, scale = struct.unpack_from("<ff", payload)
        return np.frombuffer(payload[8:], np.uint8).astype(np.float32) * scale + lo
    if pq is None:
        raise CompressionError("this PQ code needs the collection's product quantiser "
                               "(DATA_DIR/pq-*.faiss), and there is none for this model: "
                               "compress with dtype pq first")
    if len(payload) != pq.pq.code_size:
        raise CompressionError("code file is truncated or damaged")
    return pq.decode(payload)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def smallest_png(pixels: np.ndarray) -> bytes:
    """PNG at full compression: the fairest lossless size a code is compared with."""
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", optimize=True)
    return out.getvalue()


class Codebooks:
    """The PQ codebooks of one data dir, one per checkpoint, cached in memory until
    their file changes; safe to share between threads.

    A codebook is trained once, on first use, from the codes that checkpoint
    stored in the catalog, under a lock (two first requests train once), and
    written atomically; on a read-only data dir the web app keeps it in memory
    only. Loading one needs only its file, so *open_store* (the catalog) is
    called only to train: a model and its codebook copied elsewhere decode codes.
    """

    def __init__(self, data_dir: Path, open_store: Callable[[], Store]):
        self.data_dir = Path(data_dir)
        self.open_store = open_store
        self._lock = threading.Lock()
        # path -> (file key when loaded, or None when it could not be saved; quantiser)
        self._loaded: dict[Path, tuple[tuple[int, int, int] | None, ProductQuantizer]] = {}

    def find(self, checkpoint_sha256: str) -> ProductQuantizer | None:
        """The checkpoint's codebook if one exists (on disk or only in memory), else None."""
        path = codebook_path(self.data_dir, checkpoint_sha256)
        key = file_key(path)
        cached = self._loaded.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        if key is None:
            return None
        with self._lock:
            pq = ProductQuantizer.load(path)
            self._loaded[path] = (key, pq)
        return pq

    def get_or_train(self, checkpoint_sha256: str, must_save: bool = False) -> ProductQuantizer:
        """The checkpoint's codebook, trained from the catalog's codes when there is none.

        *must_save*: a codebook that cannot be written is an error (OSError), not
        kept in memory: the CLI would otherwise write codes nothing can decode.
        """
        found = self.find(checkpoint_sha256)
        if found is not None:
            return found
        path = codebook_path(self.data_dir, checkpoint_sha256)
        with self._lock:
            cached = self._loaded.get(path)
            key = file_key(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            if key is not None:  # another process wrote one meanwhile: use it, never replace it
                pq = ProductQuantizer.load(path)
                self._loaded[path] = (key, pq)
                return pq
            codes = self._stored_codes(checkpoint_sha256)
            if len(codes) < MIN_CODES:
                raise TooFewCodes(f"PQ compression needs a codebook learnt from at least "
                                  f"{MIN_CODES} images indexed with this model, and there are "
                                  f"{len(codes)}")
            pq = ProductQuantizer.train(np.stack(codes))
            self._loaded[path] = (self._save(pq, path, must_save), pq)
        return pq

    def _stored_codes(self, checkpoint_sha256: str) -> list[np.ndarray]:
        with self.open_store().sessions() as s:
            blobs = s.scalars(select(ImageRecord.code).join(ModelRecord)
                              .where(ModelRecord.checkpoint_sha256 == checkpoint_sha256))
            return [np.frombuffer(b, np.float32) for b in blobs]

    @staticmethod
    def _save(pq: ProductQuantizer, path: Path, must_save: bool) -> tuple[int, int, int] | None:
        try:
            pq.save(path)
        except (OSError, RuntimeError) as exc:
            if must_save:
                raise OSError(f"cannot save the PQ codebook to {path}: {exc}") from exc
            log.warning("cannot save the PQ codebook to %s (%s); keeping it in memory", path, exc)
            return None
        return file_key(path)
