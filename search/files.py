"""Replacing a file so that readers see the old one or the new one, never half of one.

The index, the checkpoint, the PQ codebook and the thumbnails are all
written this way: a temp file in the target's folder (same filesystem, so
the rename is atomic), then ``os.replace``. ``mkstemp`` makes its files
0600, which would hide a model or an index written by ``lookalike index``
from a web server running as another user; the file gets the permissions
any new file of this process gets (0666 less the umask) before the rename.

A full disk (or quota) is the one write failure a user fixes without a
bug report, so it becomes :class:`DiskFullError`, which says so and says
the previous file is untouched. faiss reports it as a RuntimeError whose
text holds ``strerror(ENOSPC)``, and ``torch.save`` to a path as a
RuntimeError that does not mention it at all, hence the free-space check.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

# Read once at import, before any thread exists: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

_NO_ROOM = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}
# A writer stopped by ENOSPC leaves less than one write buffer free; 1 MiB is far above any.
LOW_SPACE_BYTES = 1 << 20


class DiskFullError(OSError):
    """No room for the new version of a file; the old one is intact, so freeing space is the fix."""

    def __init__(self, path: str | Path, code: int = errno.ENOSPC, existed: bool = True,
                 kept: str | None = None):
        kept = kept or ("the previous file is kept" if existed else "nothing was written")
        super().__init__(code, f"{_NO_ROOM.get(code, 'disk full')} while writing {path} ({kept}); "
                               "free some space and run the command again", str(path))

    def __str__(self) -> str:
        return self.strerror


# A folder this process may not write: a read-only mount, or another user's data dir.
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


class ReadOnlyError(OSError):
    """The data dir cannot be written here; commands that only read it still work."""

    def __init__(self, path: str | Path, code: int = errno.EROFS):
        super().__init__(code, f"{path} cannot be written ({os.strerror(code).lower()}): "
                               "this needs a data dir this process may write; commands that "
                               "only read it (search, stats, check, duplicates, serve) work",
                         str(path))

    def __str__(self) -> str:
        return self.strerror


def unwritable(exc: BaseException, path: str | Path, existed: bool = True) -> OSError | None:
    """*exc* as the one sentence a person gets for it, when it means that *path* cannot be
    written at all: :class:`DiskFullError` or :class:`ReadOnlyError`; None for anything else."""
    if isinstance(exc, (DiskFullError, ReadOnlyError)):
        return exc
    if isinstance(exc, OSError) and exc.errno in _READ_ONLY:
        return ReadOnlyError(path, exc.errno)
    if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
        return DiskFullError(path, exc.errno, existed)
    return None


def file_key(path: str | Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or rewritten (inode, size, mtime); None when absent.

    How the web app notices a new checkpoint or codebook without reading it.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def replace_atomically(path: str | Path, write: Callable[[str], None], prefix: str,
                       durable: bool = True) -> None:
    """Call *write* with a temp file's path, then rename that file over *path*.

    The temp file is ``.{prefix}-*.tmp`` beside *path*; it is removed if
    anything fails. *durable* fsyncs it before the rename, so a crash
    cannot leave a renamed but empty file, and the folder after it, so the
    rename itself survives a power cut (caches can skip both).
    """
    path = Path(path)
    existed = path.exists()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{prefix}-", suffix=".tmp")
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        if durable:
            _fsync(tmp, os.O_RDWR)
        os.replace(tmp, path)
    except BaseException as exc:
        code = no_room_errno(exc, path.parent)  # before the unlink gives the space back
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if code is not None:
            raise DiskFullError(path, code, existed) from exc
        if isinstance(exc, OSError) and exc.errno in _READ_ONLY:
            raise ReadOnlyError(path.parent, exc.errno) from exc
        raise
    if durable:
        fsync_directory(path.parent)


def no_room_errno(exc: BaseException, folder: Path) -> int | None:
    """ENOSPC or EDQUOT if *exc* came from a full disk or quota, else None."""
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain; short, but guard against a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in _NO_ROOM:
            return seen.errno
        code = next((c for c in _NO_ROOM if os.strerror(c) in str(seen)), None)
        if code is not None:
            return code
        seen = seen.__cause__ or seen.__context__
    return errno.ENOSPC if free_bytes(folder) < LOW_SPACE_BYTES else None


def free_bytes(folder: Path) -> float:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return float("inf")


def fsync_directory(folder: str | Path) -> None:
    """A rename is only on disk once its folder is; some filesystems cannot fsync a folder."""
    if os.name != "posix":
        return
    try:
        _fsync(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
