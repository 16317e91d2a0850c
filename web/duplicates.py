"""``/api/duplicates``: the library's near-duplicate groups a page at a time, and the
reviewer's decisions on them (``search.duplicates``, ``search.decisions``).

Grouping a large library costs a range search over every code (about a
minute for 100k images on two cores), so the candidates and their cut are
kept between requests until the catalog changes; a decision only re-cuts. Each page
reads its images' paths and sizes afresh, so a moved file shows where it is.

Decisions change no file and can be undone, so they need no admin token;
they are still writes, so they take JSON only (a cross-site form cannot send
it without the browser asking first) and refuse a request another site's
page made.
"""
from __future__ import annotations

import io
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Callable

from flask import Blueprint, Flask, Response, current_app

from search.catalog import ID_MAX
from search.decisions import (BadDecision, UnknownImages, list_decisions, record_decision,
                              undo_decision)
from search.duplicates import (Group, TooManyPairs, find_candidates, group_candidates,
                               model_threshold, with_status, write_csv)
from search.keep_rules import BadRule, Keep, KeepRule, apply_keeps, plan_keeps
from search.store import Store
from search.vector_index import omp_threads

from .answers import (Decided, DuplicateGroup, DuplicatesResponse, KeepPreview, Undone, answer,
                      image_urls, keep_preview)
from .apispec import operation
from .backend import current_backend
from .errors import ApiError
from .schemas import (CROSS_SITE, NOT_JSON, NOT_READY, DecisionJson, DuplicatesCsvParams,
                      DuplicatesParams, GroupsParams, KeepParams, writing)
from .security import refuse_cross_site

bp = Blueprint("duplicates", __name__, url_prefix="/api/duplicates")

EXTENSION = "lookalike_duplicates"
KEEP_CANDIDATES = 2  # neighbour graphs kept (catalog version, model, threshold): up to ~300 MB each
KEEP_CUTS = 8  # their cuts (decisions, min_size)


class GroupCache:
    """The last few candidate sets and their cuts. Each is computed once, by the first
    request that needs it, while requests for others (or for cached ones) go on: turning
    pages costs nothing, a decision only a new cut. A threshold refused as too low is
    remembered too, so asking again costs nothing either."""

    def __init__(self) -> None:
        self._candidates: OrderedDict[tuple, Any] = OrderedDict()
        self._groups: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts, never held while computing
        self._making: dict[tuple, threading.Lock] = {}

    def groups(self, store: Store, checkpoint_sha256: str, threshold: float,
               min_size: int) -> list[Group]:
        decisions = list_decisions(store)
        found = (store.catalog_version(), checkpoint_sha256, threshold)
        cut = (found, tuple(d.id for d in decisions), min_size)  # ids are never reused
        candidates = self._get(self._candidates, KEEP_CANDIDATES, found, lambda: every_core(
            lambda: find_candidates(store, checkpoint_sha256, threshold)))
        return self._get(self._groups, KEEP_CUTS, cut,
                         lambda: group_candidates(candidates, decisions, min_size))

    def _get(self, kept: OrderedDict, most: int, key: tuple, make: Callable[[], Any]) -> Any:
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:  # only requests for this same key wait
            with self._lock:
                value = kept.get(key)
            if value is None:
                try:
                    value = make()
                except TooManyPairs as exc:
                    value = exc
                with self._lock:
                    kept[key] = value
                    while len(kept) > most:
                        self._making.pop(kept.popitem(last=False)[0], None)
            with self._lock:
                if key in kept:
                    kept.move_to_end(key)
        if isinstance(value, TooManyPairs):
            raise TooManyPairs(str(value))
        return value


def every_core(make: Callable[[], Any]) -> Any:
    """Run *make* with FAISS on every core: the range search runs once a catalog change and
    takes minutes on the one thread a request gets. OpenMP team sizes are per thread, so
    only this request's thread is changed, and only while it runs."""
    with omp_threads(os.cpu_count() or 1):
        return make()


def group_cache(app: Flask) -> GroupCache:
    return app.extensions.setdefault(EXTENSION, GroupCache())


@bp.before_request
def _same_site_writes():
    refuse_cross_site("decisions are taken")


@bp.get("")
@operation(DuplicatesParams, answers={
    200: (DuplicatesResponse, "One page of groups, largest first."),
    400: "Bad parameter, or a threshold so low that nearly every pair is a candidate.",
    503: NOT_READY})
def duplicates(params: DuplicatesParams):
    """Groups of near-duplicates: edits, re-saves, resized copies, bursts.

    Every pair of a group is within the threshold (complete linkage); identical files
    always share a group. Groups a decision settles are ``reviewed``; the others
    ``pending``.
    """
    found = current_groups(params)
    chosen = with_status(found.every, params.status)
    if params.image is not None:
        chosen = [g for g in chosen if any(m.id == params.image for m in g.members)]
    start = (params.page - 1) * params.per_page
    page = chosen[start:start + params.per_page]
    reviewed = len(with_status(found.every, "reviewed"))
    return answer(DuplicatesResponse(
        threshold=found.threshold, model_threshold=found.model_threshold,
        model_separates_copies=found.separates_copies,
        status=params.status, page=params.page, per_page=params.per_page,
        pages=math.ceil(len(chosen) / params.per_page), total=len(chosen),
        counts={"pending": len(found.every) - reviewed, "reviewed": reviewed},
        groups=_groups_as_shown(found.store, page)))


