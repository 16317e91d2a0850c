"""Anomaly detection by reconstruction error: the images a model reconstructs worst.

The indexer stores every image's reconstruction error (mean squared error,
pixels in [0, 1]), so finding the collection's outliers is one sorted
catalog read, no model pass. Only images encoded by the given checkpoint
count: errors of another model are on another scale. Shared by
``lookalike anomalies`` and ``/api/anomalies``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from .catalog import ImageRecord, ModelRecord
from .store import Store


class NoThreshold(ValueError):
    """Asked for the images above the model's threshold, and the model records none."""


@dataclass(frozen=True)
class Outlier:
    id: int
    path: str
    reconstruction_error: float


@dataclass(frozen=True)
class Outliers:
    threshold: float | None  # the one applied
    total: int  # images passing it (all of the model's, without one)
    rows: list[Outlier]  # worst first


def reconstruction_error_of(recon: np.ndarray, pixels: np.ndarray) -> float:
    """Mean squared error with pixels in [0, 1], the unit of the catalog's ``reconstruction_error``."""
    diff = (recon.astype(np.float32) - pixels.astype(np.float32)) / 255.0
    return round(float(np.mean(diff * diff)), 8)


def is_anomalous(error: float | None, threshold: float | None) -> bool | None:
    """Above the model's held-out percentile: unlike what it was trained on; None without one."""
    if threshold is None or error is None:
        return None
    return bool(error > threshold)


def find_outliers(store: Store, checkpoint_sha256: str, top: int | None = None,
                  threshold: float | None = None, model_threshold: float | None = None,
                  limit: int | None = None) -> Outliers:
    """The *top* worst, those above *threshold*, or both (the N worst above T).

    Neither: those above *model_threshold*, the checkpoint's own (NoThreshold
    when it has none). At most *top* or *limit* rows are listed; ``total`` counts all.
    """
    if top is None and threshold is None:
        if model_threshold is None:
            raise NoThreshold("this model records no anomaly threshold; pass top=N or "
                              "threshold=T")
        threshold = model_threshold
    where = [ModelRecord.checkpoint_sha256 == checkpoint_sha256]
    if threshold is not None:
        where.append(ImageRecord.reconstruction_error > threshold)
    rows = (select(ImageRecord.id, ImageRecord.path, ImageRecord.reconstruction_error)
            .join(ModelRecord).where(*where)
            .order_by(ImageRecord.reconstruction_error.desc(), ImageRecord.id).limit(top or limit))
    with store.sessions() as s:
        total = s.scalar(select(func.count(ImageRecord.id)).join(ModelRecord).where(*where))
        found = [Outlier(r.id, r.path, r.reconstruction_error) for r in s.execute(rows)]
    return Outliers(threshold, total or 0, found)
