"""Finding and decoding images.

Every image that enters Lookalike, from a folder or from an upload, goes
through :func:`load_image`, so the model always sees the same thing: EXIF
orientation applied, any mode converted to RGB, resized to a square.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import pillow_heif
import rawpy
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from search.regular_files import NotRegularFile, file_type_name, open_regular

# Camera RAW files LibRaw reads (through rawpy): Adobe DNG and the cameras' own formats.
RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
     ".raf", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".dcr", ".mrw", ".mos", ".iiq",
     ".rwl", ".raw"}
)
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif",
     ".avif"}
) | RAW_EXTENSIONS
# The Pillow formats Lookalike opens, everywhere (indexing, thumbnails, originals,
# uploads), tried in this order. Pillow would otherwise try every plugin it has: EPS
# hands the file to Ghostscript, an external program, and TGA or ICO files named .png
# would be indexed but refused elsewhere. MPO, the multi-picture JPEG phones write, opens
# as JPEG. RAW comes before TIFF: most RAW files are TIFF inside (RawImageFile says which).
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "RAW", "TIFF", "HEIF", "AVIF")
SUPPORTED_MEDIA = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF, AVIF or camera RAW (DNG, CR2, NEF, ARW, ...)"
pillow_heif.register_heif_opener()  # HEIC/HEIF: phone photos
# Pillow's own guard raises DecompressionBombError at twice this many pixels;
# we refuse at the limit itself so a bomb is a clean, counted skip.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


T = TypeVar("T")

# -- camera RAW, as one more Pillow format -------------------------------------------------------

TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
# RAW formats that are not TIFF inside, by their first bytes: Canon CR3 (ISO media), Fujifilm
# RAF, Olympus ORF, Panasonic RW2, Minolta MRW, Sigma X3F.
RAW_MAGIC = (b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"MMOR", b"IIU\x00", b"\x00MRM", b"FOVb")
DNG_VERSION = 50706  # the TIFF tag every DNG carries in its first directory
SUB_IFDS, MAKE = 330, 271  # a camera's TIFF-based RAW: the sensor data in a sub-directory


def _raw_accept(prefix: bytes) -> bool:
    return prefix.startswith(TIFF_MAGIC + RAW_MAGIC) or prefix[4:12] == b"ftypcrx "


def _tiff_is_raw(head: bytes, name: str) -> bool:
    """Whether a TIFF-shaped file is a camera's RAW: a DNG (its first directory has the
    DNGVersion tag), a Canon CR2 ("CR" after the header), a camera's file that keeps its
    sensor data in sub-directories (NEF, ARW, PEF...: SubIFDs and a Make in the first
    directory), or a RAW extension. An ordinary TIFF is left to Pillow's TIFF plugin, and
    a RAW LibRaw cannot read goes there too."""
    if head[8:10] == b"CR" or os.path.splitext(name)[1].lower() in RAW_EXTENSIONS:
        return True
    tags = _first_directory_tags(head)
    return DNG_VERSION in tags or {SUB_IFDS, MAKE} <= tags


def _first_directory_tags(head: bytes) -> set[int]:
    """The tag numbers of a TIFF's first directory, as far as *head* holds them."""
    order = "<" if head[:2] == b"II" else ">"
    try:
        (first,) = struct.unpack_from(f"{order}I", head, 4)
        (count,) = struct.unpack_from(f"{order}H", head, first)
        return {struct.unpack_from(f"{order}H", head, first + 2 + 12 * i)[0]
                for i in range(min(count, 512))}
    except struct.error:  # the directory lies past what was read: no camera writes that
        return set()


