"""Denoising and compression of an uploaded image: the model as an image tool.

Both take the same uploads as ``/api/search`` (multipart ``image`` or JSON
``image_base64``, read in memory, type sniffed) and need only a model, not
an index; PQ compression also needs indexed codes for its codebook.
"""
from __future__ import annotations

import base64
import math
import secrets

import numpy as np
import torch
from flask import Blueprint, Response, request

from indexer.compression import (CompressionError, code_dtype, compress_code, decompress_code,
                                 psnr, smallest_png)
from indexer.model import corrupt, to_pixels, to_tensor

from .answers import CompressResponse, DenoiseResponse, answer
from .apispec import OCTET_STREAM, operation
from .backend import current_backend
from .errors import ApiError
from .fields import SEED_MAX
from .schemas import (KIND_HEADER, NOT_READY, NOTE_HEADER, UPLOAD_ERRORS, CodeJson, CompressParams,
                      DenoiseParams, writing)
from .serialize import png_bytes, png_data_url
from .uploads import decode_query

PNG = "image/png"
PNG_HEADERS = {KIND_HEADER: {"schema": {"type": "string"}},
               NOTE_HEADER: {"schema": {"type": "string"},
                             "description": "Present when the model is not a dae."}}

bp = Blueprint("tools", __name__)


def kind_note(kind: str, wanted: str, what: str) -> str | None:
    """A sentence for clients when the model is not the kind this feature is made for."""
    if kind == wanted:
        return None
    return (f"This model is a {kind!r} autoencoder; {what} works best with one trained "
            f"with --kind {wanted}.")


def add_gaussian_noise(pixels: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """*pixels* (S, S, 3 uint8) plus N(0, σ²) noise on the [0, 1] scale, as training does."""
    noisy = corrupt(to_tensor(pixels[None]), "gaussian", sigma, torch.Generator().manual_seed(seed))
    return to_pixels(noisy)[0]


def decibels(value: float) -> float | None:
    """PSNR for JSON: rounded, and null for identical images (infinite PSNR)."""
    return round(value, 3) if math.isfinite(value) else None


# -- denoising ---------------------------------------------------------------------------------

@bp.post("/api/denoise")
@operation(DenoiseParams, answers={
    200: ((PNG, DenoiseResponse), "The denoised image at the model's input size (PNG; JSON "
                                  "with format=json).", PNG_HEADERS), **UPLOAD_ERRORS})
def denoise(params: DenoiseParams):
    """The model's reconstruction of the upload, optionally after adding Gaussian noise.

    PNG by default; ``format=json`` returns the noisy input and the result
    as data URLs, with their PSNR against the clean upload when noise was added.
    """
    data, sigma, seed, fmt = params.image, params.add_noise, params.seed, params.format
    encoder = current_backend().serving().encoder
    query = decode_query(data, encoder.image_size)
    clean = query.pixels
    if sigma:
        seed = secrets.randbelow(SEED_MAX + 1) if seed is None else seed
        noisy = add_gaussian_noise(clean, sigma, seed)
    else:
        seed, noisy = None, clean
    denoised = encoder.reconstruct(noisy[None])[0]
    note = kind_note(encoder.kind, "dae", "denoising")
    if fmt == "png":
        response = Response(png_bytes(denoised), mimetype="image/png")
        response.headers[KIND_HEADER] = encoder.kind
        if note:
            response.headers[NOTE_HEADER] = note
        if seed is not None:
            response.headers["X-Lookalike-Noise-Seed"] = str(seed)
        response.headers["Cache-Control"] = "no-store"
        return response
    return answer(DenoiseResponse(
        model_kind=encoder.kind, note=note, image_size=encoder.image_size,
        width=query.width, height=query.height, format=query.format,
        add_noise=sigma, seed=seed,
        clean=png_data_url(clean) if sigma else None,
        noisy=png_data_url(noisy), denoised=png_data_url(denoised),
        psnr={"noisy": decibels(psnr(clean, noisy)),
              "denoised": decibels(psnr(clean, denoised))} if sigma else None,
    ))


# -- compression -------------------------------------------------------------------------------

@bp.post("/api/compress")
@operation(CompressParams, answers=writing({
    200: (CompressResponse, "The code and what it costs."), **UPLOAD_ERRORS}))
def compress(params: CompressParams):
    """The upload as a latent code file (the CLI's ``.lkc`` format), with what it costs.

    Sizes are compared with the uploaded file and with a PNG of the image at
    the model's input size, the fairest lossless comparison; the PSNR is of
    that resized image against the decoded code.
    """
    data, dtype = params.image, params.dtype
    backend = current_backend()
    serving = backend.serving()
    engine = serving.engine
    encoder = engine.encoder
    query = decode_query(data, encoder.image_size)
    code = encoder.encode(query.pixels[None])[0]
    pq = backend.codebook(encoder.sha256) if dtype == "pq" else None
    blob = compress_code(code, dtype, encoder.sha256, pq)
    decoded = encoder.decode(decompress_code(blob, encoder.sha256, pq)[None])[0]
    png_size = len(smallest_png(query.pixels))
    return answer(CompressResponse(
        dtype=dtype, model_kind=encoder.kind, latent_dim=encoder.dim,
        image_size=encoder.image_size,
        width=query.width, height=query.height, format=query.format,
        code_base64=base64.b64encode(blob).decode("ascii"),
        bytes={"code": len(blob), "upload": len(data), "png": png_size},
        ratio={"upload": round(len(data) / len(blob), 2), "png": round(png_size / len(blob), 2)},
        psnr=decibels(psnr(query.pixels, decoded)),
        decoded=png_data_url(decoded),
    ))


@bp.post("/api/decompress")
@operation(body=CodeJson, raw_body=True, answers={
    200: (PNG, "The decoded image at the model's input size."),
    400: "Not a code file, damaged, or made by another model (bad_code).",
    413: "Body over the upload limit.", 415: "Multipart is not accepted.", 503: NOT_READY})
def decompress(body: CodeJson | None):
    """A code file back to pixels: PNG at the model's input size.

    The code must come from the loaded checkpoint (its header says which);
    a foreign, truncated or otherwise damaged code is a 400, never a 500.
    """
    blob = _read_code(body)
    backend = current_backend()
    encoder = backend.serving().encoder
    pq = backend.codebooks.find(encoder.sha256) if code_dtype(blob) == "pq" else None
    try:
        z = decompress_code(blob, encoder.sha256, pq)
    except CompressionError as exc:
        raise ApiError(400, "bad_code", str(exc)) from exc
    if z.shape != (encoder.dim,) or not np.all(np.isfinite(z)):
        raise ApiError(400, "bad_code", f"the code does not hold {encoder.dim} finite numbers "
                       "for this model; it is damaged")
    response = Response(png_bytes(encoder.decode(z[None])[0]), mimetype="image/png")
    response.headers[KIND_HEADER] = encoder.kind
    response.headers["X-Lookalike-Code-Dtype"] = code_dtype(blob)
    response.headers["Cache-Control"] = "no-store"
    return response


def _read_code(body: CodeJson | None) -> bytes:
    """The code from JSON ``code_base64``, or the raw request body (any other type)."""
    if request.mimetype == "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the code as the raw request body "
                       f"({OCTET_STREAM}) or as JSON with 'code_base64'")
    blob = body.code_base64 if body is not None else request.get_data(cache=False)
    if not blob:
        raise ApiError(400, "bad_code", "the code is empty (0 bytes)")
    return blob
