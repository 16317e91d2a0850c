"""One writer per data dir: an ``flock`` on ``DATA_DIR/.lock``.

Readers (``search``, ``serve``, ``check`` without ``--repair``) never
lock: SQLite WAL and the atomically replaced index file keep what they
see consistent. Writers (``index``, ``train`` into the data dir,
``check --repair``) must not interleave, because each assumes the index
it holds in memory follows every catalog commit. ``flock`` is released
by the kernel when the holder dies, so a SIGKILLed indexer never leaves
a stale lock behind; the pid written into the file is only there to name
the holder in the refusal message.

A catalog on a PostgreSQL server may be shared by indexers on several
hosts, each with its own data dir, where no ``flock`` reaches. Then the
writer also holds a session-level advisory lock in that database
(:class:`CatalogLock`), which the server frees when the holder's
connection drops, however it died.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from .files import unwritable
from .store import LOCK_FILE

# Temp files a writer creates next to its target and renames over it; only a
# writer killed mid-write leaves one behind (see VectorIndex.save, save_checkpoint).
DEBRIS_PATTERNS = (".index-*.tmp", ".ckpt-*.tmp", "models/.*.link", "models/.ckpt-*.tmp")

_held_fds: set[int] = set()

log = logging.getLogger(__name__)


def _close_in_child() -> None:
    """Forked helpers (decode workers) must not keep the lock alive after the writer dies.

    flock belongs to the open file description, which a fork shares: a
    decode worker orphaned by a SIGKILLed indexer would otherwise hold
    the data dir locked until it exits.
    """
    for fd in list(_held_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _held_fds.clear()


os.register_at_fork(after_in_child=_close_in_child)


# What a watcher's writer lock says it is doing (indexer.watch): a command that finds it held
# by a watcher waits for the pass to end instead of giving up.
WATCHING = "watching the folders of"


class DataDirBusy(RuntimeError):
    """Another process holds the data dir's writer lock."""


class WriterLock:
    """Exclusive, non-blocking writer lock on a data dir; a context manager.

    *doing* completes "another lookalike process (pid N) is … this data
    dir" in the message a second writer gets.
    """

    def __init__(self, data_dir: str | os.PathLike, doing: str = "indexing",
                 catalog_url: str | None = None):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self.doing = doing
        self._fd: int | None = None
        self.swept: list[Path] = []  # debris deleted on acquiring
        self.catalog = CatalogLock(catalog_url, doing) if is_server(catalog_url) else None

    def acquire(self) -> "WriterLock":
        """Take the lock or raise :class:`DataDirBusy` at once; never waits."""
        if self._fd is not None:
            raise RuntimeError("this WriterLock is already held")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise unwritable(exc, self.data_dir, existed=False) or exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise DataDirBusy(_busy_message(self.data_dir, holder)) from None
        self._fd = fd
        _held_fds.add(fd)
        try:
            if self.catalog is not None:
                self.catalog.acquire()
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.doing}\n".encode(), 0)
            self.swept = sweep_debris(self.data_dir)
        except BaseException as exc:
            # A full disk (the pid's write) or a folder we may not clean must not leave
            # the flock held by a process that goes on running, as a server does.
            self.release()
            raise unwritable(exc, self.data_dir, existed=False) or exc
        return self

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        try:
            if self.catalog is not None:
                self.catalog.release()
        finally:
            fd, self._fd = self._fd, None
            if fd is not None:
                _held_fds.discard(fd)
                try:
                    os.ftruncate(fd, 0)  # no stale pid for the next reader to puzzle over
                except OSError:
                    pass  # a read-only or full disk: a stale pid is only a hint (see holder)
                finally:
                    os.close(fd)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def is_server(url: str | None) -> bool:
    """Whether *url* names a catalog on a PostgreSQL server (which other hosts may share)."""
    return bool(url) and url.startswith("postgresql")


# The advisory lock's key; PostgreSQL scopes it to the catalog's database.
ADVISORY_KEY = 0x4C4F_4F4B  # "LOOK"


class CatalogLock:
    """A PostgreSQL session-level advisory lock: one writer per catalog, across hosts.

    Its connection's ``application_name`` names the holder (program, pid,
    host), which the refusal message a second writer gets repeats.
    """

    def __init__(self, url: str, doing: str):
        self.name = f"lookalike pid {os.getpid()} on {socket.gethostname()}, {doing}"[:63]
        # TCP keepalives: the server notices a holder whose host died or whose network
        # went away within about a minute (the OS default is two hours) and frees the lock.
        self.engine = create_engine(url, poolclass=NullPool, connect_args={
            "application_name": self.name, "keepalives": 1, "keepalives_idle": 30,
            "keepalives_interval": 10, "keepalives_count": 3})
        self._conn: Connection | None = None
        self._fileno: int | None = None

    def acquire(self) -> None:
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                               {"k": ADVISORY_KEY}).scalar()
            conn.commit()  # the lock is the session's: it outlives this transaction
            if not got:
                raise DataDirBusy(_catalog_busy_message(self.engine, _advisory_holder(conn)))
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._fileno = conn.connection.dbapi_connection.fileno()
        _held_fds.add(self._fileno)

    def release(self) -> None:
        """Unlock, then close the session. Closing alone would release the lock too, but
        only once the server's backend has ended: a writer right after (a second request
        of the same page) could still find it held."""
        conn, self._conn = self._conn, None
        _held_fds.discard(self._fileno)
        try:
            if conn is not None:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                    conn.commit()
                except Exception:  # a connection already broken: closing it releases the lock
                    log.warning("could not unlock the catalog; closing its session does")
                conn.close()
        finally:
            self.engine.dispose()


def _advisory_holder(conn: Connection) -> str | None:
    return conn.execute(text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :k "
        "AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
        {"k": ADVISORY_KEY}).scalar()


def _catalog_busy_message(engine, holder: str | None) -> str:
    who = (holder if holder and holder.startswith("lookalike")
           else "another lookalike process, writing")
    return (f"{who}, holds the catalog {engine.url.render_as_string(hide_password=True)}; "
            "wait for it to finish")


def holder(data_dir: str | os.PathLike) -> tuple[int, str] | None:
    """(pid, doing) of a live process named in the lock file, or None; a hint only.

    It reads the file instead of probing with flock: even a brief probe
    lock could make a writer starting at that instant fail. A writer
    killed before it could clear the file leaves its pid behind, so the
    pid must also still be alive.
    """
    try:
        fd = os.open(Path(data_dir) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        found = _read_holder(fd)
    finally:
        os.close(fd)
    if found is None or found[0] == os.getpid():
        return None
    try:
        os.kill(found[0], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return found


def sweep_debris(data_dir: Path) -> list[Path]:
    """Delete temp files left by a writer killed mid-write; returns what went.

    Only called with the writer lock held: then no live process can be
    writing one of these, so every match is debris.
    """
    removed = []
    for pattern in DEBRIS_PATTERNS:
        for path in data_dir.glob(pattern):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _read_holder(fd: int) -> tuple[int, str] | None:
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
        pid, _, doing = text.partition(" ")
        return int(pid), doing or "writing"
    except (OSError, ValueError):
        return None


def _busy_message(data_dir: Path, holder: tuple[int, str] | None) -> str:
    who, doing = ((f"another lookalike process (pid {holder[0]})", holder[1]) if holder
                  else ("another lookalike process", "writing"))
    return (f"{who} is {doing} this data dir ({data_dir}); wait for it to finish, "
            "or use another --data-dir")
