"""Data-changing endpoints for the operator: re-index, delete an image, exclusions. Off by default.

Everything else the app serves only reads. These write, so they answer
403 until the operator sets ``LOOKALIKE_ADMIN_TOKEN``, and then only to
requests carrying ``Authorization: Bearer <token>`` (a header browsers
never add on their own, so no cross-site form can use them).

No part of a request names a file or folder: a re-index covers the
folders the operator configured (``LOOKALIKE_INDEX_FOLDERS``) or, when
none are, the folders the catalog's files are in; a delete names a
catalog id, drops its row and vector, and leaves the file on disk alone,
but records an exclusion so that re-indexing does not bring it back.
Both take the data dir's writer lock (``indexer.lock``), the same one
``lookalike index`` takes, so they never interleave with another writer:
a busy data dir is a 409.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from indexer.lock import DataDirBusy, WriterLock
from search.catalog import ExcludedRecord, ImageRecord, utcnow
from search.store import Store
from search.vector_index import VectorIndex, VectorIndexError

from .answers import Deleted, Exclusion, Exclusions, Job as JobAnswer
from .api import ID
from .apispec import ADMIN_SECURITY, request_params, spec
from .backend import Backend, current_backend
from .errors import ApiError, NotReady, error_response
from .schemas import (ADMIN_ERRORS, BUSY, NOT_FOUND, NOT_READY, PATH_ID, DeleteImageQueryString,
                      answers)
from .security import token_matches
from .thumbnails import cached_thumbnail

if TYPE_CHECKING:  # torch is imported only when a model is loaded
    from indexer.encoder import TorchEncoder

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/api/admin")

EXTENSION = "lookalike_admin_jobs"
KEEP_JOBS = 50  # finished jobs remembered for GET /api/admin/jobs/<id>
KEEP_FAILURES = 100  # unreadable files listed per folder in a job's status
ADMIN_TAG = "admin"


def admin_operation(**declared: Any) -> Callable:
    """``spec.validate`` for an admin view: tagged, and documented as needing the token."""
    return spec.validate(tags=[ADMIN_TAG], security=ADMIN_SECURITY, **declared)


# -- who may call them -------------------------------------------------------------------------

@bp.before_request
def _authorize():
    """403 while disabled, 401 without the right bearer token; None lets the view run."""
    token = current_app.config.get("LOOKALIKE_ADMIN_TOKEN")
    if not token:
        return error_response(403, "admin_disabled", "the admin endpoints are disabled; the "
                              "operator enables them by setting LOOKALIKE_ADMIN_TOKEN")
    if not token_matches(request.headers.get("Authorization", ""), str(token), basic=False):
        response, status = error_response(401, "unauthorized", "send the admin token as "
                                          "'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="lookalike admin"'
        return response, status
    return None


def _writer_lock(backend: Backend, doing: str) -> WriterLock:
    """The data dir's writer lock, taken now, or 409 when another writer has it."""
    try:
        return WriterLock(backend.data_dir, doing).acquire()
    except DataDirBusy as exc:
        raise ApiError(409, "busy", str(exc)) from None
    except OSError as exc:  # a read-only data dir: nothing here can write
        raise NotReady(f"cannot take the writer lock of {backend.data_dir}: "
                       f"{exc.strerror or exc}") from None


# -- DELETE /api/admin/images/<id> ---------------------------------------------------------------

@bp.delete(f"/images/{ID}")
@admin_operation(query=DeleteImageQueryString, path_parameter_descriptions=PATH_ID, resp=answers({
    200: (Deleted, "Removed."), 400: "exclude is not true or false.", **ADMIN_ERRORS,
    404: NOT_FOUND, 409: BUSY}))
def delete_image(image_id: int):
    """Forget one image: its catalog row, its vector, its cached thumbnail; not its file.

    Unless ``exclude=false``, later re-indexing skips the file, and new files
    with the same content, until the exclusion is lifted.
    """
    exclude = request_params().exclude
    backend = current_backend()
    lock = _writer_lock(backend, "deleting an image from")
    try:
        row = backend.record(image_id)
        exclusion = remove_image(backend.store, row, exclude)
    finally:
        lock.release()
    return jsonify(id=row.id, path=row.path, deleted=True, file_deleted=False,
                   excluded=exclusion is not None, exclusion_id=exclusion)


