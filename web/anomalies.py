"""``/api/anomalies``: the collection's outliers, worst reconstructed first (``search.anomalies``)."""
from __future__ import annotations

from pathlib import PurePath

from flask import Blueprint

from search.anomalies import NoThreshold, Outlier, find_outliers, is_anomalous

from .answers import AnomaliesResponse, OutlierAnswer, answer, image_urls
from .apispec import operation
from .backend import current_backend
from .errors import ApiError
from .schemas import NOT_READY, TOP_MAX, AnomaliesParams

bp = Blueprint("anomalies", __name__)


@bp.get("/api/anomalies")
@operation(AnomaliesParams, answers={
    200: (AnomaliesResponse, "Outliers."), 400: "Bad parameter, or no threshold to default to.",
    503: NOT_READY})
def anomalies(params: AnomaliesParams):
    """Outliers by reconstruction error, worst first.

    ``top=N`` lists the N worst; ``threshold=T`` those above T; both
    together, the N worst above T; neither, those above the model's own
    threshold (its held-out 99th percentile).
    """
    top, threshold = params.top, params.threshold
    serving, _index = current_backend().ready()
    engine = serving.engine
    encoder = engine.encoder
    model_threshold = getattr(encoder, "anomaly_threshold", None)
    try:
        found = find_outliers(engine.store, encoder.sha256, top, threshold, model_threshold,
                              limit=TOP_MAX)
    except NoThreshold as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from exc
    return answer(AnomaliesResponse(
        threshold=found.threshold, model_threshold=model_threshold, top=top, total=found.total,
        anomalies=[_outlier(row, model_threshold) for row in found.rows]))


def _outlier(row: Outlier, model_threshold: float | None) -> OutlierAnswer:
    return OutlierAnswer(id=row.id, name=PurePath(row.path).name, path=row.path,
                         reconstruction_error=row.reconstruction_error,
                         anomalous=is_anomalous(row.reconstruction_error, model_threshold),
                         **image_urls(row.id))
