"""The trash: copies a person chose to get rid of, moved aside where they can be restored.

Nothing here deletes a file but :func:`empty_trash`. A trashed file is
renamed into a ``.lookalike-trash`` folder on its own filesystem (in the
highest folder of its indexed root that is still on that filesystem), so
the move is one ``rename``: never a copy across disks that a crash could
leave half done, and the indexer never looks inside (it skips hidden
folders). Its catalog row moves to the ``trash`` table under the same id,
code and all, so a restore brings back the same id with no re-encode, and
the decisions about its content (kept by sha256) never left.

Each move is journaled: the row is written as ``moving`` (``restoring``)
in the same commit that takes it out of (puts it back in) the images,
before the rename, and settled after. A crash between leaves a row that
says which way to go, and :func:`finish_interrupted`, which every trash
command and every indexing run call first, goes that way by looking
where the file is. Callers hold the data dir's writer lock (``search.lock``).
"""
from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .catalog import (IMAGE_FACTS, ImageRecord, ModelRecord, RetiredRecord, TrashRecord,
                      utc_text, utcnow)
from .regular_files import ChangedFile, check_indexed, is_under
from .store import NotFound, Store
from .vector_index import VectorIndex

TRASH_FOLDER = ".lookalike-trash"
TRASH_TOKEN = "trash_token"  # meta key: the catalog's prefix for its trash files' names
MOVING, TRASHED, RESTORING = "moving", "trashed", "restoring"


class TrashError(RuntimeError):
    """A file that cannot go to the trash or come back as asked; nothing was changed."""


@dataclass(frozen=True)
class Trashed:
    """One image in the trash."""

    id: int
    path: str  # where it was, and where a restore puts it
    trash_path: str
    sha256: str
    size: int
    width: int
    height: int
    trashed_at: datetime | None
    present: bool  # its file is still in the trash (someone may have removed it by hand)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "trash_path": self.trash_path,
                "sha256": self.sha256, "bytes": self.size, "width": self.width,
                "height": self.height, "trashed_at": utc_text(self.trashed_at),
                "present": self.present}

    @classmethod
    def of(cls, record: TrashRecord) -> "Trashed":
        return cls(record.id, record.path, record.trash_path, record.sha256, record.size,
                   record.width, record.height, record.trashed_at,
                   os.path.lexists(record.trash_path))


@dataclass(frozen=True)
class Restored:
    """One image back where it was; *reencode* when its code is from another model than the
    index's, so the next ``lookalike index`` encodes it again (under the same id)."""

    id: int
    path: str
    reencode: bool


def trash_images(store: Store, image_ids: Sequence[int]) -> list[Trashed]:
    """Move these images' files to the trash and their rows out of the index.

    All are checked before any moves (NotFound, TrashError), so a bad id
    changes nothing. A file that changed since it was indexed is refused:
    the catalog's row would not describe what is being trashed.
    """
    finish_interrupted(store)
    ids = list(dict.fromkeys(int(i) for i in image_ids))
    rows = [store.record(i) for i in ids]
    roots, follow = store.roots(), store.follows_symlinks()
    token = _catalog_token(store)
    targets = [_check_trashable(store, row, roots, follow, token, set(ids)) for row in rows]
    index = store.current_index()
    done: list[Trashed] = []
    try:
        for row, target in zip(rows, targets):
            done.append(_move_to_trash(store, row, target))
    except TrashError as exc:  # what moved leaves the index all the same
        _publish_without(store, index, done)
        raise TrashError(f"{exc}; {len(done)} file(s) before it went to the trash") from None
    _publish_without(store, index, done)
    return done


def _publish_without(store: Store, index: VectorIndex | None, done: list[Trashed]) -> None:
    if index is not None and done:
        index.remove([t.id for t in done])
        store.publish_index(index)


def _catalog_token(store: Store) -> str:
    """A few random letters naming this catalog in its trash files' names, made once: two
    data dirs over the same photos share ids, never a trash file."""
    token = store.get_meta(TRASH_TOKEN)
    if token is None:
        with store.sessions() as session, session.begin():
            store.set_meta(session, TRASH_TOKEN, secrets.token_hex(4))
        token = store.get_meta(TRASH_TOKEN)
    return str(token)