class RawImageFile(ImageFile.ImageFile):
    """A camera RAW file, demosaiced by LibRaw (``rawpy``): the camera's white balance,
    8-bit sRGB, turned upright as the camera says. The size comes from the header, so
    the bomb guard and the upload limits apply before any pixel is decoded; ``draft``
    asks LibRaw for half size (its fast path), as JPEG's draft does for thumbnails."""

    format = "RAW"
    format_description = "camera RAW (LibRaw)"

    def _open(self) -> None:
        head = self.fp.read(1 << 16)
        name = str(self.filename or getattr(self.fp, "name", "") or "")
        if head.startswith(TIFF_MAGIC) and not _tiff_is_raw(head, name):
            raise SyntaxError("a TIFF, not a camera RAW")
        self._raw_bytes = head + self.fp.read()
        try:
            with rawpy.imread(io.BytesIO(self._raw_bytes)) as raw:
                width, height, flip = raw.sizes.width, raw.sizes.height, raw.sizes.flip
        except (rawpy.LibRawError, ValueError) as exc:
            raise SyntaxError(f"not a RAW file LibRaw reads: {exc}") from None
        self._size = (height, width) if flip in (5, 6) else (width, height)
        self._mode = "RGB"
        self._half = False
        self.tile = []

    def draft(self, mode: str | None, size: tuple[int, int] | None):
        if size is not None and size[0] * 2 <= self.size[0] and size[1] * 2 <= self.size[1]:
            self._half = True
        return None

    def load(self):
        if self._im is None:
            try:
                with rawpy.imread(io.BytesIO(self._raw_bytes)) as raw:
                    rgb = raw.postprocess(use_camera_wb=True, output_bps=8, half_size=self._half)
            except (rawpy.LibRawError, ValueError, MemoryError) as exc:
                raise OSError(f"LibRaw cannot decode it: {exc}") from None
            self._size = (rgb.shape[1], rgb.shape[0])
            self.im = Image.fromarray(np.ascontiguousarray(rgb), "RGB").im
            self._raw_bytes = b""
        return Image.Image.load(self)


Image.register_open(RawImageFile.format, RawImageFile, _raw_accept)
Image.register_extensions(RawImageFile.format, sorted(RAW_EXTENSIONS))
Image.register_mime(RawImageFile.format, "image/x-dcraw")  # freedesktop's name for camera RAW


class ImageDecodeError(ValueError):
    """An input that cannot be turned into a model input; the message says why."""


CANNOT_READ = "cannot read"


@dataclass
class Scan:
    """What a folder holds: image files to index, and the ones skipped, with why.

    Paths are plain strings: a ``Path`` costs several times the memory, and
    a large collection is hundreds of thousands of them.
    """

    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Files and folders that are there but could not be read now: not known to be gone.
    unreadable: list[str] = field(default_factory=list)


def walk_images(folder: str | os.PathLike, follow_symlinks: bool = False) -> list[Path]:
    """The indexable image files under *folder* (see :func:`scan_folder`)."""
    return [Path(p) for p in scan_folder(folder, follow_symlinks).files]


