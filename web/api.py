"""The JSON API: search by upload, search by id, metadata, stats, health, OpenAPI."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from indexer.anomalies import is_anomalous, reconstruction_error
from indexer.status import collect_stats
from search.engine import code_of

from .backend import current_backend
from .openapi import openapi_document
from .params import ID_MAX
from .serialize import hit_json, image_json, png_data_url
from .uploads import decode_query, parse_k, read_search_request

bp = Blueprint("api", __name__)

# Ids are SQLite integers; a larger number in a URL is simply not found.
ID = f"<int(max={ID_MAX}):image_id>"


@bp.post("/api/search")
def search():
    """Search with an uploaded image (multipart ``image`` or JSON ``image_base64``)."""
    req = read_search_request()
    backend = current_backend()
    engine, index = backend.ready_engine()
    encoder = engine.encoder
    query = decode_query(req.data, encoder.image_size)
    codes = encoder.encode(query.pixels[None])
    info: dict[str, Any] = {"width": query.width, "height": query.height, "format": query.format,
                            "denoised": req.denoise}
    recon = encoder.decode(codes)[0] if req.reconstruction or req.denoise else None
    if req.reconstruction:
        # With denoise this is also the image searched with; the error and the
        # anomaly verdict stay those of the upload itself.
        info["reconstruction"] = png_data_url(recon)
        info["reconstruction_error"] = reconstruction_error(recon, query.pixels)
        info.update(anomaly(encoder, info["reconstruction_error"]))
    if req.denoise:
        codes = encoder.encode(recon[None])  # search with the model's cleaned-up query
    hits = engine.search_code(codes[0], req.k, index=index)
    return jsonify(query=info, k=req.k, results=[hit_json(h) for h in hits])


def anomaly(encoder: Any, error: float) -> dict[str, Any]:
    """The checkpoint's verdict on a reconstruction error; null without a threshold."""
    threshold = getattr(encoder, "anomaly_threshold", None)
    return {"anomalous": is_anomalous(error, threshold), "anomaly_threshold": threshold}


@bp.get(f"/api/images/{ID}/similar")
def similar(image_id: int):
    """Neighbours of an indexed image, from its stored code; the image itself is left out."""
    k = parse_k(request.args.get("k"))
    backend = current_backend()
    engine, index = backend.ready_engine()
    row = backend.record(image_id)
    backend.check_same_model(engine, row)
    hits = engine.search_code(code_of(row), k, exclude=image_id, index=index)
    query = {**image_json(row), **anomaly(engine.encoder, row.recon_error)}
    return jsonify(query=query, k=k, results=[hit_json(h) for h in hits])


@bp.get(f"/api/images/{ID}")
def image(image_id: int):
    """What the catalog knows about one image."""
    return jsonify(image_json(current_backend().record(image_id)))


@bp.get("/api/stats")
def stats():
    """Counts, model and index facts, and whether searches can run yet."""
    backend = current_backend()
    info = collect_stats(backend.store)
    message = backend.readiness()
    info["ready"] = message is None
    info["message"] = message
    info["model_sha256"] = backend.loaded_model_sha256()
    return jsonify(info)


@bp.get("/healthz")
def healthz():
    """Liveness: answers 200 whenever the process serves requests; says if searches can run."""
    message = current_backend().readiness()
    return jsonify(status="ok", ready=message is None, message=message)


@bp.get("/api/openapi.json")
def openapi():
    return jsonify(openapi_document())
