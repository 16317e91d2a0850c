"""The collection's outliers: the indexed images the model reconstructs worst.

The indexer stores every image's reconstruction error, so this is one
sorted catalog read, no model pass. Only images encoded by the loaded
model are listed; errors of another model are on another scale.
"""
from __future__ import annotations

from pathlib import PurePath
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select

from search.catalog import ImageRecord

from .answers import AnomaliesResponse
from .api import anomaly
from .apispec import request_params, spec
from .backend import current_backend
from .errors import ApiError
from .schemas import NOT_READY, TOP_MAX, AnomaliesQueryString, answers
from .serialize import image_urls

bp = Blueprint("anomalies", __name__)


@bp.get("/api/anomalies")
@spec.validate(query=AnomaliesQueryString, resp=answers({
    200: (AnomaliesResponse, "Outliers."), 400: "Bad parameter, or no threshold to default to.",
    503: NOT_READY}))
def anomalies():
    """Outliers by reconstruction error, worst first.

    ``top=N`` lists the N worst; ``threshold=T`` those above T; both
    together, the N worst above T; neither, those above the model's own
    threshold (its held-out 99th percentile).
    """
    params = request_params()
    top, threshold = params.top, params.threshold
    backend = current_backend()
    engine, _index = backend.ready_engine()
    encoder = engine.encoder
    model_threshold = getattr(encoder, "anomaly_threshold", None)
    if top is None and threshold is None:
        if model_threshold is None:
            raise ApiError(400, "bad_parameter", "this model records no anomaly threshold; "
                           "pass top=N or threshold=T")
        threshold = model_threshold
    where = [ImageRecord.model_id == backend.model_id(engine)]
    if threshold is not None:
        where.append(ImageRecord.recon_error > threshold)
    rows_query = (select(ImageRecord.id, ImageRecord.path, ImageRecord.recon_error)
                  .where(*where).order_by(ImageRecord.recon_error.desc(), ImageRecord.id)
                  .limit(top or TOP_MAX))
    with backend.store.db.connect() as conn:
        total = conn.execute(select(func.count(ImageRecord.id)).where(*where)).scalar() or 0
        rows = conn.execute(rows_query).all()
    return jsonify(threshold=threshold, model_threshold=model_threshold, top=top, total=total,
                   anomalies=[_outlier(encoder, r) for r in rows])


def _outlier(encoder: Any, row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": PurePath(row.path).name,
        "path": row.path,
        "reconstruction_error": row.recon_error,
        "anomalous": anomaly(encoder, row.recon_error)["anomalous"],
        **image_urls(row.id),
    }
