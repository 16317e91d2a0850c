"""Opening files from a user's folder without being stuck or led astray by what they are.

A folder may hold a FIFO or a socket named ``a.png``, or a symlink to
``/dev/zero``, or a file may be swapped for one after it was indexed.
Opening a FIFO for reading blocks until a writer appears, and reading a
device never ends, so a plain ``open`` can hang a whole indexing run or a
server thread. Here the file is opened with ``O_NONBLOCK`` (which makes
opening a FIFO return at once) and kept only if ``fstat`` on the opened
descriptor says it is a regular file; asking first with ``stat`` would
leave a window for a swap between the check and the open.
"""
from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_NOCTTY", 0)


class NotRegularFile(OSError):
    """The path names a FIFO, socket, device or folder, not a file."""


def file_type_name(mode: int) -> str:
    """A person's word for what a non-regular file is."""
    for test, word in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open *path* for reading if, once opened, it is a regular file; else NotRegularFile."""
    fd = os.open(path, _FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{file_type_name(mode)}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's sha256, read through :func:`open_regular` so that it cannot hang."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ChangedFile(OSError):
    """The catalog's path no longer leads to the file that was indexed."""


def open_indexed(path: str, size: int, mtime: float, roots: list[str],
                 follow_symlinks: bool) -> BinaryIO:
    """*path* opened for reading, if it is still the file indexed there; else ChangedFile
    saying why (or the OSError of a file that is gone).

    A folder may be shared or synced: anyone who can write to it could put
    a symlink to a private image where an indexed file was, and a server
    that read what the catalog's path now leads to would hand it out. So
    the path, links resolved, must lie inside a folder that was indexed
    (unless the data dir follows links out of it), and the file opened
    must have the size and modification time the catalog recorded.
    """
    f = open_regular(_inside(path, roots, follow_symlinks))
    try:
        # A folder on the way could have been swapped for a link since realpath looked:
        # what was opened is checked again, where the OS can say what it is (Linux).
        opened = f"/proc/self/fd/{f.fileno()}"
        if os.path.islink(opened):
            _inside(os.readlink(opened), roots, follow_symlinks)
        _unchanged(path, os.fstat(f.fileno()), size, mtime)
        return f
    except BaseException:
        f.close()
        raise


def check_indexed(path: str, size: int, mtime: float, roots: list[str],
                  follow_symlinks: bool) -> None:
    """What :func:`open_indexed` would say of *path*, from ``stat`` alone (``lookalike check``
    asks it of every file)."""
    st = os.stat(_inside(path, roots, follow_symlinks))
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"{file_type_name(st.st_mode)}, not a regular file")
    _unchanged(path, st, size, mtime)


def is_under(path: str, folder: str) -> bool:
    """*path* is *folder* or lies below it (``catalog.path_under`` says the same in SQL)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _inside(path: str, roots: list[str], follow_symlinks: bool) -> str:
    """*path* with its links resolved, if that lies inside one of *roots* (or links may
    lead anywhere); else ChangedFile."""
    real = os.path.realpath(path)
    if not follow_symlinks and not any(is_under(real, r) for r in roots):
        raise ChangedFile(f"{path} now leads outside the folders indexed")
    return real


def _unchanged(path: str, st: os.stat_result, size: int, mtime: float) -> None:
    if st.st_size != size or st.st_mtime != mtime:
        raise ChangedFile(f"{path} changed since it was indexed (its size or time); re-index "
                          "its folder")
