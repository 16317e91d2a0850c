"""Opening the catalog database and keeping its schema at the code's revision."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, unquote

from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from .files import LOW_SPACE_BYTES, DiskFullError, ReadOnlyError, free_bytes, unwritable

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of the code."""


SQLITE_FULL = 13
KEPT = "everything committed before is kept"
# What SQLite says when the catalog's folder or file may not be written (a read-only mount,
# another user's data dir) or when it cannot even make the WAL's shared-memory file; the
# words stand in for the error names on Python 3.10, whose sqlite3 does not give them.
SQLITE_UNWRITABLE = {"SQLITE_READONLY": "readonly database",
                     "SQLITE_CANTOPEN": "unable to open database file",
                     "SQLITE_IOERR": "disk I/O error"}
# PostgreSQL's SQLSTATEs for the same: disk_full, read_only_sql_transaction.
PG_DISK_FULL, PG_READ_ONLY = "53100", "25006"


def storage_error(exc: OperationalError, database: str | Path | None = None) -> OSError | None:
    """The :class:`~search.files.DiskFullError` or :class:`~search.files.ReadOnlyError` a
    database error means, when it is one of those; None for anything else (a locked database).

    The database rolls the failed transaction back, so the catalog still holds every
    batch committed before it and the next run carries on from there.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig)
    where = _shown(database)
    catalog = f"the catalog {where}" if where else "the catalog"
    sqlstate = getattr(orig, "sqlstate", None)
    if (getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in text
            or sqlstate == PG_DISK_FULL):
        return DiskFullError(catalog, kept=KEPT)
    if sqlstate == PG_READ_ONLY:
        return ReadOnlyError(catalog)
    name = "_".join(str(getattr(orig, "sqlite_errorname", "") or "").split("_")[:2])
    unwritable = name in SQLITE_UNWRITABLE or any(w in text for w in SQLITE_UNWRITABLE.values())
    path = sqlite_file(str(database)) if database else None
    if unwritable and path is not None:
        if not os.access(path.parent, os.W_OK) or _read_only_mount(path.parent):
            return ReadOnlyError(catalog)
        # Opened read-only because the disk was full: that is still the reason.
        if free_bytes(path.parent) < LOW_SPACE_BYTES:
            return DiskFullError(catalog, kept=KEPT)
    if name == "SQLITE_READONLY" or "readonly database" in text:
        return ReadOnlyError(catalog)
    return None


def describe_database_error(exc: OperationalError, database: str | Path | None = None) -> str:
    """A sentence for a person: a full disk or a read-only data dir is theirs to fix, and it
    lost nothing committed."""
    known = storage_error(exc, database)
    if known is not None:
        return str(known)
    orig = getattr(exc, "orig", None)
    where = _shown(database)
    return (f"cannot write {f'the catalog {where}' if where else 'the catalog'}: "
            f"{orig if orig is not None else exc}")


def _shown(database: str | Path | None) -> str:
    """*database* as a person may see it: a URL keeps its password out of the message."""
    if database and (path := sqlite_file(str(database))) is not None:
        return str(path)
    if database and "://" in str(database):
        return make_url(str(database)).render_as_string(hide_password=True)
    return str(database) if database else ""


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# The newest revision under migrations/versions (tests/search/test_catalog.py holds the two
# together): a catalog already there is opened without importing Alembic, a quarter of a
# second that every command, `lookalike stats` included, would otherwise pay.
SCHEMA_HEAD = "0008"


def alembic_config(url: str):
    from alembic.config import Config  # only a migration, or a check of one, needs Alembic

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision, as Alembic reads it from migrations/versions."""
    from alembic.script import ScriptDirectory  # see alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The catalog's schema revision; None for a database no Lookalike has migrated."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn) -> str | None:
    """Alembic's version table read with plain SQL (one row: this project has one head)."""
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        if _no_such_table(exc):
            return None
        raise


