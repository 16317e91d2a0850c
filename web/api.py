"""The JSON API: search by upload, search by id, metadata, stats, health, OpenAPI."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from search.anomalies import is_anomalous, reconstruction_error_of
from search.catalog import ID_MAX
from search.duplicates import collapse_hits, model_threshold
from search.engine import MAX_K, code_of
from search.library import Filters, collect_stats

from .answers import (Health, HitAnswer, Image, OpenApiDocument, SearchResponse, SimilarQuery,
                      SimilarResponse, Stats, answer)
from .apispec import openapi_document, operation
from .backend import current_backend
from .fields import box_corners
from .library import filters_of
from .schemas import NOT_FOUND, NOT_READY, PATH_ID, UPLOAD_ERRORS, SearchParams, SimilarParams
from .serialize import png_data_url
from .uploads import decode_query

bp = Blueprint("api", __name__)

COLLAPSE_DEPTH = 4  # with collapse=true, hits looked at per result asked for

# Ids are SQLite integers; a larger number in a URL is simply not found.
ID = f"<int(max={ID_MAX}):image_id>"


@bp.post("/api/search")
@operation(SearchParams, answers={
    200: (SearchResponse, "Results, best first."), **UPLOAD_ERRORS})
def search(params: SearchParams):
    """Find the indexed images most like an uploaded one.

    Send the image as a multipart ``image`` file or as JSON ``image_base64``, in one of the
    types the multipart encoding lists (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF).
    The type is sniffed from the bytes; the upload is processed in memory and never stored.
    """
    filters = filters_of(params)
    backend = current_backend()
    serving, index = backend.ready()
    engine = serving.engine
    encoder = engine.encoder
    box = box_corners(params.box) if params.box else None
    query = decode_query(params.image, encoder.image_size, box=box)
    codes = encoder.encode(query.pixels[None])
    info: dict[str, Any] = {"width": query.width, "height": query.height, "format": query.format,
                            "denoised": params.denoise}
    if query.box:
        info["box"] = list(query.box)
    recon = encoder.decode(codes)[0] if params.reconstruction or params.denoise else None
    if params.reconstruction:
        # With denoise this is also the image searched with; the error and the
        # anomaly verdict stay those of the upload itself.
        info["reconstruction"] = png_data_url(recon)
        info["reconstruction_error"] = reconstruction_error_of(recon, query.pixels)
        info.update(anomaly(encoder, info["reconstruction_error"]))
    if params.denoise:
        codes = encoder.encode(recon[None])  # search with the model's cleaned-up query
    if not params.collapse:
        hits = engine.search_code(codes[0], params.k, index=index, filters=filters)
        return answer(SearchResponse(query=info, k=params.k, results=[HitAnswer.of(h) for h in hits]))
    folded = collapsed_search(engine, codes[0], params.k, index, filters)
    return answer(SearchResponse(query=info, k=params.k,
                                 results=[HitAnswer.folded(h, copies) for h, copies in folded]))


def collapsed_search(engine: Any, code: Any, k: int, index: Any,
                     filters: Filters = Filters()) -> list:
    """The k best different images, each with the copies folded under it. Copies take
    places in the ranking, so the search looks further until k remain (or all are seen)."""
    encoder = engine.encoder
    threshold = model_threshold(encoder.copy_threshold, encoder.separates_copies)
    depth = COLLAPSE_DEPTH * k
    while True:
        hits = engine.search_code(code, min(depth, MAX_K), index=index, filters=filters)
        folded = collapse_hits(engine.store, hits, threshold, encoder.copy_part)
        if len(folded) >= k or len(hits) < min(depth, MAX_K) or depth >= MAX_K:
            return folded[:k]
        depth *= 2


def anomaly(encoder: Any, error: float) -> dict[str, Any]:
    """The checkpoint's verdict on a reconstruction error; null without a threshold."""
    threshold = getattr(encoder, "anomaly_threshold", None)
    return {"anomalous": is_anomalous(error, threshold), "anomaly_threshold": threshold}


@bp.get(f"/api/images/{ID}/similar")
@operation(SimilarParams, path=PATH_ID, answers={
    200: (SimilarResponse, "Results, best first."), 400: "Bad k.", 404: NOT_FOUND,
    503: NOT_READY})
def similar(image_id: int, params: SimilarParams):
    """Images most like an indexed image (itself excluded).

    Neighbours from the image's stored code, nothing is re-encoded.
    """
    backend = current_backend()
    serving, index = backend.ready()
    engine = serving.engine
    row = backend.record(image_id)
    backend.check_same_model(serving, row)
    hits = engine.search_code(code_of(row), params.k, exclude=image_id, index=index,
                              filters=filters_of(params))
    query = SimilarQuery.of(row, **anomaly(engine.encoder, row.reconstruction_error))
    return answer(SimilarResponse(query=query, k=params.k, results=[HitAnswer.of(h) for h in hits]))


@bp.get(f"/api/images/{ID}")
@operation(path=PATH_ID, answers={200: (Image, "The catalog row."), 404: NOT_FOUND})
def image(image_id: int):
    """Catalog metadata of one image."""
    return answer(Image.of(current_backend().record(image_id)))


@bp.get("/api/stats")
@operation(answers={200: (Stats, "Facts about the data dir.")})
def stats():
    """Counts, model and index.

    Also whether searches can run yet.
    """
    backend = current_backend()
    info = collect_stats(backend.store)
    message = backend.readiness()
    info["ready"] = message is None
    info["message"] = message
    loaded = backend.loaded()
    info["model_sha256"] = loaded.encoder.sha256 if loaded is not None else None
    return answer(Stats(**info))


@bp.get("/healthz")
@operation(answers={200: (Health, "Alive.")})
def healthz():
    """Liveness; also says whether searches can run.

    Answers 200 whenever the process serves requests.
    """
    message = current_backend().readiness()
    return answer(Health(status="ok", ready=message is None, message=message))


@bp.get("/api/openapi.json")
@operation(answers={200: (OpenApiDocument, "OpenAPI 3.1")})
def openapi():
    """This document."""
    return answer(OpenApiDocument(openapi_document(current_app)))
