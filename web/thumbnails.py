"""Thumbnails made by Pillow from catalog files, cached on disk by content hash.

The cache key is the sha256 the catalog recorded, so a thumbnail is
shared by duplicate files, survives moves, and is never stale: a file
whose bytes no longer match its row is not the indexed file, and gets none.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from indexer.images import ImageDecodeError, open_image, to_rgb
from search.files import replace_atomically
from search.store import Store

THUMBNAIL_SIZE = 256
JPEG_QUALITY = 85


class OriginalUnavailable(LookupError):
    """The catalog's file is gone or no longer decodes."""


def cached_thumbnail(store: Store, sha256: str) -> Path | None:
    """The cache file for *sha256* if it exists."""
    path = store.thumbnail_path(sha256)
    return path if path is not None and path.is_file() else None


def make_thumbnail(source: BinaryIO, expected_sha256: str, store: Store) -> Path | bytes:
    """Render the open file *source*; the cache path, or the bytes if it could not be cached.

    A file whose bytes are not the content indexed (*expected_sha256*) is not
    the indexed file any more: OriginalUnavailable, as for one that is gone.
    """
    try:
        digest = hashlib.sha256()
        while block := source.read(1 << 20):
            digest.update(block)
        if digest.hexdigest() != expected_sha256:
            raise OriginalUnavailable("its content changed since it was indexed; re-index "
                                      "its folder")
        source.seek(0)
        img, _ = open_image(source, draft_size=THUMBNAIL_SIZE // 2)
        img = to_rgb(ImageOps.exif_transpose(img) or img)
        img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    except (OSError, ImageDecodeError) as exc:
        raise OriginalUnavailable(str(exc)) from exc
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    jpeg = out.getvalue()
    target = store.thumbnail_path(expected_sha256)
    if target is None:
        return jpeg
    try:  # a cache: no fsync; readers see the old file or the new one, never half
        replace_atomically(target, lambda tmp: Path(tmp).write_bytes(jpeg), "thumb",
                           durable=False)
    except OSError:
        return jpeg  # a read-only data dir still gets thumbnails, just not cached ones
    return target