def remove_image(store: Store, row: ImageRecord, exclude: bool = True) -> int | None:
    """Delete *row* from the catalog, then from the saved index; caller holds the writer lock.

    The catalog commit comes first and bumps the catalog version, as the
    indexer's do: if the process dies before the index is saved, the next
    writer sees the versions apart and rebuilds the index from the catalog.
    The running engines are not touched (they may be searching their index
    right now): saving bumps the generation, and each reloads on its next query.
    With *exclude*, the same commit records the exclusion; its id is returned.
    """
    index = _current_index(store)
    exclusion = None
    with store.sessions() as session, session.begin():
        session.execute(delete(ImageRecord).where(ImageRecord.id == row.id))
        store.mark_catalog_changed(session)
        if exclude:
            exclusion = _exclude(session, row)
    if index is not None:
        index.remove([row.id])
        store.publish_index(index)
    _drop_thumbnail(store, row.sha256)
    return exclusion


def _exclude(session: Session, row: ImageRecord) -> int:
    """Record (or refresh) the exclusion of *row*'s path and content; its id."""
    record = session.scalar(select(ExcludedRecord).where(ExcludedRecord.path == row.path))
    if record is None:
        record = ExcludedRecord(path=row.path, sha256=row.sha256)
        session.add(record)
    else:
        record.sha256, record.excluded_at = row.sha256, utcnow()
    session.flush()
    return record.id


# -- GET /api/admin/exclusions and DELETE /api/admin/exclusions/<id> ---------------------------

@bp.get("/exclusions")
@admin_operation(resp=answers({
    200: (Exclusions, "The exclusions."), **ADMIN_ERRORS}))
def exclusions():
    """The images re-indexing skips, newest first."""
    with current_backend().store.sessions() as session:
        rows = session.scalars(select(ExcludedRecord).order_by(ExcludedRecord.id.desc()))
        return jsonify(exclusions=[exclusion_json(r) for r in rows])


@bp.delete("/exclusions/<int(max=9223372036854775807):exclusion_id>")
@admin_operation(resp=answers({
    200: (Exclusion, "Lifted."), **ADMIN_ERRORS, 404: "No exclusion with that id."}))
def lift_exclusion(exclusion_id: int):
    """Let re-indexing add the file (and its content) again; the next run picks it up."""
    store = current_backend().store
    with store.sessions() as session, session.begin():
        record = session.get(ExcludedRecord, exclusion_id)
        if record is None:
            raise ApiError(404, "not_found", f"no exclusion with id {exclusion_id}")
        answer = {**exclusion_json(record), "lifted": True}
        session.delete(record)
    return jsonify(answer)


def exclusion_json(record: ExcludedRecord) -> dict[str, Any]:
    at = record.excluded_at.replace(tzinfo=timezone.utc).isoformat() if record.excluded_at else None
    return {"id": record.id, "path": record.path, "sha256": record.sha256, "excluded_at": at}


def _current_index(store: Store) -> VectorIndex | None:
    """A private copy of the saved index when it reflects the catalog, else None.

    A stale or missing index is left for the next ``lookalike index`` to
    rebuild; meanwhile searches skip ids the catalog no longer has.
    """
    if not store.index_is_current():
        return None
    try:
        return store.load_index()
    except VectorIndexError:
        return None


def _drop_thumbnail(store: Store, sha256: str) -> None:
    """Remove the cached thumbnail unless another catalog file has the same bytes."""
    with store.sessions() as session:
        shared = session.scalar(select(exists().where(ImageRecord.sha256 == sha256)))
    path = None if shared else cached_thumbnail(store.thumbs_dir, sha256)
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a cache file: unreachable without its catalog row anyway
            log.warning("could not remove the cached thumbnail %s", path)


# -- POST /api/admin/reindex and GET /api/admin/jobs/<id> --------------------------------------

@dataclass
class Job:
    """One background re-index; read by request threads while its own thread fills it in."""

    id: str
    folders: list[str]
    status: str = "running"  # running → done | failed
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "folders": list(self.folders),
                "started_at": self.started_at, "finished_at": self.finished_at,
                "results": list(self.results), "error": self.error,
                "status_url": f"{request.script_root}/api/admin/jobs/{self.id}"}


