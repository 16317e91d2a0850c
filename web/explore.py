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
from flask import Blueprint, jsonify, request
from sqlalchemy import func, select

from search.catalog import ImageRecord
from search.engine import SearchEngine, code_of

from .backend import Backend, current_backend
from .params import SEED_MAX, parse_id, parse_int
from .serialize import hit_json, image_urls, png_data_url
from .uploads import parse_k

bp = Blueprint("explore", __name__)

SAMPLES_MAX = 64
STEPS_MIN, STEPS_MAX = 2, 32
ARITHMETIC_K = 5


def explore_note(kind: str) -> str | None:
    if kind == "vae":
        return None
    return (f"This model is a {kind!r} autoencoder. Sampling, interpolation and arithmetic "
            "are meaningful for a variational one (lookalike train --kind vae); with this "
            "model, samples from N(0, I) may decode to noise.")


def _images(encoder: Any, codes: np.ndarray) -> list[str]:
    return [png_data_url(img) for img in encoder.decode(np.asarray(codes, dtype=np.float32))]


def _stored(backend: Backend, engine: SearchEngine, image_id: int) -> tuple[dict, np.ndarray]:
    """An indexed image's summary and a writable copy of its stored code (404/503 otherwise)."""
    row = backend.record(image_id)
    backend.check_same_model(engine, row)
    ref = {"id": row.id, "name": PurePath(row.path).name, **image_urls(row.id)}
    return ref, np.array(code_of(row), dtype=np.float32)


@bp.get("/api/explore/sample")
def sample():
    """*n* images decoded from codes drawn from the prior N(0, I); the seed is returned."""
    from indexer.latent import sample_prior

    n = parse_int(request.args.get("n"), "n", 1, SAMPLES_MAX, 8)
    seed = parse_int(request.args.get("seed"), "seed", 0, SEED_MAX)
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else seed
    encoder = current_backend().engine().encoder
    return jsonify(model_kind=encoder.kind, note=explore_note(encoder.kind), n=n, seed=seed,
                   images=_images(encoder, sample_prior(encoder.dim, n, seed)))


@bp.get("/api/explore/interpolate")
def interpolate():
    """*steps* images along the straight line between two indexed images' codes, ends included."""
    from indexer.latent import interpolate as line

    a = parse_id(request.args.get("a"), "a")
    b = parse_id(request.args.get("b"), "b")
    steps = parse_int(request.args.get("steps"), "steps", STEPS_MIN, STEPS_MAX, 8)
    backend = current_backend()
    engine = backend.engine()
    ref_a, code_a = _stored(backend, engine, a)
    ref_b, code_b = _stored(backend, engine, b)
    encoder = engine.encoder
    return jsonify(model_kind=encoder.kind, note=explore_note(encoder.kind), a=ref_a, b=ref_b,
                   steps=steps, images=_images(encoder, line(code_a, code_b, steps)))


@bp.get("/api/explore/arithmetic")
def arithmetic():
    """Decode a − b + c and find the indexed images nearest to it."""
    from indexer.latent import arithmetic as combine

    ids = [parse_id(request.args.get(name), name) for name in ("a", "b", "c")]
    k = parse_k(request.args.get("k"), default=ARITHMETIC_K)
    backend = current_backend()
    engine, index = backend.ready_engine()
    refs, codes = zip(*(_stored(backend, engine, i) for i in ids))
    result = combine(*codes)
    encoder = engine.encoder
    hits = engine.search_code(result, k, index=index)
    return jsonify(model_kind=encoder.kind, note=explore_note(encoder.kind),
                   a=refs[0], b=refs[1], c=refs[2], result=_images(encoder, result[None])[0],
                   k=k, results=[hit_json(h) for h in hits])


def example_ids(backend: Backend, count: int = 3) -> list[int]:
    """Ids spread over the catalog, to prefill the explore page; empty when there are none."""
    with backend.store.db.connect() as conn:
        total = conn.execute(select(func.count(ImageRecord.id))).scalar() or 0
        if not total:
            return []
        picks = sorted({total * i // count for i in range(count)})
        ids = [conn.execute(select(ImageRecord.id).order_by(ImageRecord.id).offset(p).limit(1))
               .scalar() for p in picks]
    return [i for i in ids if i is not None]