def scan_folder(folder: str | os.PathLike, follow_symlinks: bool = False) -> Scan:
    """All regular files under *folder* with an image extension, sorted; the rest listed.

    Hidden files and folders are skipped silently: they are usually
    thumbnails or editor droppings, not part of the collection. FIFOs,
    sockets and devices are listed, never opened. A symlink is followed
    only where it stays inside *folder*, unless *follow_symlinks*: a link
    to ``~/.ssh`` or ``/dev/zero`` is not the collection either. Symlinked
    folders are entered only with *follow_symlinks*, once each, so loops
    end.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    real_root = os.path.realpath(root)
    scan, seen_dirs = Scan(), set()

    def unreadable(exc: OSError) -> None:  # its files are not known to be gone: listed
        scan.skipped.append((exc.filename, f"cannot read folder: {exc.strerror or exc}"))
        scan.unreadable.append(exc.filename.rstrip(os.sep) + os.sep)

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable,
                                                followlinks=follow_symlinks):
        try:
            st = os.stat(dirpath)
        except OSError as exc:  # removed while we walk
            unreadable(exc)
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                path = os.path.join(dirpath, name)
                reason = _unindexable(path, real_root, follow_symlinks)
                if reason is None:
                    scan.files.append(path)
                else:
                    scan.skipped.append((path, reason))
                    if reason.startswith(CANNOT_READ):
                        scan.unreadable.append(path)
    scan.files.sort()
    scan.skipped.sort()
    return scan


def _unindexable(path: str, real_root: str, follow_symlinks: bool) -> str | None:
    """Why *path* is not indexed, or None. Only stats: nothing here opens the file."""
    try:
        if os.path.islink(path) and not follow_symlinks:
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                return (f"symlink to {target}, outside the indexed folder (--follow-symlinks "
                        "indexes it)")
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"{CANNOT_READ} file: {exc.strerror or exc}"
    except ValueError:  # commonpath on mixed drives (Windows)
        return "symlink to another drive"
    if not stat.S_ISREG(mode):
        return f"{file_type_name(mode)}, not a regular file"
    return None


def to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any Pillow mode to RGB; transparent parts become white, as a viewer shows them."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Scale deep pixels to 8 bits in their own width (float32 for "F"):
        # a float64 detour costs ~28 bytes a pixel, a bomb's best friend.
        arr = np.asarray(img)
        if arr.dtype.kind == "f":
            hi = float(np.nanmax(arr)) if arr.size else 0.0
            arr = np.nan_to_num(arr, nan=0.0).astype(np.float32, copy=False)
            out = np.clip(arr * (255.0 / hi if hi > 255 else 1.0), 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, None)
            hi = int(arr.max()) if arr.size else 0
            out = (arr.astype(np.uint32) * 255 // hi if hi > 255 else arr).astype(np.uint8)
        img = Image.fromarray(out, "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def open_image(
    source: str | os.PathLike | bytes | BinaryIO, draft_size: int | None = None,
    inspect: Callable[[Image.Image], None] | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode an image; returns it with its original (width, height).

    Raises :class:`ImageDecodeError` with a reason a person can act on.
    Decoding is forced here (``load``) so truncated files fail now, inside
    the guarded region, and not later inside a resize. With *draft_size*,
    JPEGs decode at a reduced scale (libjpeg's DCT scaling), several times
    faster for photos and invisible at model resolution. *inspect* sees
    the opened image before its pixels are decoded (size and mode come
    from the header) and may raise to stop there; its exceptions pass
    through unchanged.
    """
    fp = _source_file(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _guarded(Image.open, fp, "r", SUPPORTED_FORMATS)
            try:
                original = img.size
                _guarded(_first_frame, img, draft_size)
                if inspect is not None:
                    inspect(img)
                _guarded(img.load)
            except BaseException:
                img.close()
                raise
    finally:
        fp.close()  # the pixels are loaded; Pillow does not close a file it was handed
    if _exif_rotates(img):
        original = (original[1], original[0])
    return img, original


def _source_file(source: str | os.PathLike | bytes | BinaryIO) -> BinaryIO:
    """The bytes, a file the caller opened, or the file opened as a regular file only (a
    FIFO must not hang us)."""
    if hasattr(source, "read"):
        return source
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageDecodeError("empty file (0 bytes)")
        return io.BytesIO(source)
    try:
        f = open_regular(source)
    except NotRegularFile as exc:
        raise ImageDecodeError(str(exc)) from exc
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    if os.fstat(f.fileno()).st_size == 0:
        f.close()
        raise ImageDecodeError("empty file (0 bytes)")
    return f


def _first_frame(img: Image.Image, draft_size: int | None) -> None:
    img.seek(0)  # first frame of GIFs and multi-page TIFFs
    if draft_size and img.format in ("JPEG", "RAW"):
        img.draft("RGB", (draft_size * 2, draft_size * 2))


def _guarded(step: Callable[..., T], *args: Any) -> T:
    """Run one Pillow step; its many failure types become one ImageDecodeError."""
    try:
        return step(*args)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(
            f"image too large (decompression bomb guard, limit {MAX_IMAGE_PIXELS} pixels)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from exc
    except Exception as exc:  # Pillow plugins raise odd types on hostile input
        raise ImageDecodeError(f"cannot decode image: {type(exc).__name__}: {exc}") from exc


Box = tuple[int, int, int, int]  # left, top, right, bottom


def clip_box(box: Box, shown: tuple[int, int]) -> Box:
    """*box* inside an image of size *shown*: clipped to it, and at least one pixel (a box
    with no area becomes the pixel nearest to it; the web refuses one off the image)."""
    width, height = shown
    left, top = min(max(box[0], 0), width - 1), min(max(box[1], 0), height - 1)
    return left, top, min(max(box[2], left + 1), width), min(max(box[3], top + 1), height)


def crop(img: Image.Image, box: Box, shown: tuple[int, int]) -> Image.Image:
    """The part of *img* inside *box*, given in the pixels of the image as shown (*shown*:
    its size, upright) and clipped to it (:func:`clip_box`). *img* may be smaller (a JPEG
    decoded at a reduced scale); the box is scaled to it."""
    left, top, right, bottom = clip_box(box, shown)
    sx, sy = img.width / shown[0], img.height / shown[1]
    x0, y0 = int(left * sx), int(top * sy)
    return img.crop((x0, y0, max(x0 + 1, round(right * sx)), max(y0 + 1, round(bottom * sy))))


def prepare(img: Image.Image, size: int, box: Box | None = None,
            shown: tuple[int, int] | None = None) -> np.ndarray:
    """Orientation, the region *box* if one is asked for (see :func:`crop`), RGB and a
    ``size``×``size`` resize: the one model-input recipe.

    The image is squashed, not cropped, so nothing the user framed is lost.
    """
    try:
        img = ImageOps.exif_transpose(img) or img
        if box is not None:
            img = crop(img, box, shown or img.size)
        if img.mode == "L":  # one band resized, then copied to three: same pixels, less work
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        img = to_rgb(img)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    except Exception as exc:
        raise ImageDecodeError(f"cannot convert image: {type(exc).__name__}: {exc}") from exc
    return np.asarray(img, dtype=np.uint8).copy()


def load_image(source: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """Decode *source* into a ``size``×``size``×3 uint8 array or raise ImageDecodeError."""
    img, _ = open_image(source, draft_size=size)
    return prepare(img, size)


EXIF_IFD, DATE_TIME_ORIGINAL, DATE_TIME = 0x8769, 36867, 306


def taken_at(img: Image.Image) -> float | None:
    """When the photo was taken, by its EXIF (DateTimeOriginal, else DateTime): seconds
    since the epoch, reading the camera's local time as UTC (EXIF rarely says its zone).

    None without one, or with one that is not a date: a file's date then is its mtime.
    """
    try:
        exif = img.getexif()
        tags = (exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL), exif.get(DATE_TIME))
    except Exception:  # no EXIF, or one Pillow cannot read: all the same to us
        return None
    for raw in tags:
        text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw or "")
        try:
            when = datetime.strptime(text.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
            return when.replace(tzinfo=timezone.utc).timestamp()
        except ValueError:  # blank, or not a date: try the next
            continue
    return None


def _exif_rotates(img: Image.Image) -> bool:
    try:
        return img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:
        return False


@dataclass(frozen=True)
class Decoded:
    """One decoding result: an array, or the reason there is none."""

    path: str | Path
    pixels: np.ndarray | None
    error: str | None = None
    width: int = 0
    height: int = 0
    format: str | None = None
    taken_at: float | None = None  # EXIF capture time (see taken_at)


def decode_file(path: Path, size: int) -> Decoded:
    """Decode one file for indexing; never raises, so one bad file cannot stop a run."""
    try:
        img, (width, height) = open_image(path, draft_size=size)
        return Decoded(path, prepare(img, size), None, width, height, img.format, taken_at(img))
    except ImageDecodeError as exc:
        return Decoded(path, None, str(exc))
    except Exception as exc:  # a worker must never die on input
        return Decoded(path, None, f"{type(exc).__name__}: {exc}")


def _decode_chunk(paths: list[Path], size: int) -> list[Decoded]:
    return [decode_file(p, size) for p in paths]


def decode_many(
    paths: Sequence[str | Path], size: int, workers: int | None = None, chunksize: int = 16
) -> Iterator[Decoded]:
    """Decode *paths* in order, in parallel processes so every core works.

    Results come back in input order, so callers can zip them with their
    own work list. ``workers=0`` decodes in this process (tests, tiny jobs).
    Only two chunks per worker are submitted ahead of the caller (a window,
    not ``Executor.map``, which submits all at once): when the model is
    slower than decoding, the decoders wait instead of piling decoded
    images up in memory, so a run's memory does not grow with the folder.
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if workers <= 1 or len(paths) < 2 * chunksize:
        for p in paths:
            yield decode_file(p, size)
        return
    yield from _decode_in_window(batched(paths, chunksize), size, workers, 2 * workers)


def _decode_in_window(chunks: Iterator[list[Path]], size: int, workers: int,
                      depth: int) -> Iterator[Decoded]:
    """Keep *depth* chunks submitted: the caller's pace, not the decoders', sets how many
    decoded images exist at once."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        window = deque(pool.submit(_decode_chunk, c, size) for c in islice(chunks, depth))
        try:
            while window:
                done = window.popleft().result()
                chunk = next(chunks, None)
                if chunk is not None:
                    window.append(pool.submit(_decode_chunk, chunk, size))
                yield from done
        finally:  # a caller that stops early should not wait for chunks it will never read
            for future in window:
                future.cancel()


def batched(items: Iterable, n: int) -> Iterator[list]:
    """Split an iterable into lists of at most *n* items."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
