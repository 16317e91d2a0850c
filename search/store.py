"""A data dir: the catalog database, the vector index and the files beside them.

Layout::

    DATA_DIR/catalog.sqlite   metadata + raw codes (SQLite, WAL)
    DATA_DIR/index.faiss      FAISS index, ids = catalog primary keys
    DATA_DIR/model.pt         the current checkpoint (written by `lookalike train`)
    DATA_DIR/thumbs/          thumbnail cache, by sha256 (``thumbnail_path``)
    DATA_DIR/models/          earlier checkpoints, kept while an index they built serves (search.checkpoints)
    DATA_DIR/pq-<sha>.faiss   PQ codebook of one checkpoint (``codebook_path``; indexer.compression)
    DATA_DIR/.lock            the writer lock (``LOCK_FILE``; search.lock): one writer at a time
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from sqlalchemy import delete, exists, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .catalog import (ImageRecord, MetaRecord, ModelRecord, RootRecord, TrashRecord, decode_path,
                      id_chunks, utcnow)
from .database import access_of, database_url, open_database
from .reader import CatalogReader
from .regular_files import open_indexed
from .vector_index import VectorIndex, VectorIndexError, build_index, load_index

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "lookalike-data"
LOCK_FILE = ".lock"
MODEL_FILE = "model.pt"
INDEX_FILE = "index.faiss"
# Meta keys: the catalog's change counter, and its value when the index was last saved.
CATALOG_VERSION = "catalog_version"
INDEX_VERSION = "index_version"
# Meta key: the sha256 of the checkpoint whose codes the saved index holds.
INDEX_MODEL = "index_model"
# Meta key: what the saved index is (type, vectors, metric) and the file it was saved as,
# so `lookalike stats` can say it without loading FAISS.
INDEX_FACTS = "index_facts"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# The index type asked for with `lookalike index --index-type` (auto, flat, ivf).
INDEX_CHOICE = "index_type"  # meta key: auto, flat, ivf or ivfpq (index --index-type)
# Meta key: whether this data dir's runs follow symlinks out of the indexed folder.
FOLLOW_SYMLINKS = "follow_symlinks"


def data_dir_file(data_dir: str | Path, name: str, override: str | Path | None = None) -> Path:
    """Where one of the data dir's files lives: *override* (a setting) or DATA_DIR/*name*.

    The one rule for the layout, for the store and for the settings that name it.
    """
    return Path(override) if override else Path(data_dir) / name


def outermost(folders: Iterable[str]) -> list[str]:
    """*folders* without those inside another one of them, sorted.

    A folder sorts before everything inside it, so checking each one's
    ancestors against the roots kept so far is enough.
    """
    roots: set[str] = set()
    for folder in sorted(set(folders)):
        path = Path(folder)
        if not any(str(parent) in roots for parent in (path, *path.parents)):
            roots.add(str(path))
    return sorted(roots)


def codebook_path(data_dir: str | Path, checkpoint_sha256: str) -> Path:
    """The PQ codebook file of one checkpoint: CLI and web share it, so a code
    compressed by one decompresses in the other."""
    return Path(data_dir) / f"pq-{checkpoint_sha256[:16]}.faiss"


class NotFound(LookupError):
    """No catalog image with that id."""


@dataclass
class Store:
    data_dir: Path
    sessions: sessionmaker[Session]
    # Settings may put the index and the model outside the data dir.
    index_file: Path | None = None
    model_file: Path | None = None
    reader: CatalogReader = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The per-query reads (generation, hit rows) on their own connections, opened
        # per thread on first use; made here, not lazily, so threads share one.
        self.reader = CatalogReader(self.sql_engine)

    @classmethod
    def open(cls, data_dir: str | Path, database: str | None = None,
             index_file: str | Path | None = None, model_file: str | Path | None = None,
             ) -> "Store":
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        _engine, sessions = open_database(database or database_url(data_dir))
        return cls(data_dir, sessions, Path(index_file) if index_file else None,
                   Path(model_file) if model_file else None)

    @property
    def access(self) -> int:
        """How the catalog could be opened: ``search.database.READ_WRITE``, ``READ_ONLY`` or
        ``IMMUTABLE`` (a full disk or a read-only folder; see ``open_database``)."""
        return access_of(self.sql_engine)

    @property
    def sql_engine(self) -> Engine:
        """The SQLAlchemy engine behind ``sessions``."""
        return self.sessions.kw["bind"]

    def close(self) -> None:
        """Release every database connection this store opened."""
        self.reader.close()
        self.sql_engine.dispose()

    @property
    def index_path(self) -> Path:
        return data_dir_file(self.data_dir, INDEX_FILE, self.index_file)

    @property
    def model_path(self) -> Path:
        return data_dir_file(self.data_dir, MODEL_FILE, self.model_file)

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "thumbs"

    def thumbnail_path(self, sha256: str | None) -> Path | None:
        """Where the thumbnail of content *sha256* is cached; None unless a bare hex digest,
        so a catalog value can never name another file."""
        if not SHA256_HEX.fullmatch(sha256 or ""):
            return None
        return self.thumbs_dir / f"{sha256}.jpg"

    def load_index(self, mmap: bool = False) -> VectorIndex:
        return load_index(self.index_path, mmap)

    def current_index(self) -> VectorIndex | None:
        """A private copy of the saved index when it reflects the catalog, else None.

        For a writer that changes a few rows (a removal, the trash): a stale
        or missing index is left for the next ``lookalike index`` to
        rebuild; meanwhile searches skip ids the catalog no longer has.
        """
        if not self.index_is_current():
            return None
        try:
            return self.load_index()
        except VectorIndexError:
            return None

    def drop_thumbnail(self, sha256: str) -> None:
        """Remove the cached thumbnail of *sha256* unless a catalog file, or one in the
        trash, still has those bytes."""
        with self.sessions() as session:
            shared = any(session.scalar(select(exists().where(table.sha256 == sha256)))
                         for table in (ImageRecord, TrashRecord))
        path = None if shared else self.thumbnail_path(sha256)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a cache file: unreachable without its catalog row anyway
                log.warning("could not remove the cached thumbnail %s", path)

    def record(self, image_id: int) -> ImageRecord:
        """One catalog row by id, or NotFound."""
        with self.sessions() as s:
            row = s.get(ImageRecord, image_id)
        if row is None:
            raise NotFound(f"no image with id {image_id}")
        return row

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.sessions() as s:
            row = s.get(MetaRecord, key)
            return row.value if row else default

    def set_meta(self, session: Session, key: str, value: str) -> None:
        session.merge(MetaRecord(key=key, value=value))

    def index_generation(self) -> int:
        """Bumped on every index save; a search engine reloads its index when it moves.

        Read on every query, so through the fast reader (``search.reader``).
        """
        rows = self.reader.fetch("SELECT value FROM meta WHERE key = {}", ["generation"])
        return int(rows[0][0] or 0) if rows else 0

    def hit_rows(self, ids: Sequence[int]) -> dict[int, tuple[str, float | None]]:
        """(path, reconstruction error) by id: what a search result shows, and no more.

        Whole ORM rows would drag each image's code blob along; ids the
        catalog no longer has are simply absent.
        """
        if not ids:
            return {}
        marks = ", ".join(["{}"] * len(ids))
        rows = self.reader.fetch(f"SELECT id, path, recon_error FROM images WHERE id IN ({marks})",
                                 [int(i) for i in ids])
        return {int(i): (decode_path(path), err) for i, path, err in rows}

    def codes_of(self, ids: Sequence[int], model_sha256: str | None = None
                 ) -> dict[int, np.ndarray]:
        """The stored raw codes of these catalog rows, by id (ids not there are absent);
        with *model_sha256*, only codes that checkpoint made (the others compare as noise:
        a re-encode with a new model rewrites them one batch at a time)."""
        found: dict[int, np.ndarray] = {}
        query = select(ImageRecord.id, ImageRecord.code)
        if model_sha256 is not None:
            query = query.join(ModelRecord).where(ModelRecord.checkpoint_sha256 == model_sha256)
        with self.sessions() as s:
            for chunk in id_chunks(ids):
                found.update((int(i), np.frombuffer(code, np.float32)) for i, code in s.execute(
                    query.where(ImageRecord.id.in_(chunk))))
        return found

    def file_facts(self, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """(path, file size) by id, as the catalog has them now; ids not there are absent."""
        found: dict[int, tuple[str, int]] = {}
        with self.sessions() as s:
            for chunk in id_chunks(ids):
                found.update((r.id, (r.path, r.size)) for r in s.execute(
                    select(ImageRecord.id, ImageRecord.path, ImageRecord.size)
                    .where(ImageRecord.id.in_(chunk))))
        return found

    def model_id_of(self, checkpoint_sha256: str | None) -> int | None:
        """The catalog's id for a checkpoint; None until an indexer has used it."""
        with self.sessions() as s:
            return s.scalar(select(ModelRecord.id)
                            .where(ModelRecord.checkpoint_sha256 == checkpoint_sha256))

    def spread_ids(self, count: int) -> list[int]:
        """*count* ids spread evenly over the catalog (fewer when it holds fewer)."""
        with self.sessions() as s:
            total = s.scalar(select(func.count(ImageRecord.id))) or 0
            picks = sorted({total * i // count for i in range(count)}) if total else []
            ids = [s.scalar(select(ImageRecord.id).order_by(ImageRecord.id).offset(p).limit(1))
                   for p in picks]
        return [i for i in ids if i is not None]

    def checkpoints_of(self, ids: Sequence[int]) -> set[str]:
        """The sha256 of the checkpoints that encoded these catalog rows."""
        with self.sessions() as s:
            return set(s.scalars(select(ModelRecord.checkpoint_sha256).join(ImageRecord)
                                 .where(ImageRecord.id.in_(list(ids)))))

    def catalog_version(self) -> int:
        """Bumped with every catalog write that changes codes or ids."""
        return int(self.get_meta(CATALOG_VERSION, "0") or 0)

    def indexed_version(self) -> int:
        """The catalog version the saved index reflects."""
        return int(self.get_meta(INDEX_VERSION, "0") or 0)

    def mark_catalog_changed(self, session: Session) -> None:
        """Bump the catalog version inside the caller's transaction.

        Ids alone cannot tell a stale index from a current one: a file
        re-encoded in place keeps its id but gets a new code. Every write
        that changes codes or ids calls this in the same transaction, so
        the version moves exactly when the catalog does.
        """
        self._bump(session, CATALOG_VERSION)

    def _bump(self, session: Session, key: str) -> None:
        """Add one to a counter in meta, read and written in the caller's transaction."""
        current = session.get(MetaRecord, key)
        self.set_meta(session, key, str(int(current.value if current else 0) + 1))

    def index_is_current(self) -> bool:
        """Whether the saved index was written after the catalog's last change."""
        return self.indexed_version() == self.catalog_version()

    def publish_index(self, index: VectorIndex, model_sha256: str | None = None) -> None:
        """Save *index* atomically, then record the catalog version it reflects (and, when
        given, the checkpoint whose codes it holds).

        Only the writer-lock holder calls this, with an in-memory index
        that follows every catalog commit so far. A crash between the
        save and the meta commit leaves the versions apart, which only
        costs a rebuild next time.
        """
        version = self.catalog_version()
        index.save(self.index_path)
        facts = {**index.facts(), "file": _file_stamp(self.index_path)}
        with self.sessions() as session, session.begin():
            self.set_meta(session, INDEX_VERSION, str(version))
            self.set_meta(session, INDEX_FACTS, json.dumps(facts))
            if model_sha256:
                self.set_meta(session, INDEX_MODEL, model_sha256)
            self._bump(session, "generation")

    def index_facts(self) -> dict | None:
        """The saved index's type, vectors and metric as recorded when it was published;
        None when there is no index file, or it is not the file recorded (replaced by
        hand, or saved before this was recorded): then only loading it can tell."""
        try:
            facts = json.loads(self.get_meta(INDEX_FACTS) or "null")
        except ValueError:
            return None
        if not isinstance(facts, dict) or facts.pop("file", None) != _file_stamp(self.index_path):
            return None
        return facts

    def index_model(self) -> str | None:
        """The sha256 of the checkpoint that built the saved index; None for an index saved
        before this was recorded. Read per query (is the loaded model still the one?)."""
        rows = self.reader.fetch("SELECT value FROM meta WHERE key = {}", [INDEX_MODEL])
        return rows[0][0] if rows and rows[0][0] else None

    def catalog_ids(self, model_id: int | None = None) -> set[int]:
        query = select(ImageRecord.id)
        if model_id is not None:
            query = query.where(ImageRecord.model_id == model_id)
        with self.sessions() as s:
            return set(s.scalars(query))

    def roots(self) -> list[str]:
        """The folders indexed into this data dir, none inside another; by path.

        Read for every original served, so through the fast reader.
        """
        return sorted(decode_path(p) for p, in self.reader.fetch("SELECT path FROM roots", []))

    def follows_symlinks(self) -> bool:
        """Whether this data dir's runs index symlinks that lead out of the folder indexed
        (read with every original served, so through the fast reader)."""
        rows = self.reader.fetch("SELECT value FROM meta WHERE key = {}", [FOLLOW_SYMLINKS])
        return bool(rows) and rows[0][0] == "1"

    def open_file(self, row: ImageRecord) -> BinaryIO:
        """The file of catalog row *row*, opened, if it is still the one indexed
        (``search.regular_files.open_indexed``); else ChangedFile, or the OSError of a
        file that is gone."""
        return open_indexed(row.path, row.size, row.mtime, self.roots(),
                            self.follows_symlinks())

    def add_root(self, session: Session, folder: str) -> None:
        """Record *folder* (absolute, resolved) as indexed, in the caller's transaction:
        nothing when a root holds it already, and it replaces the roots inside it."""
        roots = set(session.scalars(select(RootRecord.path)))
        kept = outermost(roots | {folder})
        if folder in roots or folder not in kept:
            return
        inside = roots - set(kept)
        if inside:
            session.execute(delete(RootRecord).where(RootRecord.path.in_(inside)))
        session.add(RootRecord(path=folder, added_at=utcnow()))

    def index_choice(self) -> str:
        """The index type this data dir was asked for (auto, flat, ivf, ivfpq): ``auto``
        until someone chose; ``choose_index_type`` turns it into an index kind.

        Kept in the catalog so that every later rebuild (a plain re-index,
        a crash recovery, ``check --repair``) honours it.
        """
        return self.get_meta(INDEX_CHOICE, "auto") or "auto"

    def set_index_choice(self, session: Session, choice: str) -> None:
        self.set_meta(session, INDEX_CHOICE, choice)

    def rebuild_index(self, dim: int, model_id: int, choice: str | None = None) -> VectorIndex:
        """A fresh index from the raw codes the catalog keeps for *model_id*.

        *choice* defaults to the data dir's (:meth:`index_choice`); ``auto``
        picks exact or IVF by the number of codes (``choose_index_type``).
        """
        choice = choice or self.index_choice()
        with self.sessions() as s:
            rows = s.execute(select(ImageRecord.id, ImageRecord.code)
                             .where(ImageRecord.model_id == model_id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        codes = (np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows
                 else np.zeros((0, dim), np.float32))
        return build_index(ids, codes, dim, choice)

    def saved_index_if_current(self, dim: int, model_id: int) -> VectorIndex | None:
        """The saved index when it holds exactly the model's catalog ids and reflects the
        catalog's last change; else None, and the caller rebuilds it from the catalog.

        This is what makes a crash between a catalog commit and an index save
        harmless: the catalog is the truth, the index follows it. The versions
        catch what ids cannot (a code replaced in place), and the duplicate
        check an id added twice.
        """
        try:
            index = self.load_index()
        except VectorIndexError:
            return None
        ids = index.ids().tolist()
        if (index.dim == dim and self.index_is_current() and len(ids) == len(set(ids))
                and set(ids) == self.catalog_ids(model_id)):
            return index
        return None


def _file_stamp(path: Path) -> list[int] | None:
    """A file's size and modification time (ns): it changes whenever the file is rewritten."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]
