"""Replacing a file so that readers see the old one or the new one, never half of one.

The index, the checkpoint, the PQ codebook and the thumbnails are all
written this way: a temp file in the target's folder (same filesystem, so
the rename is atomic), then ``os.replace``. ``mkstemp`` makes its files
0600, which would hide a model or an index written by ``lookalike index``
from a web server running as another user; the file gets the permissions
any new file of this process gets (0666 less the umask) before the rename.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

# Read once at import, before any thread exists: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def replace_atomically(path: str | Path, write: Callable[[str], None], prefix: str,
                       durable: bool = True) -> None:
    """Call *write* with a temp file's path, then rename that file over *path*.

    The temp file is ``.{prefix}-*.tmp`` beside *path*; it is removed if
    anything fails. *durable* fsyncs it before the rename, so a crash
    cannot leave a renamed but empty file (caches can skip that).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{prefix}-", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
