"""Walking the latent space from the browser: prior samples, interpolation, arithmetic.

Meaningful for a variational autoencoder (``lookalike train --kind vae``),
whose codes are pulled towards N(0, I); the endpoints run with any model,
and say so in ``note`` when the model is another kind. Indexed images are
named by id and their stored codes are used, so nothing is re-encoded.
"""
from __future__ import annotations

import secrets
from pathlib import PurePath
from typing import Any

import numpy as np
from flask import Blueprint

from indexer.model import arithmetic as combine
from indexer.model import interpolate as line
from indexer.model import sample_prior
from search.engine import code_of

from .answers import (ArithmeticResponse, HitAnswer, ImageRef, InterpolateResponse, SampleResponse,
                      answer, image_urls)
from .apispec import operation
from .backend import Backend, Serving, current_backend
from .fields import SEED_MAX
from .schemas import NOT_FOUND, NOT_READY, ArithmeticParams, InterpolateParams, SampleParams
from .serialize import png_data_url

bp = Blueprint("explore", __name__)


def explore_note(kind: str) -> str | None:
    if kind == "vae":
        return None
    return (f"This model is a {kind!r} autoencoder. Sampling, interpolation and arithmetic "
            "are meaningful for a variational one (lookalike train --kind vae); with this "
            "model, samples from N(0, I) may decode to noise.")


def _images(encoder: Any, codes: np.ndarray) -> list[str]:
    return [png_data_url(img) for img in encoder.decode(np.asarray(codes, dtype=np.float32))]


def _stored(backend: Backend, serving: Serving, image_id: int) -> tuple[ImageRef, np.ndarray]:
    """An indexed image's summary and a writable copy of its stored code (404/503 otherwise)."""
    row = backend.record(image_id)
    backend.check_same_model(serving, row)
    ref = ImageRef(id=row.id, name=PurePath(row.path).name, **image_urls(row.id))
    return ref, np.array(code_of(row), dtype=np.float32)


@bp.get("/api/explore/sample")
@operation(SampleParams, answers={
    200: (SampleResponse, "Samples."), 400: "Bad parameter.", 503: NOT_READY})
def sample(params: SampleParams):
    """Images decoded from codes drawn from the prior N(0, I).

    *n* of them; the seed is returned, and the same seed gives the same images.
    """
    n, seed = params.n, params.seed
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else seed
    encoder = current_backend().serving().encoder
    return answer(SampleResponse(model_kind=encoder.kind, note=explore_note(encoder.kind), n=n,
                                 seed=seed, images=_images(encoder, sample_prior(encoder.dim, n,
                                                                                 seed))))


@bp.get("/api/explore/interpolate")
@operation(InterpolateParams, answers={
    200: (InterpolateResponse, "The strip."), 400: "Bad or missing parameter.", 404: NOT_FOUND,
    503: NOT_READY})
def interpolate(params: InterpolateParams):
    """Images along the line between two indexed images' codes.

    *steps* images on the straight line, both ends included.
    """
    a, b, steps = params.a, params.b, params.steps
    backend = current_backend()
    serving = backend.serving()
    ref_a, code_a = _stored(backend, serving, a)
    ref_b, code_b = _stored(backend, serving, b)
    encoder = serving.encoder
    return answer(InterpolateResponse(
        model_kind=encoder.kind, note=explore_note(encoder.kind), a=ref_a, b=ref_b, steps=steps,
        images=_images(encoder, line(code_a, code_b, steps))))


@bp.get("/api/explore/arithmetic")
@operation(ArithmeticParams, answers={
    200: (ArithmeticResponse, "The result and its neighbours."),
    400: "Bad or missing parameter.", 404: NOT_FOUND, 503: NOT_READY})
def arithmetic(params: ArithmeticParams):
    """a − b + c in latent space, decoded, and its nearest indexed images."""
    ids = [params.a, params.b, params.c]
    k = params.k
    backend = current_backend()
    serving, index = backend.ready()
    engine = serving.engine
    refs, codes = zip(*(_stored(backend, serving, i) for i in ids))
    result = combine(*codes)
    encoder = engine.encoder
    hits = engine.search_code(result, k, index=index)
    return answer(ArithmeticResponse(
        model_kind=encoder.kind, note=explore_note(encoder.kind), a=refs[0], b=refs[1],
        c=refs[2], result=_images(encoder, result[None])[0], k=k,
        results=[HitAnswer.of(h) for h in hits]))


def example_ids(backend: Backend, count: int = 3) -> list[int]:
    """Ids spread over the catalog, to prefill the explore page; empty when there are none."""
    return backend.store.spread_ids(count)