def _check_trashable(store: Store, row: ImageRecord, roots: list[str], follow: bool,
                     token: str, batch: set[int]) -> Path:
    """Where *row*'s file goes in the trash, once it is sure the move can be made: the
    file is the one indexed, its folder lets it go, the trash is on its filesystem and
    has no file of that name, and no other image is a link to it."""
    try:
        check_indexed(row.path, row.size, row.mtime, roots, follow)
    except ChangedFile as exc:
        raise TrashError(f"image {row.id}: {exc}") from None
    except OSError as exc:
        raise TrashError(f"image {row.id}: cannot reach {row.path}: {exc.strerror or exc}; "
                         "`lookalike index` notices a file that is gone") from None
    if not os.access(os.path.dirname(row.path), os.W_OK | os.X_OK):
        raise TrashError(f"image {row.id}: its folder does not let files be moved out of it "
                         f"({os.path.dirname(row.path)})")
    _refuse_link_targets(store, row, batch)
    folder = trash_folder(row.path, roots)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise TrashError(f"image {row.id}: cannot make the trash folder {folder}: "
                         f"{exc.strerror or exc}") from None
    if folder.stat().st_dev != os.stat(row.path).st_dev:
        raise TrashError(f"image {row.id}: {folder} is on another filesystem than {row.path}")
    target = folder / _trash_name(folder, f"{token}-{row.id}-", os.path.basename(row.path))
    if os.path.lexists(target):
        raise TrashError(f"image {row.id}: {target} is there already (nothing is overwritten)")
    return target


def _trash_name(folder: Path, prefix: str, name: str) -> str:
    """*prefix* + *name*, shortened in its stem to what the filesystem takes."""
    try:
        most = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        most = 255
    stem, extension = os.path.splitext(name)
    while len(os.fsencode(prefix + stem + extension)) > most and stem:
        stem = stem[:-1]
    return prefix + stem + extension


def _refuse_link_targets(store: Store, row: ImageRecord, batch: set[int]) -> None:
    """No kept image may be a symlink to *row*'s file: trashing the file would leave the
    kept one pointing nowhere (and ``--empty`` would delete the only bytes)."""
    with store.sessions() as session:
        same = session.execute(select(ImageRecord.id, ImageRecord.path).where(
            ImageRecord.sha256 == row.sha256, ImageRecord.id != row.id)).all()
    real = os.path.realpath(row.path)
    for other_id, other in same:
        if other_id not in batch and os.path.islink(other) and os.path.realpath(other) == real:
            raise TrashError(f"image {row.id}: image {other_id} ({other}) is a link to it; "
                             "trash that one too, or keep this one")


def trash_folder(path: str, roots: list[str]) -> Path:
    """The trash on *path*'s own filesystem: in the highest folder above it that is on
    the same filesystem and inside the indexed root that holds it (its own folder when
    no root does)."""
    folder = Path(path).parent
    root = next((r for r in roots if is_under(path, r)), None)
    device = folder.stat().st_dev
    top = folder
    for parent in folder.parents:
        if root is None or not is_under(str(parent), root) or parent.stat().st_dev != device:
            break
        top = parent
    return top / TRASH_FOLDER


def _move_to_trash(store: Store, row: ImageRecord, target: Path) -> Trashed:
    """Journal, rename, settle: one file."""
    with store.sessions() as session, session.begin():
        session.add(TrashRecord(id=row.id, path=row.path, trash_path=str(target),
                                state=MOVING, **_facts(row)))
        session.execute(delete(ImageRecord).where(ImageRecord.id == row.id))
        store.mark_catalog_changed(session)
    try:
        os.rename(row.path, target)
    except OSError as exc:
        with store.sessions() as session, session.begin():
            _put_back(store, session, session.get(TrashRecord, row.id))
        raise TrashError(f"image {row.id}: cannot move {row.path} to {target}: "
                         f"{exc.strerror or exc}") from None
    return _settle(store, row.id, TRASHED)


def restore_images(store: Store, trash_ids: Sequence[int]) -> list[Restored]:
    """Move these files back from the trash to where they were, under their old ids.

    All are checked first: an id not in the trash is NotFound; a file gone
    from the trash, or a path something else now occupies, is a TrashError
    (nothing is overwritten).
    """
    finish_interrupted(store)
    ids = list(dict.fromkeys(int(i) for i in trash_ids))
    with store.sessions() as session:
        records = [session.get(TrashRecord, i) for i in ids]
    for i, record in zip(ids, records):
        if record is None:
            raise NotFound(f"no image with id {i} in the trash")
        if not os.path.lexists(record.trash_path):
            raise TrashError(f"image {i}: its file is no longer in the trash "
                             f"({record.trash_path})")
        if os.path.lexists(record.path):
            raise TrashError(f"image {i}: something else is at {record.path} now; move it "
                             "away first (nothing is overwritten)")
    index = store.current_index()
    index_model = store.index_model()
    done: list[Restored] = []
    try:
        for record in records:
            done.append(_restore_one(store, record, index, index_model))
    except TrashError as exc:
        if index is not None and done:
            store.publish_index(index)
        raise TrashError(f"{exc}; {len(done)} file(s) before it came back") from None
    if index is not None and done:
        store.publish_index(index)
    return done