class Jobs:
    """The app's re-index jobs, newest last; only the last KEEP_JOBS are remembered."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, folders: list[str]) -> Job:
        job = Job(secrets.token_hex(8), folders)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())


@bp.record_once
def _add_jobs(state) -> None:
    state.app.extensions[EXTENSION] = Jobs()


def app_jobs(app: Flask | None = None) -> Jobs:
    return (app or current_app).extensions[EXTENSION]


@bp.post("/reindex")
@admin_operation(resp=answers({
    202: (JobAnswer, "Started; poll status_url (also the Location header)."), **ADMIN_ERRORS,
    409: "busy: another writer holds the data dir's lock; nothing_to_index: no folders are "
         "configured and the catalog is empty.", 503: NOT_READY}))
def reindex():
    """Start re-indexing the configured (or the catalog's) folders; 202 with the job.

    The request body, if any, is ignored: no folder can be named here.
    """
    backend = current_backend()
    encoder = backend.engine().encoder  # 503 without a model; the job encodes with it
    folders = reindex_folders(current_app.config.get("LOOKALIKE_INDEX_FOLDERS"), backend.store)
    if not folders:
        raise ApiError(409, "nothing_to_index", "no LOOKALIKE_INDEX_FOLDERS are configured "
                       "and the catalog is empty: there is nothing to re-index")
    lock = _writer_lock(backend, "re-indexing (web admin)")
    job = app_jobs().add(folders)
    try:
        threading.Thread(target=run_job, args=(job, backend.store, encoder, lock),
                         name=f"reindex-{job.id}", daemon=True).start()
    except BaseException:
        lock.release()
        raise
    body = job.as_dict()
    response = jsonify(body)
    response.headers["Location"] = body["status_url"]
    return response, 202


@bp.get("/jobs/<job_id>")
@admin_operation(resp=answers({
    200: (JobAnswer, "The job so far."), **ADMIN_ERRORS,
    404: "No such job (kept in memory only)."}))
def job_status(job_id: str):
    """What a re-index job did so far: per folder, the indexer's summary."""
    job = app_jobs().get(job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job (only the last "
                       f"{KEEP_JOBS} are kept, and none survive a restart)")
    return jsonify(job.as_dict())


def reindex_folders(configured: str | Iterable[str] | None, store: Store) -> list[str]:
    """The operator's folders when configured, else the smallest set of folders holding
    every catalog file (re-indexing one is what ``lookalike index`` on it would do)."""
    if isinstance(configured, str):
        configured = configured.split(os.pathsep)
    if configured:
        return [str(Path(p)) for p in configured if str(p)]
    with store.sessions() as session:
        folders = {os.path.dirname(p) for p in session.scalars(select(ImageRecord.path))}
    return outermost(folders)


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


def run_job(job: Job, store: Store, encoder: TorchEncoder, lock: WriterLock) -> None:
    """The job thread: index each folder in turn, then release the writer lock."""
    status, error = "failed", "interrupted"
    try:
        import torch

        torch.set_flush_denormal(True)  # a per-thread CPU flag; see Backend._prepare_thread
        for folder in job.folders:
            job.results.append(index_one(store, folder, encoder))
        status, error = "done", None
    except Exception as exc:  # a job must report, not vanish with its thread
        log.exception("re-index job %s failed", job.id)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        lock.release()  # before the status says so: whoever polls may write at once
        job.error, job.finished_at = error, time.time()
        job.status = status
        job.done.set()


def index_one(store: Store, folder: str, encoder: TorchEncoder) -> dict[str, Any]:
    """``lookalike index FOLDER`` for one folder; a missing folder is skipped, not emptied.

    A folder that is not there (an unmounted disk, say) keeps its catalog
    rows: ``index_folder`` would otherwise drop every one of them. Decoding
    stays in this thread (``workers=0``): forking decode processes out of a
    threaded server risks copying locks held by other threads.
    """
    from indexer.job import index_folder

    if not Path(folder).is_dir():
        return {"folder": folder, "status": "skipped",
                "reason": "not a folder (removed or unmounted?); its images were kept"}
    summary = index_folder(store, folder, encoder, workers=0, progress=False).as_dict()
    summary["failures"] = summary["failures"][:KEEP_FAILURES]
    return {"folder": folder, "status": "done", **summary}
