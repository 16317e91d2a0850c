"""Real filesystems for the tests of a full disk and a read-only data dir: a tiny tmpfs, and a
read-only view of a folder (a bind mount). Where this process may not mount (not root, no
mount command), the test that asks is skipped, saying why."""
from __future__ import annotations

import gc
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> None:
    tool = shutil.which("mount")
    if tool is None:
        pytest.skip("no mount command")
    done = subprocess.run([tool, *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(args)}): {done.stderr.strip()}")


def _unmount(where: Path) -> None:
    gc.collect()  # a failed writer, in a traceback cycle, can hold a file open
    subprocess.run(["umount", "--lazy", str(where)], check=True)


@contextmanager
def tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of *size* mounted at *where* (made if missing) for the block's length."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        _unmount(where)


@contextmanager
def read_only_view(folder: Path, where: Path) -> Iterator[Path]:
    """*folder* seen read-only at *where*, as on a read-only mount or a backup disk."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(folder), str(where))
    try:
        _mount("-o", "remount,bind,ro", str(where))
        yield where
    finally:
        _unmount(where)


def fill(folder: Path) -> Path:
    """Fill *folder*'s filesystem to the last byte; the file that did it (delete it to free)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for block in (1 << 16, 1):  # big blocks, then the last bytes one by one
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError:
                pass
    assert shutil.disk_usage(folder).free == 0
    return filler