def _restore_one(store: Store, record: TrashRecord, index: VectorIndex | None,
                 index_model: str | None) -> Restored:
    with store.sessions() as session, session.begin():
        session.get(TrashRecord, record.id).state = RESTORING
    try:
        os.makedirs(os.path.dirname(record.path), exist_ok=True)
        if os.path.lexists(record.path):  # arrived since the check: never overwritten
            raise FileExistsError(errno.EEXIST, "something else is there now")
        os.rename(record.trash_path, record.path)
    except OSError as exc:
        _settle(store, record.id, TRASHED)
        raise TrashError(f"image {record.id}: cannot move {record.trash_path} back to "
                         f"{record.path}: {exc.strerror or exc}") from None
    with store.sessions() as session, session.begin():
        found = session.get(TrashRecord, record.id)
        reencode = _put_back(store, session, found, index_model)
    if index is not None and not reencode:
        index.add(np.array([record.id]), np.frombuffer(record.code, np.float32)[None])
    return Restored(record.id, record.path, reencode)


def _put_back(store: Store, session: Session, record: TrashRecord,
              index_model: str | None = None) -> bool:
    """*record*'s row back among the images, in the caller's transaction; True when its
    code is not the index's model's, so only its id is kept (retired: the next index
    encodes the file again and gives it that id)."""
    model = session.get(ModelRecord, record.model_id)
    reencode = index_model is not None and model.checkpoint_sha256 != index_model
    if reencode:
        session.merge(RetiredRecord(id=record.id, path=record.path, sha256=record.sha256))
    else:
        session.add(ImageRecord(id=record.id, path=record.path, **_facts(record)))
    session.delete(record)
    store.mark_catalog_changed(session)
    return reencode


def _settle(store: Store, trash_id: int, state: str) -> Trashed:
    with store.sessions() as session, session.begin():
        record = session.get(TrashRecord, trash_id)
        record.state = state
        return Trashed.of(record)


def _facts(row: ImageRecord | TrashRecord) -> dict[str, Any]:
    return {k: getattr(row, k) for k in IMAGE_FACTS}


def list_trash(store: Store) -> list[Trashed]:
    """What the trash holds, most recently trashed first."""
    with store.sessions() as session:
        return [Trashed.of(r) for r in session.scalars(
            select(TrashRecord).where(TrashRecord.state == TRASHED)
            .order_by(TrashRecord.trashed_at.desc(), TrashRecord.id.desc()))]


def empty_trash(store: Store, older_than_days: float | None = None) -> list[Trashed]:
    """Delete the trashed files for good (only those trashed more than *older_than_days*
    ago, when given), and forget them. The only place Lookalike unlinks a file."""
    finish_interrupted(store)
    query = select(TrashRecord).where(TrashRecord.state == TRASHED)
    if older_than_days is not None:
        try:
            cutoff = utcnow() - timedelta(days=older_than_days)
        except OverflowError:  # before the calendar starts: nothing is that old
            return []
        query = query.where(TrashRecord.trashed_at < cutoff)
    with store.sessions() as session:
        records = list(session.scalars(query))
    emptied = []
    for record in records:
        try:
            if os.lstat(record.trash_path).st_size != record.size:
                raise TrashError(f"{record.trash_path} is not the file trashed (its size "
                                 f"changed); left alone, with {len(emptied)} file(s) deleted "
                                 "before it")
            os.unlink(record.trash_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TrashError(f"cannot delete {record.trash_path}: {exc.strerror or exc}; "
                             f"{len(emptied)} file(s) deleted before it") from None
        with store.sessions() as session, session.begin():
            session.execute(delete(TrashRecord).where(TrashRecord.id == record.id))
        store.drop_thumbnail(record.sha256)
        emptied.append(Trashed.of(record))
    return emptied


def finish_interrupted(store: Store) -> list[str]:
    """Finish or undo the moves a crash interrupted, by where each file is now; what was
    done, a line each.

    A rename either happened or did not: a file found in the trash was
    moved (a trash is settled, a restore undone); a file found at its old
    place was not (a trash is undone, a restore finished). A file in
    neither place was removed by someone else: it stays listed in the
    trash, marked missing, until ``--empty``.
    """
    with store.sessions() as session:
        pending = list(session.scalars(select(TrashRecord).where(TrashRecord.state != TRASHED)))
    said = []
    for record in pending:
        in_trash = os.path.lexists(record.trash_path)
        at_home = os.path.lexists(record.path)
        with store.sessions() as session, session.begin():
            found = session.get(TrashRecord, record.id)
            if in_trash or not at_home:
                found.state = TRASHED
                said.append(f"image {record.id} is in the trash")
            else:
                _put_back(store, session, found, store.index_model())
                said.append(f"image {record.id} is back at {record.path}")
    return said
