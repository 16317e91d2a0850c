"""``/api/library`` and ``/api/folders``: the collection itself, to look through without a
query (``search.library``), and the filters search shares with it."""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from flask import Blueprint

from search.library import Filters, folders, list_images

from .answers import FoldersResponse, Image, LibraryResponse, answer
from .apispec import operation
from .backend import current_backend
from .schemas import LibraryParams

bp = Blueprint("library", __name__)


def filters_of(params: Any) -> Filters:
    """A request's folder and date range (whole days, UTC, both ends included)."""
    last = params.date_to
    return Filters(folder=params.folder,
                   date_from=_midnight(params.date_from),
                   date_to=_midnight(last + timedelta(days=1))
                   if last is not None and last < date.max else None)


def _midnight(day: date | None) -> float | None:
    return None if day is None else datetime.combine(day, time(), timezone.utc).timestamp()


@bp.get("/api/library")
@operation(LibraryParams, answers={
    200: (LibraryResponse, "One page of images."), 400: "Bad parameter."})
def library(params: LibraryParams):
    """The indexed images a page at a time: sorted, and filtered by folder and file date."""
    found = list_images(current_backend().store, filters_of(params), params.sort,
                        params.order == "desc", (params.page - 1) * params.per_page,
                        params.per_page)
    return answer(LibraryResponse(
        sort=params.sort, order=params.order, page=params.page, per_page=params.per_page,
        pages=math.ceil(found.total / params.per_page), total=found.total,
        images=[Image.of(r) for r in found.rows]))


@bp.get("/api/folders")
@operation(answers={200: (FoldersResponse, "Every folder with indexed images.")})
def folder_list():
    """The folders that hold indexed images, by path, with how many each holds itself."""
    return answer(FoldersResponse(folders=[{"path": path, "images": count}
                                           for path, count in folders(current_backend().store)]))
