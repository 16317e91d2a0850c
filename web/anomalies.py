"""The collection's outliers: the indexed images the model reconstructs worst.

The indexer stores every image's reconstruction error, so this is one
sorted catalog read, no model pass. Only images encoded by the loaded
model are listed; errors of another model are on another scale.
"""
from __future__ import annotations

from pathlib import PurePath
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import func, select

from search.catalog import ImageRecord

from .api import anomaly
from .backend import current_backend
from .errors import ApiError
from .params import parse_float, parse_int
from .serialize import image_urls

bp = Blueprint("anomalies", __name__)

TOP_MAX = 1000  # also the most a threshold query lists; `total` says how many there are


@bp.get("/api/anomalies")
def anomalies():
    """Outliers by reconstruction error, worst first.

    ``top=N`` lists the N worst; ``threshold=T`` those above T; both
    together, the N worst above T; neither, those above the model's own
    threshold (its held-out 99th percentile).
    """
    top = parse_int(request.args.get("top"), "top", 1, TOP_MAX)
    threshold = parse_float(request.args.get("threshold"), "threshold", 0.0)
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
