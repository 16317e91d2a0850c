"""Opening the catalog database and keeping its schema at the code's revision."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of the code."""


SQLITE_FULL = 13


def describe_database_error(exc: OperationalError, database: str | Path | None = None) -> str:
    """A sentence for a person: a full disk is theirs to fix, and it lost nothing committed.

    SQLite rolls the failed transaction back, so the catalog still holds
    every batch committed before it and the next run carries on from there.
    """
    orig = getattr(exc, "orig", None)
    if database and "://" in str(database):  # a URL: its password stays out of the message
        database = make_url(str(database)).render_as_string(hide_password=True)
    where = f"the catalog {database}" if database else "the catalog"
    if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(orig):
        return (f"disk full while writing {where} (everything committed before is kept); "
                "free some space and run the command again")
    return f"cannot write {where}: {orig if orig is not None else exc}"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the code's schema; refuse one written by newer code.

    A revision we do not know means a newer Lookalike migrated this
    database; downgrading it silently could lose data, so we stop.
    """
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    current = current_revision(engine)
    head = script.get_current_head()
    if current == head:
        return
    known = {r.revision for r in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"the catalog at {engine.url.database} has schema revision {current!r}, which this "
            f"version of Lookalike does not know (its newest is {head!r}); it was probably "
            "written by a newer Lookalike. Upgrade Lookalike, or use another --data-dir."
        )
    cfg = alembic_config(str(engine.url))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


CATALOG_FILE = "catalog.sqlite"


def database_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / CATALOG_FILE}"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (maybe relative); None for other databases and :memory:."""
    prefix = "sqlite:///"
    rest = url[len(prefix):] if url.startswith(prefix) else ""
    return Path(rest) if rest and not rest.startswith(":memory:") else None


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
    """Engine + session factory for *url*, migrated to head unless told not to."""
    if (path := sqlite_file(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # A server restarts and drops connections under a long-running app: each pooled
    # connection is checked before use and replaced if it died.
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if migrate:
        upgrade_to_head(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
