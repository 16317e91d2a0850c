"""Data-changing endpoints for the operator: re-index, delete an image, exclusions. Off by default.

Everything else the app serves only reads. These write, so they answer
403 until the operator sets ``LOOKALIKE_ADMIN_TOKEN``, and then only to
requests carrying ``Authorization: Bearer <token>`` (a header browsers
never add on their own, so no cross-site form can use them).

No part of a request names a file or folder: a re-index covers the
folders the operator configured (``LOOKALIKE_INDEX_FOLDERS``) or, when
none are, the folders indexed into the data dir; a delete names a
catalog id, drops its row and vector, and leaves the file on disk alone,
but records an exclusion so that re-indexing does not bring it back.
Both take the data dir's writer lock (``search.lock``), the same one
``lookalike index`` takes, so they never interleave with another writer:
a busy data dir is a 409.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from flask import Blueprint, Flask, current_app, request

from indexer.encoding import TorchEncoder
from indexer.job import reindex_all, reindex_folders
from search.catalog import ID_MAX
from search.exclusions import lift_exclusion, list_exclusions, remove_image
from search.files import DiskFullError, ReadOnlyError
from search.lock import DataDirBusy, WriterLock
from search.store import Store

from .answers import Deleted, ExclusionAnswer, Exclusions, JobAnswer, answer
from .api import ID
from .apispec import ADMIN_SECURITY, operation
from .backend import Backend, NotReady, current_backend
from .errors import ApiError
from .schemas import ADMIN_ERRORS, BUSY, NOT_FOUND, NOT_READY, PATH_ID, DeleteImageParams, writing
from .security import admin_refusal

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/api/admin")

EXTENSION = "lookalike_admin_jobs"
KEEP_JOBS = 50  # finished jobs remembered for GET /api/admin/jobs/<id>
ADMIN_TAG = "admin"


def admin_operation(*args: Any, **declared: Any) -> Callable:
    """``operation`` for an admin view: tagged, and documented as needing the token."""
    return operation(*args, tags=(ADMIN_TAG,), security=ADMIN_SECURITY, **declared)


# -- who may call them -------------------------------------------------------------------------

@bp.before_request
def _authorize():
    """403 while disabled, 401 without the right bearer token; None lets the view run."""
    return admin_refusal()


def writer_lock(backend: Backend, doing: str) -> WriterLock:
    """The data dir's writer lock, taken now, or 409 when another writer has it."""
    try:
        return WriterLock(backend.data_dir, doing, backend.settings.database_url).acquire()
    except DataDirBusy as exc:
        raise ApiError(409, "busy", str(exc)) from None
    except (DiskFullError, ReadOnlyError):
        raise  # web.errors answers them
    except OSError as exc:  # no locks on this filesystem (ENOLCK), say
        raise NotReady(f"cannot take the writer lock of {backend.data_dir}: "
                       f"{exc.strerror or exc}") from None


# -- DELETE /api/admin/images/<id> ---------------------------------------------------------------

@bp.delete(f"/images/{ID}")
@admin_operation(DeleteImageParams, path=PATH_ID, answers=writing({
    200: (Deleted, "Removed."), 400: "exclude is not true or false.", **ADMIN_ERRORS,
    404: NOT_FOUND, 409: BUSY}))
def delete_image(image_id: int, params: DeleteImageParams):
    """Forget one image: its catalog row, its vector, its cached thumbnail; not its file.

    Unless ``exclude=false``, later re-indexing skips the file, and new files
    with the same content, until the exclusion is lifted.
    """
    exclude = params.exclude
    backend = current_backend()
    lock = writer_lock(backend, "deleting an image from")
    try:
        removal = remove_image(backend.store, image_id, exclude)
    finally:
        lock.release()
    return answer(Deleted(id=removal.id, path=removal.path, deleted=True, file_deleted=False,
                          excluded=removal.exclusion_id is not None,
                          exclusion_id=removal.exclusion_id))


# -- GET /api/admin/exclusions and DELETE /api/admin/exclusions/<id> ---------------------------

