"""Catalog rows and search hits as JSON, and pixels as PNG.

Rows are exposed by id only: every URL in a response is built from the
id, never from a path, so a client can never name a file.
"""
from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

import numpy as np
from flask import request
from PIL import Image

from search.catalog import ImageRecord
from search.engine import Hit


def image_urls(image_id: int) -> dict[str, str]:
    """Links for one image; built by hand rather than url_for, since a page of
    results needs forty of them and url_for costs ~20 µs each."""
    root = request.script_root
    return {
        "thumbnail_url": f"{root}/images/{image_id}/thumbnail",
        "reconstruction_url": f"{root}/images/{image_id}/reconstruction",
        "original_url": f"{root}/images/{image_id}/original",
        "similar_url": f"{root}/api/images/{image_id}/similar",
    }


def image_json(row: ImageRecord) -> dict[str, Any]:
    """Everything the catalog knows about one image (the metadata endpoint)."""
    indexed_at = row.indexed_at.replace(tzinfo=timezone.utc).isoformat() if row.indexed_at else None
    return {
        "id": row.id,
        "name": PurePath(row.path).name,
        "path": row.path,
        "sha256": row.sha256,
        "size": row.size,
        "mtime": row.mtime,
        "width": row.width,
        "height": row.height,
        "format": row.format,
        "model_id": row.model_id,
        "reconstruction_error": row.recon_error,
        "indexed_at": indexed_at,
        "taken_at": row.taken_at,
        "file_date": _iso(row.taken_at if row.taken_at is not None else row.mtime),
        **image_urls(row.id),
    }


def _iso(seconds: float | None) -> str | None:
    """A file time as ISO 8601; None for one no calendar holds (a corrupt mtime, say)."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def hit_json(hit: Hit, copies: list[Hit] | None = None) -> dict[str, Any]:
    """One search result: enough to draw a card and to follow it; with *copies*, the
    near-duplicates folded under it."""
    found = {
        "id": hit.id,
        "name": PurePath(hit.path).name,
        "path": hit.path,
        "similarity": round(hit.score, 6),
        "reconstruction_error": hit.recon_error,
        **image_urls(hit.id),
    }
    if copies is not None:
        found["copies"] = [hit_json(c) for c in copies]
    return found


def png_bytes(pixels: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array as PNG; fast compression, since these are tiny and per request."""
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


def png_data_url(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")