def _no_such_table(exc: DBAPIError) -> bool:
    """SQLite says so in English always; PostgreSQL in its server's language, so by the
    SQLSTATE (undefined_table)."""
    return (getattr(exc.orig, "sqlstate", None) == "42P01"
            or "no such table" in str(exc.orig).lower())


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the code's schema; refuse one written by newer code.

    A revision we do not know means a newer Lookalike migrated this
    database; downgrading it silently could lose data, so we stop. Two
    processes starting on an old catalog at once (a server and a cron
    ``index``) must not both run a migration: the upgrade holds a lock
    (beside an SQLite file; an advisory lock on a server) and reads the
    revision again inside it, so the second finds the catalog at head.
    """
    if current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command  # see alembic_config
    from alembic.script import ScriptDirectory  # see alembic_config

    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    head = script.get_current_head()
    with _migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_KEY})
        current = _revision(conn)
        if current == head:
            return
        known = {r.revision for r in script.walk_revisions()}
        if current is not None and current not in known:
            raise SchemaError(
                f"the catalog at {engine.url.database} has schema revision {current!r}, which "
                f"this version of Lookalike does not know (its newest is {head!r}); it was "
                "probably written by a newer Lookalike. Upgrade Lookalike, or use another "
                "--data-dir.")
        cfg = alembic_config(str(engine.url))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


MIGRATION_KEY = 0x4C4F_4F4D  # "LOOM": the advisory lock migrations take on a server
MIGRATION_LOCK_SUFFIX = "-upgrade.lock"


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Held while one process migrates an SQLite catalog; others wait here for it.

    A file of its own beside the catalog: ``flock`` on the catalog itself
    could meet SQLite's own locks where flock is emulated with them (NFS).
    """
    path = sqlite_file(engine.url)
    if path is None:
        yield
        return
    lock_path = path.with_name(f".{path.name}{MIGRATION_LOCK_SUFFIX}")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SchemaError(f"the catalog at {path} needs an upgrade to this version of "
                          f"Lookalike's schema, but {unwritable(exc, path.parent) or exc}"
                          ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a process already upgrading
        yield
    finally:
        os.close(fd)


CATALOG_FILE = "catalog.sqlite"


def database_url(data_dir: str | Path) -> str:
    return sqlite_url(Path(data_dir).resolve() / CATALOG_FILE)


def sqlite_url(path: str | Path) -> str:
    """The URL of the SQLite file *path*, quoted so it reads back as that file whatever the
    name holds: an f-string URL sent a data dir named ``a?b`` to a file ``a`` and could not
    open one whose name holds a ``%``."""
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names (maybe relative); None for other databases and :memory:.

    Read as SQLAlchemy reads it, so it is the file the engine opens: ``str(engine.url)``
    percent-encodes a name that is not ASCII (a data dir named ``Ähnliche``).
    """
    if not isinstance(url, URL):
        try:
            url = make_url(url)
        except ArgumentError:
            return None
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    name = url.database
    if name.startswith("file:"):  # the read-only URI form (_read_only_engine)
        name = unquote(name[len("file:"):])
    return None if name.startswith(":memory:") else Path(name)


def catalog_exists(url: str) -> bool:
    """Whether *url* holds a catalog: its file exists (SQLite), or its schema does (a server).

    A server database someone created but no Lookalike has migrated holds
    nothing indexed, just like a missing SQLite file.
    """
    if (path := sqlite_file(url)) is not None or url.startswith("sqlite"):
        return path is None or path.is_file()
    engine = create_engine(url, poolclass=NullPool)
    try:
        return current_revision(engine) is not None
    finally:
        engine.dispose()


def open_database(url: str, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine + session factory for *url*, migrated to head unless told not to.

    An SQLite catalog that cannot be opened for writing (a read-only mount,
    another user's data dir, a disk too full for the WAL's shared-memory
    file) is opened read-only instead, so every command that only reads
    works; a write then fails with :func:`storage_error`'s sentence.
    """
    if (path := sqlite_file(url)) is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unwritable(exc, path.parent, existed=False) or exc
    # A server restarts and drops connections under a long-running app: each pooled
    # connection is checked before use and replaced if it died.
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    try:
        if migrate:
            upgrade_to_head(engine)
        else:
            engine.connect().close()
    except OperationalError as exc:
        if path is None or not path.is_file() or storage_error(exc, url) is None:
            raise
        engine.dispose()
        engine = _read_only_engine(path)
        if migrate and current_revision(engine) != SCHEMA_HEAD:
            raise SchemaError(f"the catalog at {path} needs an upgrade to this version of "
                              f"Lookalike's schema, but {storage_error(exc, url)}") from exc
    return engine, sessionmaker(engine, expire_on_commit=False)


def _read_only_engine(path: Path) -> Engine:
    """The SQLite file *path*, read-only: through a writer's shared-memory file when one can
    be read (then what it commits is seen), else *immutable*, which needs none."""
    url = URL.create("sqlite", database=f"file:{quote(str(path.resolve()))}",
                     query={"mode": "ro", "uri": "true"})
    engine = create_engine(url)
    try:
        engine.connect().close()
        return engine
    except OperationalError:
        engine.dispose()
    return create_engine(url.update_query_dict({"immutable": "1"}))


def access_of(engine: Engine) -> int:
    """How *engine* was opened by :func:`open_database`: READ_WRITE, READ_ONLY (it sees what
    a writer commits) or IMMUTABLE (it assumes the file never changes)."""
    query = engine.url.query
    if query.get("mode") != "ro":
        return READ_WRITE
    return IMMUTABLE if query.get("immutable") == "1" else READ_ONLY


IMMUTABLE, READ_ONLY, READ_WRITE = 0, 1, 2