@bp.get("/exclusions")
@admin_operation(answers={200: (Exclusions, "The exclusions."), **ADMIN_ERRORS})
def exclusions():
    """The images re-indexing skips, newest first."""
    return answer(Exclusions(
        exclusions=[e.as_dict() for e in list_exclusions(current_backend().store)]))


@bp.delete(f"/exclusions/<int(max={ID_MAX}):exclusion_id>")
@admin_operation(answers=writing({
    200: (ExclusionAnswer, "Lifted."), **ADMIN_ERRORS, 404: "No exclusion with that id.",
    409: BUSY}))
def lift(exclusion_id: int):
    """Let re-indexing add the file (and its content) again; the next run picks it up."""
    backend = current_backend()
    lock = writer_lock(backend, "lifting an exclusion in")
    try:
        lifted = lift_exclusion(backend.store, exclusion_id)
    finally:
        lock.release()
    return answer(ExclusionAnswer(**lifted.as_dict(), lifted=True))


# -- POST /api/admin/reindex and GET /api/admin/jobs/<id> --------------------------------------

@dataclass
class ReindexJob:
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
        self._jobs: OrderedDict[str, ReindexJob] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, folders: list[str]) -> ReindexJob:
        job = ReindexJob(secrets.token_hex(8), folders)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> ReindexJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[ReindexJob]:
        with self._lock:
            return list(self._jobs.values())


@bp.record_once
def _add_jobs(state) -> None:
    state.app.extensions[EXTENSION] = Jobs()


def app_jobs(app: Flask | None = None) -> Jobs:
    return (app or current_app).extensions[EXTENSION]


@bp.post("/reindex")
@admin_operation(answers=writing({
    202: (JobAnswer, "Started; poll status_url (also the Location header)."), **ADMIN_ERRORS,
    409: "busy: another writer holds the data dir's lock; nothing_to_index: no folders are "
         "configured and the catalog is empty.", 503: NOT_READY}))
def reindex():
    """Start re-indexing the configured (or the catalog's) folders; 202 with the job.

    The request body, if any, is ignored: no folder can be named here.
    """
    backend = current_backend()
    encoder = backend.indexing_encoder()  # 503 without a model; the job encodes with it
    folders = reindex_folders(backend.settings.index_folders, backend.store)
    if not folders:
        raise ApiError(409, "nothing_to_index", "no LOOKALIKE_INDEX_FOLDERS are configured "
                       "and the catalog is empty: there is nothing to re-index")
    lock = writer_lock(backend, "re-indexing (web admin)")
    job = app_jobs().add(folders)
    try:
        threading.Thread(target=run_job, args=(job, backend.store, encoder, lock),
                         name=f"reindex-{job.id}", daemon=True).start()
    except BaseException:
        lock.release()
        raise
    started = JobAnswer(**job.as_dict())
    response, status = answer(started, 202)
    response.headers["Location"] = started.status_url
    return response, status


@bp.get("/jobs/<job_id>")
@admin_operation(answers={
    200: (JobAnswer, "The job so far."), **ADMIN_ERRORS,
    404: "No such job (kept in memory only)."})
def job_status(job_id: str):
    """What a re-index job did so far: per folder, the indexer's summary."""
    job = app_jobs().get(job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job (only the last "
                       f"{KEEP_JOBS} are kept, and none survive a restart)")
    return answer(JobAnswer(**job.as_dict()))


def run_job(job: ReindexJob, store: Store, encoder: TorchEncoder, lock: WriterLock) -> None:
    """The job thread: index each folder in turn, then release the writer lock."""
    status, error = "failed", "interrupted"
    try:
        torch.set_flush_denormal(True)  # a per-thread CPU flag; see Backend._prepare_thread
        reindex_all(store, job.folders, encoder, workers=0, done=job.results.append)
        status, error = "done", None
    except Exception as exc:  # a job must report, not vanish with its thread
        log.exception("re-index job %s failed", job.id)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        lock.release()  # before the status says so: whoever polls may write at once
        job.error, job.finished_at = error, time.time()
        job.status = status
        job.done.set()
