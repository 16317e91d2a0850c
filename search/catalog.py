"""The catalog: per-image metadata in SQLite through SQLAlchemy's typed ORM.

``images.id`` is also the image's FAISS id: there is one id scheme only.
The schema changes only through the Alembic migrations in ``migrations/``;
``Base.metadata`` is what their ``env.py`` compares against.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Iterator, Optional, Sequence

from sqlalchemy import (JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        String, TypeDecorator, cast, event, func, literal)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ID_MAX = 2**63 - 1  # ids are 64-bit integers: a larger number is never a catalog id
# Ids, and sizes in bytes: 64-bit. SQLite's INTEGER is; PostgreSQL's is 32-bit, so there
# they are BIGINT (migration 0006). SQLite keeps INTEGER: only that is its rowid.
Int64 = Integer().with_variant(BigInteger(), "postgresql")
IDS_A_QUERY = 900  # ids in one IN (...): under SQLite's limit on a statement's variables


def id_chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    """*ids* in runs short enough for one ``IN (...)`` each, however many there are."""
    for start in range(0, len(ids), IDS_A_QUERY):
        yield [int(i) for i in ids[start:start + IDS_A_QUERY]]


def utcnow() -> datetime:
    """Now, as the catalog stores times: UTC, without a zone (SQLite has no zoned type)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utc_text(stored: datetime | None) -> str | None:
    """A time the catalog stores, as every answer gives it: ISO 8601 with its +00:00 offset."""
    return stored.replace(tzinfo=timezone.utc).isoformat() if stored else None


class FilePath(TypeDecorator):
    """A file path exactly as the OS gave it, even when the name is not valid UTF-8.

    Python hands such names over with the undecodable bytes as lone
    surrogates (PEP 383), which SQLite's UTF-8 text cannot store. Those
    paths are stored as their raw bytes (a BLOB in the same column; SQLite
    compares and indexes it like any value) and turned back into the same
    ``str`` on the way out, so ``open`` finds the file again. Every other
    path stays plain text. PostgreSQL's text cannot hold a BLOB, so there
    the column is ``bytea`` (migration 0006) and every path is its bytes,
    so both prefix-match paths bytewise alike; in order they differ only in
    where non-UTF-8 names go (SQLite sorts its BLOBs after all text).
    """

    impl = String(4096)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(String(4096))

    def process_bind_param(self, value: str | None, dialect) -> str | bytes | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return os.fsencode(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value

    def process_result_value(self, value: str | bytes | None, dialect) -> str | None:
        return decode_path(value)


def decode_path(value: str | bytes | memoryview | None) -> str | None:
    """A path column's value as the OS's ``str`` (for raw SQL reads of ``FilePath``)."""
    if isinstance(value, memoryview):
        value = value.tobytes()
    return os.fsdecode(value) if isinstance(value, bytes) else value


def path_under(column: Any, folder: str) -> Any:
    """SQL: *column* (a ``FilePath``) names a file in *folder* or below (in Python:
    ``regular_files.is_under``).

    Bytes, not LIKE: LIKE ignores case in SQLite and never matches the
    BLOBs that hold names which are not UTF-8.
    """
    prefix = os.fsencode(folder.rstrip(os.sep) + os.sep)
    return func.substr(cast(column, LargeBinary), 1, len(prefix)) == literal(prefix, LargeBinary)


class Base(DeclarativeBase):
    pass


class ModelRecord(Base):
    """A checkpoint that produced codes in this catalog."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict] = mapped_column(JSON)
    checkpoint_path: Mapped[str] = mapped_column(FilePath)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    latent_dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    images: Mapped[list["ImageRecord"]] = relationship(back_populates="model")


class ImageFacts:
    """What the catalog knows of one indexed file besides its place: the columns an image
    keeps while it lies in the trash (``TrashRecord``), so a restore brings it back as it
    was, code included, with no re-encode."""

    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Int64)
    mtime: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[Optional[str]] = mapped_column(String(16), nullable=True)
    # EXIF capture time, seconds since the epoch (indexer.images.taken_at); the file's date
    # is this, else mtime.
    taken_at: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    code: Mapped[bytes] = mapped_column(LargeBinary)
    # The column keeps its first name (a rename would be a migration for nothing); Python and
    # the API say reconstruction_error. Indexed: the library sorts by it.
    reconstruction_error: Mapped[float] = mapped_column("recon_error", Float, index=True)
    indexed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


IMAGE_FACTS = tuple(ImageFacts.__annotations__)  # the attributes a trashed image keeps


class ImageRecord(ImageFacts, Base):
    """One indexed file. ``id`` is its FAISS id; ``code`` keeps the raw latent."""

    __tablename__ = "images"
    # ids are FAISS ids: AUTOINCREMENT stops SQLite from reusing a deleted one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)

    model: Mapped[ModelRecord] = relationship(back_populates="images")


class TrashRecord(ImageFacts, Base):
    """An image moved to the trash (``search.trash``): its catalog row, kept under the same
    id, and where its file went.

    Also the journal of the move: a row is written as ``moving`` (or
    ``restoring``) before the file is renamed, and marked ``trashed`` (or
    deleted) after, so a crash in between leaves a row that says which way
    the next writer finishes it.
    """

    __tablename__ = "trash"

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(FilePath)  # where the file was, and goes back to
    trash_path: Mapped[str] = mapped_column(FilePath, unique=True)
    state: Mapped[str] = mapped_column(String(16))
    trashed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


# The file's date (search.library.file_date), which the library sorts and filters by.
Index("ix_images_file_date", func.coalesce(ImageRecord.taken_at, ImageRecord.mtime))


class ExcludedRecord(Base):
    """An image an admin deleted: re-indexing skips its path and its content (sha256)."""

    __tablename__ = "excluded"

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    excluded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RootRecord(Base):
    """A folder someone indexed (``lookalike index FOLDER``): what a re-index covers.

    Recorded as indexed, not derived from the files: the folders holding
    files are the leaves of a tree, so a re-index of those would never see
    a new subfolder, and would read a file moved between two as deleted.
    No root lies inside another (``Store.add_root``).
    """

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RetiredRecord(Base):
    """The id an image had before ``index --prune`` removed it: its content gets it back.

    Links people saved (``/images/<id>``) keep working when a pruned file
    reappears, since ids are never reused for other content.
    """

    __tablename__ = "retired"

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(FilePath)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    retired_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DecisionRecord(Base):
    """What a person decided about one duplicate group, by content (sha256), so that it
    holds across re-indexing, moved files and re-trained models.

    ``not_duplicates``: no two of its contents share a group again. ``keep``: the
    group is reviewed, and the kept image comes first while the group has no new
    content.
    """

    __tablename__ = "duplicate_decisions"
    # AUTOINCREMENT: an undone decision's id is never given to another (caches, stale pages).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    keep_id: Mapped[Optional[int]] = mapped_column(Int64, nullable=True)
    keep_sha256: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    contents: Mapped[list["DecisionContent"]] = relationship(
        back_populates="decision", cascade="all, delete-orphan", passive_deletes=True)


class DecisionContent(Base):
    """One content (sha256) a decision covers."""

    __tablename__ = "duplicate_decision_contents"

    decision_id: Mapped[int] = mapped_column(
        ForeignKey("duplicate_decisions.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)

    decision: Mapped[DecisionRecord] = relationship(back_populates="contents")


class MetaRecord(Base):
    """Small key/value facts about the data dir (e.g. the index generation)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(4096))


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL lets web readers work while an indexer writes; foreign keys are off by default in SQLite."""
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
