"""Image files by catalog id: thumbnail, reconstruction, original.

The only input is an integer id. Every file path comes from the catalog
row for that id, so no part of a request can name or reach a file.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path, PurePath
from typing import BinaryIO
from urllib.parse import quote

import numpy as np
from flask import Blueprint, Response, request, send_file
from PIL import Image, ImageOps

from indexer.images import ImageDecodeError, open_image, to_rgb
from search.catalog import ImageRecord
from search.engine import code_of
from search.regular_files import ChangedFile
from search.store import Store

from .api import ID
from .apispec import operation
from .backend import current_backend
from .errors import ApiError
from .schemas import NOT_FOUND, NOT_READY, PATH_ID
from .serialize import png_bytes
from .thumbnails import OriginalUnavailable, cached_thumbnail, make_thumbnail
from .uploads import sniff_format

bp = Blueprint("images", __name__)

# What browsers show in an <img>; the other formats get a rendering (preview).
BROWSER_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "AVIF", "BMP"})


@bp.get(f"/images/{ID}/thumbnail")
@operation(path=PATH_ID, answers={200: ("image/jpeg", "Thumbnail."), 404: NOT_FOUND})
def thumbnail(image_id: int):
    """JPEG thumbnail, at most 256 px.

    Cached under DATA_DIR/thumbs by the file's sha256, so it shows the content
    indexed even while the file is away (an unmounted disk); one is made only
    from the file as indexed (see ``original``).
    """
    backend = current_backend()
    row = backend.record(image_id)
    result: Path | bytes | None = cached_thumbnail(backend.store, row.sha256)
    if result is None:
        with indexed_file(backend.store, row) as f:
            try:
                result = make_thumbnail(f, row.sha256, backend.store)
            except OriginalUnavailable as exc:
                raise ApiError(404, "not_found", f"image {image_id} has no readable file any "
                               f"more ({exc})") from exc
    if isinstance(result, bytes):
        return Response(result, mimetype="image/jpeg", headers={"Cache-Control": "no-cache"})
    return send_file(result, mimetype="image/jpeg", etag=row.sha256, conditional=True)


def indexed_file(store: Store, row: ImageRecord) -> BinaryIO:
    """The row's file, opened, or the 404 that says it is gone or is not the one indexed."""
    try:
        return store.open_file(row)
    except ChangedFile as exc:
        raise ApiError(404, "not_found", f"the file of image {row.id} is not the one indexed "
                       f"any more: {exc}") from exc
    except OSError as exc:  # gone, unreadable, or now a FIFO / device / folder
        raise ApiError(404, "not_found", f"the file of image {row.id} is gone") from exc


@bp.get(f"/images/{ID}/reconstruction")
@operation(path=PATH_ID, answers={
    200: ("image/png", "Reconstruction."), 404: NOT_FOUND, 503: NOT_READY})
def reconstruction(image_id: int):
    """The model's reconstruction from the stored code, PNG.

    At the model's resolution.
    """
    backend = current_backend()
    serving = backend.serving()
    engine = serving.engine
    row = backend.record(image_id)
    backend.check_same_model(serving, row)
    code = code_of(row)
    model = getattr(engine.encoder, "sha256", "") or ""
    etag = f"{model[:16]}-{hashlib.sha256(row.code).hexdigest()[:16]}"
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(png_bytes(engine.encoder.decode(np.array(code[None]))[0]),
                            mimetype="image/png")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get(f"/images/{ID}/original")
@operation(path=PATH_ID, answers={
    200: (None, "The file, with its own image type."), 404: NOT_FOUND})
def original(image_id: int):
    """The indexed file as it is on disk.

    Streamed; 404 once it is gone or no longer an image.

    The path comes from the catalog, but the file behind it may have been
    replaced since it was indexed (by a symlink to something private, say):
    it must still be the file indexed (``Store.open_file``), and its first
    bytes must still sniff as an image type we index.
    """
    backend = current_backend()
    return send_original(backend.store, backend.record(image_id))


def send_original(store: Store, row: ImageRecord) -> Response:
    """*row*'s file as it is on disk, when it is still the file indexed and still an image."""
    f = indexed_file(store, row)
    try:
        _fmt, supported = sniff_format(f.read(16))
        if not supported:
            raise ApiError(404, "not_found", f"the file of image {row.id} is no longer an "
                           "image; re-index its folder")
        f.seek(0)
        st = os.fstat(f.fileno())
        Image.init()  # registers every plugin's MIME type
        fmt = (row.format or "").upper()
        # A phone's multi-picture JPEG is a JPEG to every browser; image/mpo gets downloaded.
        mimetype = "image/jpeg" if fmt == "MPO" else Image.MIME.get(fmt, "application/octet-stream")
        response = send_file(f, mimetype=mimetype, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                             last_modified=st.st_mtime, conditional=True)
    except BaseException:
        f.close()
        raise
    response.headers["Content-Disposition"] = content_disposition(PurePath(row.path).name)
    return response


@bp.get(f"/images/{ID}/preview")
@operation(path=PATH_ID, answers={
    200: (None, "The file, when browsers show its type; else its full-size rendering, JPEG."),
    404: NOT_FOUND})
def preview(image_id: int):
    """The image at full size as a browser can show it, for the compare view and the
    lightbox: the original file when browsers show its type (JPEG, PNG, WebP, GIF, AVIF,
    BMP), else a JPEG rendering made here (HEIC, TIFF, camera RAW)."""
    backend = current_backend()
    row = backend.record(image_id)
    if (row.format or "").upper() in BROWSER_FORMATS:
        return send_original(backend.store, row)
    etag = f"preview-{row.sha256[:32]}"
    if request.if_none_match.contains(etag):  # before the costly decode
        response = Response(status=304)
        response.set_etag(etag)
        return response
    with indexed_file(backend.store, row) as f:
        try:
            img, _ = open_image(f)
            img = to_rgb(ImageOps.exif_transpose(img) or img)
        except ImageDecodeError as exc:
            raise ApiError(404, "not_found", f"the file of image {row.id} no longer decodes: "
                           f"{exc}") from exc
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    response = Response(out.getvalue(), mimetype="image/jpeg")
    response.set_etag(etag)
    response.headers["Content-Disposition"] = content_disposition(
        PurePath(row.path).name + ".jpg")
    return response.make_conditional(request)


def content_disposition(name: str) -> str:
    """``inline`` with the file's name, safe for any name the OS allows (RFC 6266, 5987).

    The quoted ``filename`` is an ASCII stand-in (control characters,
    quotes and backslashes replaced) for old clients; ``filename*`` carries
    the real name percent-encoded as UTF-8. A name that is not UTF-8 on
    disk shows its undecodable bytes as U+FFFD there. CR or LF could
    otherwise end the header early (Werkzeug refuses such a value: a 500).
    """
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in text)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(text, safe='')}"
