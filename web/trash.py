"""``/api/trash``: copies moved aside on their own disk, restorable until emptied
(``search.trash``), and the thumbnails the Trash view shows of them.

Reading the trash is like reading the library. Moving files is not: a
trash, a restore and an empty need the admin token (``web.security``) and
must come from this library's own page or a script, and take the data
dir's writer lock as ``lookalike trash`` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from flask import Blueprint, Response, request, send_file

from search.catalog import TrashRecord
from search.regular_files import open_regular
from search.store import NotFound, Store
from search.trash import TrashError, empty_trash, list_trash, restore_images, trash_images

from .admin import writer_lock
from .answers import (Emptied, MovedToTrash, RestoredAnswer, RestoredImage, TrashList, answer,
                      trashed_answers)
from .api import ID
from .apispec import ADMIN_SECURITY, operation
from .backend import current_backend
from .errors import ApiError
from .schemas import (ADMIN_ERRORS, CANNOT_MOVE, CROSS_SITE, NOT_JSON, PATH_ID, EmptyTrashJson,
                      EmptyTrashParams, TrashJson, writing)
from .security import admin_refusal, refuse_cross_site
from .thumbnails import OriginalUnavailable, cached_thumbnail, make_thumbnail

bp = Blueprint("trash", __name__, url_prefix="/api/trash")

MOVES = {**ADMIN_ERRORS, 403: f"{ADMIN_ERRORS[403]} Or: {CROSS_SITE}", 409: CANNOT_MOVE}


@bp.before_request
def _admins_only_move_files():
    """Reads for whoever may read the library; moves for the admin, from this site only."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    refuse_cross_site("files are moved")
    return admin_refusal()


def moving(doing: str, move: Callable[[Store], Any]) -> Any:
    """Run *move* under the writer lock; its result, or the answer to what stopped it.

    ``search.trash`` checks every file before it moves one, so a refusal
    is never a half-done move.
    """
    backend = current_backend()
    lock = writer_lock(backend, doing)
    try:
        return move(backend.store)
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except TrashError as exc:
        raise ApiError(409, "cannot_move", str(exc)) from exc
    finally:
        lock.release()


@bp.get("")
@operation(answers={200: (TrashList, "What the trash holds.")})
def listing():
    """The images in the trash, most recently trashed first."""
    return answer(TrashList(trash=trashed_answers(list_trash(current_backend().store))))


@bp.post("")
@operation(body=TrashJson, security=ADMIN_SECURITY, answers=writing({
    200: (MovedToTrash, "Moved; they are out of the index."), 400: "Bad ids.",
    404: "An image is not in the catalog.", 415: NOT_JSON, **MOVES}))
def trash(body: TrashJson | None):
    """Move images' files to the trash, on their own filesystem; nothing is deleted.

    They leave the index at once. Every file is checked before any moves.
    """
    ids = json_body(body).images
    return moving("moving files to the trash of", lambda store: answer(MovedToTrash(
        trashed=trashed_answers(trash_images(store, ids)))))


@bp.post("/restore")
@operation(body=TrashJson, security=ADMIN_SECURITY, answers=writing({
    200: (RestoredAnswer, "Back where they were, under the same ids."), 400: "Bad ids.",
    404: "An id is not in the trash.", 415: NOT_JSON, **MOVES}))
def restore(body: TrashJson | None):
    """Move images back from the trash, with their ids, codes and decisions."""
    ids = json_body(body).images
    return moving("restoring files from the trash of", lambda store: answer(RestoredAnswer(
        restored=[RestoredImage(id=r.id, path=r.path, reencode=r.reencode)
                  for r in restore_images(store, ids)])))


def json_body(body: TrashJson | None) -> TrashJson:
    if body is None:
        raise ApiError(415, "unsupported_media_type", "send the ids as application/json: "
                       '{"images": [...]}')
    return body


@bp.post("/empty")
@operation(EmptyTrashParams, body=EmptyTrashJson, body_required=False, security=ADMIN_SECURITY,
           answers=writing({200: (Emptied, "Deleted for good."), 400: "Bad parameter.",
                            **MOVES}))
def empty(params: EmptyTrashParams, body: EmptyTrashJson | None):
    """Delete the trashed files for good: the one thing here that deletes a file.

    ``older_than_days`` may come in the query or in a JSON body.
    """
    given = body is not None and "older_than_days" in body.model_fields_set
    days = body.older_than_days if given else params.older_than_days
    return moving("emptying the trash of", lambda store: answer(Emptied(
        deleted=trashed_answers(empty_trash(store, days)))))


@bp.get(f"/{ID}/thumbnail")
@operation(path=PATH_ID, answers={200: ("image/jpeg", "Thumbnail."),
                                  404: "Not in the trash, or its file is gone."})
def thumbnail(image_id: int):
    """A trashed image's thumbnail: the cached one, else made from the file in the trash."""
    store = current_backend().store
    with store.sessions() as session:
        record = session.get(TrashRecord, image_id)
    if record is None:
        raise ApiError(404, "not_found", f"no image with id {image_id} in the trash")
    result: Path | bytes | None = cached_thumbnail(store, record.sha256)
    if result is None:
        try:
            with open_regular(record.trash_path) as f:
                result = make_thumbnail(f, record.sha256, store)
        except (OSError, OriginalUnavailable) as exc:
            raise ApiError(404, "not_found", f"the file of image {image_id} is gone from "
                           "the trash") from exc
    if isinstance(result, bytes):
        return Response(result, mimetype="image/jpeg", headers={"Cache-Control": "no-cache"})
    return send_file(result, mimetype="image/jpeg", etag=record.sha256, conditional=True)
