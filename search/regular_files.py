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
