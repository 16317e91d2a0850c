"""Getting a query image out of a request, in memory, and judging what it is.

The bytes are the only thing taken from an upload: its file name and its
declared Content-Type are ignored, and the type is sniffed from the
content with Pillow's own format checks. That is what decides between
415 (not an image type Lookalike reads), 400 (an image of a known type
that does not decode) and 413 (an image with too many pixels).
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

import multipart
import numpy as np
from flask import Request, has_app_context
from PIL import Image
from werkzeug.datastructures import FileStorage, Headers, MultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.formparser import FormDataParser

from indexer.images import (MAX_IMAGE_PIXELS, SUPPORTED_FORMATS, SUPPORTED_MEDIA, Box,
                            ImageDecodeError, clip_box, open_image, prepare)
from search.settings import Settings

from .backend import current_settings
from .errors import ApiError


class MultipartFormParser(FormDataParser):
    """Werkzeug's form parser, with a fast path for the forms browsers send.

    Werkzeug compiles two regular expressions for each multipart body's
    boundary, and browsers send a fresh random one each time: with the rest
    of its parse, 0.4 ms of every search (``bench/query.py``), twice the
    FAISS search. ``multipart``'s push parser finds boundaries with
    ``bytes.find``. The two differ on bodies browsers do not send (Werkzeug's
    own test client writes an empty field without the line break before the
    next boundary; Werkzeug decodes ``%22`` in names, reads charsets, limits
    preambles), so the fast path takes only the plain shape a browser sends,
    and everything else goes to Werkzeug, whose answer stands: see
    :func:`plain_form`.
    """

    def parse(self, stream: IO[bytes], mimetype: str, content_length: int | None,
              options: dict[str, str] | None = None) -> tuple[IO[bytes], MultiDict, MultiDict]:
        if mimetype != "multipart/form-data" or content_length is None:
            # (A body without a length, chunked, is Werkzeug's: its stream stops at
            # MAX_CONTENT_LENGTH with a 413 only when Werkzeug reads it.)
            return super().parse(stream, mimetype, content_length, options)
        body = stream.read()
        found = plain_form(body, (options or {}).get("boundary", ""), self.max_form_parts,
                           self.max_form_memory_size)
        if found is None:
            return super().parse(io.BytesIO(body), mimetype, len(body), options)
        return stream, self.cls(found[0]), self.cls(found[1])


# The plain shape of a browser's form, all the fast path reads. A name and a file name are
# quoted, without quotes, backslashes, percent signs (Werkzeug decodes %22) or control
# characters; a part has one Content-Disposition and, for a file, at most one Content-Type
# (a text part with one may name a charset, which Werkzeug reads); header values are
# printable ASCII without spaces around them.
PLAIN_DISPOSITION = re.compile(r'form-data; name="([^"\\%\x00-\x1f\x7f]+)"'
                               r'(?:; filename="([^"\\%\x00-\x1f\x7f]*)")?')
PLAIN_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def plain_form(body: bytes, boundary: str, max_parts: int | None, max_text: int | None
               ) -> tuple[list[tuple[str, str]], list[tuple[str, FileStorage]]] | None:
    """(text fields, files) of a multipart *body* in the plain shape, within the limits, or
    None for anything else, which Werkzeug must judge.

    Beyond the headers (see PLAIN_DISPOSITION): the body starts with its first
    boundary and ends with its last (Werkzeug holds MAX_FORM_MEMORY_SIZE against
    a preamble or an epilogue), no part holds the boundary (the sign of a
    delimiter without its line break, which Werkzeug reads as a delimiter), and
    a text limit is at least 128 KiB (Werkzeug holds it against each 64 KiB it
    reads, files included).
    """
    try:
        marker = b"--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        return None
    if (max_text is not None and max_text < min(len(body), 2 * 65536)
            or not body.startswith(marker + b"\r\n")
            or not body.endswith(b"\r\n" + marker + b"--\r\n")):
        return None
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    try:
        with multipart.PushMultipartParser(
                boundary, len(body),
                max_segment_count=math.inf if max_parts is None else max_parts) as parser:
            data = bytearray()
            for event in parser.parse(body):
                if isinstance(event, multipart.MultipartSegment):
                    names = [name for name, _ in event.headerlist]
                    plain = PLAIN_DISPOSITION.fullmatch(event.header("Content-Disposition", ""))
                    if (plain is None or names not in (["Content-Disposition"],
                                                       ["Content-Disposition", "Content-Type"])
                            or any(PLAIN_VALUE.fullmatch(v) is None for _, v in event.headerlist)
                            or plain.group(2) is None and len(names) > 1):
                        return None
                    (name, filename), segment, data = plain.groups(), event, bytearray()
                elif event is not None:
                    data += event
                elif marker in data:
                    return None
                elif filename is not None:
                    files.append((name, FileStorage(io.BytesIO(data), filename, name,
                                                    headers=Headers(segment.headerlist))))
                elif max_text is not None and len(data) > max_text:
                    return None
                else:
                    fields.append((name, data.decode("utf-8", "replace")))
    except multipart.MultipartError:
        return None
    return fields, files


class InMemoryRequest(Request):
    """A request whose multipart parts stay in memory, read by :class:`MultipartFormParser`.

    Werkzeug spools file parts over 500 KB to a temporary file; uploads
    here must never touch the disk, and ``MAX_CONTENT_LENGTH`` already
    bounds how much memory one can take.
    """

    form_data_parser_class = MultipartFormParser

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()

    def get_json(self, force: bool = False, silent: bool = False,
                 cache: bool = True) -> Any:
        """Deeply nested JSON is malformed input too, not a 500.

        ``json.loads`` raises RecursionError (not ValueError) for a body
        like ``[[[[...`` a few thousand levels deep, which Werkzeug's
        *silent* does not catch; a 20 MB body can nest millions deep.
        """
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("the JSON body is nested too deeply") from None


def sniff_format(data: bytes) -> tuple[str | None, bool]:
    """(Pillow format id, supported?) from the first bytes, the way Pillow itself identifies.

    Supported formats are checked first, so a strong signature (PNG, JPEG,
    ...) always wins over another plugin's looser test.
    """
    Image.init()
    prefix = data[:16]
    for fmt in SUPPORTED_FORMATS:
        if _accepts(fmt, prefix):
            return fmt, True
    for fmt in Image.ID:
        if fmt not in SUPPORTED_FORMATS and _accepts(fmt, prefix):
            return fmt, False
    return None, False


def _accepts(fmt: str, prefix: bytes) -> bool:
    entry = Image.OPEN.get(fmt)
    if entry is None or entry[1] is None:
        return False
    try:
        return bool(entry[1](prefix))
    except Exception:  # a plugin's check must not break sniffing
        return False


# Peak bytes per pixel of decoding an image and turning it into the model's
# input (indexer.images.open_image + prepare), by Pillow mode, measured on
# 16-megapixel PNGs (6, 10, 12, 18-24 and 28), rounded up: alpha is flattened
# over white through RGBA copies, and 16/32-bit pixels go through float64
# arrays. Other modes cost at most this:
_DECODE_COST_DEFAULT = 32
_DECODE_COST = {"1": 7, "L": 7, "P": 11, "RGB": 13, "YCbCr": 13, "CMYK": 13, "LAB": 13,
                "HSV": 13, "LA": 25, "La": 25, "PA": 25, "RGBA": 25, "RGBa": 25}


def decode_cost(img: Image.Image) -> tuple[int, int, str, int]:
    """(width, height, mode, peak bytes) that decoding *img* for the model will take.

    Read from an opened image's header alone (JPEGs after ``open_image``'s
    draft scaling), before any pixel is decoded.
    """
    width, height = img.size
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        mode = "PA"
    return width, height, mode, width * height * _DECODE_COST.get(mode, _DECODE_COST_DEFAULT)


def check_decode_cost(img: Image.Image, max_bytes: int | None = None) -> None:
    """413 for an upload that would take more than *max_bytes* of memory to decode.

    Indexed files may have up to MAX_IMAGE_PIXELS, but an upload is only
    ever shrunk to the model's 32-64 px, and a PNG of flat colour
    compresses ~1000:1: a 120 KB 16-bit PNG under that limit would take
    1.7 GB and seconds of CPU per request. The budget depends on the
    pixel mode, so ordinary photos and screenshots stay well inside it.
    """
    if max_bytes is None:
        max_bytes = (current_settings().max_decode_bytes if has_app_context()
                     else Settings.max_decode_bytes)
    width, height, mode, cost = decode_cost(img)
    if cost <= max_bytes:
        return
    limit = max_bytes // _DECODE_COST.get(mode, _DECODE_COST_DEFAULT)
    raise ApiError(413, "too_large", f"the image has too many pixels to search with "
                   f"({width}×{height} {mode}; at most {limit / 1e6:.1f} megapixels for this "
                   "kind of image); send a smaller copy")


@dataclass
class QueryImage:
    pixels: np.ndarray  # (S, S, 3) uint8, the model's input
    width: int
    height: int
    format: str
    box: Box | None = None  # the region searched, clipped to the image


REGION_DRAFT_MAX = 1000  # a JPEG decoded for a region: the draft asks for twice this at most


def region_draft(data: bytes, size: int, box: Box) -> int:
    """The draft size to decode a JPEG with (``indexer.images.open_image``: libjpeg's DCT
    scaling to at least twice it) so that the region *box* still has the model's *size*
    pixels, up to REGION_DRAFT_MAX: a small region of a 24 MP photo would not fit the
    decode budget at full scale."""
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            longest = max(header.size)
    except Exception:  # the decode proper says what is wrong with it
        return size
    smallest_side = max(1, min(abs(box[2] - box[0]), abs(box[3] - box[1])))
    return min(max(size, math.ceil(size * longest / smallest_side)), REGION_DRAFT_MAX)


def decode_query(data: bytes, size: int, max_decode_bytes: int | None = None,
                 box: Box | None = None) -> QueryImage:
    """Bytes → model input (of the region *box* only, when given), or the ApiError that
    says what is wrong with them.

    *max_decode_bytes* defaults to the app's ``LOOKALIKE_MAX_DECODE_BYTES``. A region is
    decoded at full scale, so a small one of a large JPEG keeps its detail.
    """
    if not data:
        raise ApiError(400, "bad_image", "the upload is empty (0 bytes)")
    fmt, supported = sniff_format(data)
    if not supported:
        what = f"{fmt} images are" if fmt else "this file's type is"
        raise ApiError(415, "unsupported_media_type",
                       f"{what} not supported; send {SUPPORTED_MEDIA}")
    try:
        img, (width, height) = open_image(
            data, draft_size=region_draft(data, size, box) if box else size,
            inspect=partial(check_decode_cost, max_bytes=max_decode_bytes))
        if box and (box[0] >= width or box[1] >= height):
            raise ApiError(400, "bad_parameter", f"box {','.join(map(str, box))} lies outside "
                           f"the image, which is {width}×{height} pixels: no part of it is there")
        pixels = prepare(img, size, box, (width, height))
    except ImageDecodeError as exc:
        if isinstance(exc.__cause__, (Image.DecompressionBombError,
                                      Image.DecompressionBombWarning)):
            raise ApiError(413, "too_large", f"the image has too many pixels (the limit is "
                           f"{MAX_IMAGE_PIXELS:,})") from exc
        raise ApiError(400, "bad_image", f"cannot read the {fmt} image: {exc}") from exc
    return QueryImage(pixels, width, height, img.format or fmt,
                      clip_box(box, (width, height)) if box else None)
