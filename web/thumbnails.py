"""Thumbnails made by Pillow from catalog files, cached on disk by content hash.

The cache key is the sha256 the catalog recorded, so a thumbnail is
shared by duplicate files, survives moves, and is never stale: a file
whose bytes no longer match its row is thumbnailed but not cached.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image, ImageOps

from indexer.images import ImageDecodeError, _to_rgb, open_image
from search.files import replace_atomically
from search.regular_files import sha256_file

THUMBNAIL_SIZE = 256
JPEG_QUALITY = 85
_SHA256 = re.compile(r"[0-9a-f]{64}")


class OriginalUnavailable(LookupError):
    """The catalog's file is gone or no longer decodes."""


def cached_thumbnail(thumbs_dir: Path, sha256: str) -> Path | None:
    """The cache file for *sha256* if it exists (the name is checked to be a bare hex digest)."""
    if not _SHA256.fullmatch(sha256 or ""):
        return None
    path = thumbs_dir / f"{sha256}.jpg"
    return path if path.is_file() else None


def make_thumbnail(source: Path, expected_sha256: str, thumbs_dir: Path) -> Path | bytes:
    """Render *source*; returns the cache path, or the bytes when they must not be cached."""
    try:
        actual = sha256_file(str(source))
        img, _ = open_image(source, draft_size=THUMBNAIL_SIZE // 2)
        img = _to_rgb(ImageOps.exif_transpose(img) or img)
        img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    except (OSError, ImageDecodeError) as exc:
        raise OriginalUnavailable(str(exc)) from exc
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    jpeg = out.getvalue()
    if actual != expected_sha256 or not _SHA256.fullmatch(expected_sha256 or ""):
        return jpeg
    target = thumbs_dir / f"{expected_sha256}.jpg"
    try:
        write_atomic(target, jpeg)
    except OSError:
        return jpeg  # a read-only data dir still gets thumbnails, just not cached ones
    return target


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then rename: readers never see half a file."""
    replace_atomically(path, lambda tmp: Path(tmp).write_bytes(data), "thumb", durable=False)