@dataclass(frozen=True)
class Found:
    """The groups asked for, with what they were made by."""

    store: Store
    every: list[Group]
    threshold: float
    model_threshold: float
    separates_copies: bool


def current_groups(params: GroupsParams) -> Found:
    """Every group at the asked (else the model's) threshold; cached (GroupCache)."""
    serving, _index = current_backend().ready()
    engine = serving.engine
    store, encoder = engine.store, engine.encoder
    own = model_threshold(encoder.copy_threshold, encoder.separates_copies)
    threshold = params.threshold if params.threshold is not None else own
    try:
        every = group_cache(current_app).groups(store, encoder.sha256, threshold,
                                                params.min_size)
    except TooManyPairs as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from exc
    return Found(store, every, threshold, own, encoder.separates_copies)


@bp.get("/csv")
@operation(DuplicatesCsvParams, answers={
    200: ("text/csv", "A row per image: group, image, path, bytes, width, height, pixels, "
                      "similarity_to_first, decision (keep, copy, not_duplicates or empty)."),
    400: "Bad parameter.", 503: NOT_READY})
def as_csv(params: DuplicatesCsvParams):
    """Every group with this status as a CSV file, largest first."""
    found = current_groups(params)
    out = io.StringIO()
    write_csv(with_status(found.every, params.status), out)
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="duplicates-{params.status}.csv"'})


def _keep_plans(params: KeepParams) -> tuple[Found, KeepRule, list[Keep]]:
    try:
        rule = KeepRule.parse(params.rule)
    except BadRule as exc:
        raise ApiError(400, "bad_parameter", f"rule: {exc}") from exc
    found = current_groups(params)
    return found, rule, plan_keeps(found.store, with_status(found.every, "pending"), rule)


@bp.get("/keep")
@operation(KeepParams, answers={
    200: (KeepPreview, "What the rule would keep in each pending group; nothing is done."),
    400: "Bad rule or parameter.", 503: NOT_READY})
def keep_preview_view(params: KeepParams):
    """Preview a rule for the copy to keep (most pixels, largest file, oldest, a format,
    a folder) over every pending group."""
    found, rule, plans = _keep_plans(params)
    return answer(keep_preview(rule.text, found.threshold, plans))


@bp.post("/keep")
@operation(KeepParams, answers=writing({
    200: (KeepPreview, "Recorded, a keep decision a group; no file is touched (POST "
                       "/api/trash moves the others)."),
    400: "Bad rule or parameter.", 403: CROSS_SITE, 503: NOT_READY}))
def keep_apply(params: KeepParams):
    """Apply a rule: record, for every pending group, the decision to keep the copy it
    picks, as "Keep this one" does."""
    found, rule, plans = _keep_plans(params)
    decisions = [d.id for d in apply_keeps(found.store, plans)]
    return answer(keep_preview(rule.text, found.threshold, plans, decisions))


def _groups_as_shown(store: Store, groups: list[Group]) -> list[DuplicateGroup]:
    """The groups as the page draws them, with each file's path and size as they are now."""
    now = store.file_facts([m.id for g in groups for m in g.members])
    out = []
    for group in groups:
        found = group.as_dict()
        for image in found["images"]:
            if image["id"] in now:
                image["path"], image["bytes"] = now[image["id"]]
            image["name"] = PurePath(image["path"]).name
            image.update(image_urls(image["id"]))
        out.append(DuplicateGroup(**found))
    return out


@bp.post("/decisions")
@operation(body=DecisionJson, answers=writing({
    201: (Decided, "Recorded; later runs honour it."), 400: "Bad decision.",
    403: CROSS_SITE, 404: "An image is not in the catalog.", 415: NOT_JSON}))
def decide(body: DecisionJson | None):
    """Record a decision on a group: ``not_duplicates`` or ``keep`` one of its images.

    Decisions name the images' contents (sha256): they hold when files move,
    are re-indexed or re-encoded by a new model. No file is changed or deleted.
    """
    if body is None:
        raise ApiError(415, "unsupported_media_type", "send the decision as application/json")
    asked = body.root
    try:
        decision = record_decision(current_backend().store, asked.kind, asked.images,
                                   getattr(asked, "keep", None))
    except BadDecision as exc:
        raise ApiError(400, "bad_parameter", str(exc)) from exc
    except UnknownImages as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return answer(Decided(decision=decision.as_dict()), 201)


@bp.delete(f"/decisions/<int(max={ID_MAX}):decision_id>")
@operation(path={"decision_id": "A decision's id."}, answers=writing({
    200: (Undone, "Forgotten: its groups are pending again."), 403: CROSS_SITE,
    404: "No decision with that id."}))
def undo(decision_id: int):
    """Undo a decision."""
    if not undo_decision(current_backend().store, decision_id):
        raise ApiError(404, "not_found", f"no decision with id {decision_id}")
    return answer(Undone(id=decision_id, undone=True))
