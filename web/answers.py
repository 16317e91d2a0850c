"""The JSON bodies the API answers with: each is built here, checked, and documented.

A view answers with :func:`answer` of one of these models, so every JSON
body is validated when it is made (strictly: no text for a number, no
number for a flag, no field the model does not name) and its keys come in
the order the fields are declared: what the pages' scripts read cannot
drift from what the document says. The same models are the document's (``/api/openapi.json``). A
field with a default is one an answer may leave out (it is left out when
the view does not set it); it is never null unless its type says so.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import PurePath
from typing import Annotated, Any, Literal

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, RootModel

from indexer.compression import DTYPES
from search.catalog import ImageRecord, utc_text
from search.duplicates import Member
from search.engine import Hit
from search.keep_rules import Keep
from search.trash import Trashed


def _document_as_sent(schema: dict[str, Any]) -> None:
    schema.pop("additionalProperties", None)  # enforced here; clients should still allow more
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class Answer(BaseModel):
    # protected_namespaces: fields named model_* (model_id, model_kind) are ours, not pydantic's
    model_config = ConfigDict(json_schema_extra=_document_as_sent, protected_namespaces=(),
                              strict=True, extra="forbid")


def answer(body: BaseModel, status: int = 200) -> tuple[Response, int]:
    """The JSON response of *body*: the fields it was given, in the model's order."""
    return jsonify(body.model_dump(by_alias=True, exclude_unset=True)), status


def image_urls(image_id: int) -> dict[str, str]:
    """Links for one image; built by hand rather than url_for, since a page of
    results needs forty of them and url_for costs ~20 µs each. Every URL is built
    from the id, never from a path, so a client can never name a file."""
    root = request.script_root
    return {
        "thumbnail_url": f"{root}/images/{image_id}/thumbnail",
        "reconstruction_url": f"{root}/images/{image_id}/reconstruction",
        "original_url": f"{root}/images/{image_id}/original",
        "preview_url": f"{root}/images/{image_id}/preview",
        "similar_url": f"{root}/api/images/{image_id}/similar",
    }


def _iso(seconds: float | None) -> str | None:
    """A file time as ISO 8601; None for one no calendar holds (a corrupt mtime, say)."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


UriReference = Annotated[str, Field(json_schema_extra={"format": "uri-reference"})]
DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
DataUrl = Annotated[str, Field(description="data:image/png;base64,... URL.")]
Note = Annotated[str | None, Field(
    description="Set when the model is not the kind the feature is made for.")]
Anomalous = Annotated[bool | None, Field(
    description="reconstruction_error > anomaly_threshold: unlike the collection the model "
                "was trained on; null when the model has no threshold.")]
AnomalyThreshold = Annotated[float | None, Field(
    description="The model's held-out percentile of reconstruction error.")]


class OpenApiDocument(RootModel[dict[str, Any]]):
    """OpenAPI 3.1"""


# -- errors ------------------------------------------------------------------------------------

ERROR_CODES = ("bad_request", "bad_parameter", "bad_image", "not_found", "method_not_allowed",
               "too_large", "unsupported_media_type", "not_ready", "internal_error", "bad_code",
               "unauthorized", "admin_disabled", "busy", "nothing_to_index", "cross_site",
               "disk_full", "read_only", "bad_host", "http_error", "cannot_move")


class ErrorDetail(Answer):
    code: Literal[ERROR_CODES]  # type: ignore[valid-type]
    message: str = Field(description="For people; may change.")


class Error(Answer):
    """Every error of the API, whatever its status."""

    error: ErrorDetail


# -- search ------------------------------------------------------------------------------------

class ImageLinks(Answer):
    """An image's links. Put first among a model's bases they end its JSON: pydantic lays
    out the fields of the last base first."""

    thumbnail_url: UriReference = None
    reconstruction_url: UriReference = None
    original_url: UriReference = None
    preview_url: UriReference = Field(None, description="Full size as a browser shows it: the "
                                      "original, or a JPEG rendering of HEIC, TIFF and RAW.")
    similar_url: UriReference = None


class Found(Answer):
    id: int
    name: str = Field(description="File name, for display.")
    path: str = Field(description="Full path on the server.")
    similarity: float = Field(description="Cosine similarity of the codes; higher is closer.")
    reconstruction_error: float = None


class Copy(ImageLinks, Found):
    @classmethod
    def of(cls, hit: Hit, **more: Any) -> Copy:
        """One search result: enough to draw a card and to follow it."""
        return cls(id=hit.id, name=PurePath(hit.path).name, path=hit.path,
                   similarity=round(hit.score, 6), reconstruction_error=hit.reconstruction_error,
                   **image_urls(hit.id), **more)


class HitAnswer(Copy):
    copies: list[Copy] = Field(None, description="With collapse=true: this hit's "
                                                 "near-duplicates, folded under it.")

    @classmethod
    def folded(cls, hit: Hit, copies: list[Hit]) -> HitAnswer:
        """A result with the near-duplicates ``collapse=true`` folded under it."""
        return cls.of(hit, copies=[Copy.of(c) for c in copies])


class ImageRow(Answer):
    id: int
    name: str
    path: str
    sha256: str
    size: int = Field(None, description="Bytes.")
    mtime: float = Field(None, description="Seconds since the epoch.")
    width: int = None
    height: int = None
    format: str | None = None
    model_id: int = None
    reconstruction_error: float = Field(
        None, description="Mean squared error of the reconstruction, pixels in [0, 1].")
    indexed_at: DateTime | None = None
    taken_at: float | None = Field(None, description="EXIF capture time, seconds since the "
                                                     "epoch (the camera's clock read as UTC).")
    file_date: DateTime | None = Field(None, description="taken_at, else mtime: what the "
                                                         "library sorts and filters by.")


class Image(ImageLinks, ImageRow):
    @classmethod
    def of(cls, row: ImageRecord, **more: Any) -> Image:
        """Everything the catalog knows about one image (the metadata endpoint)."""
        return cls(id=row.id, name=PurePath(row.path).name, path=row.path, sha256=row.sha256,
                   size=row.size, mtime=row.mtime, width=row.width, height=row.height,
                   format=row.format, model_id=row.model_id,
                   reconstruction_error=row.reconstruction_error, indexed_at=utc_text(row.indexed_at),
                   taken_at=row.taken_at,
                   file_date=_iso(row.taken_at if row.taken_at is not None else row.mtime),
                   **image_urls(row.id), **more)


class UploadQuery(Answer):
    width: int = None
    height: int = None
    format: str = None
    denoised: bool = Field(None, description="Searched with the reconstruction.")
    box: list[int] | None = Field(None, description="The region searched (left, top, right, "
                                                    "bottom), clipped to the image.")
    reconstruction: DataUrl = None
    reconstruction_error: float = Field(None, description="MSE with pixels in [0, 1].")
    anomalous: Anomalous = None
    anomaly_threshold: AnomalyThreshold = None


class SimilarQuery(Image):
    anomalous: Anomalous = None
    anomaly_threshold: AnomalyThreshold = None


class SearchResponse(Answer):
    query: UploadQuery
    k: int
    results: list[HitAnswer]


class SimilarResponse(Answer):
    query: SimilarQuery
    k: int
    results: list[HitAnswer]


class Stats(Answer):
    data_dir: str = None
    images: int = None
    excluded: int = None
    model: str | None = None
    model_kind: str | None = None
    encoded_with_model: int = None
    latent_dim: int | None = None
    copy_dim: int | None = Field(None, description="The code's first numbers, its copy "
                                 "part: what duplicate grouping reads.")
    recipe: str | None = Field(None, description="How the model was trained.")
    copies: dict[str, Any] | None = Field(None, description="The model's copy calibration: "
                                          "threshold, separable, and what it measured.")
    index_type: str | None = None
    index_vectors: int = None
    metric: str | None = None
    index_model: str | None = Field(None, description="The checkpoint whose codes the index "
                                    "holds, which searches use.")
    model_waiting_for_reencode: bool = Field(None, description="A newer model waits for "
                                             "`lookalike reindex` to re-encode the images.")
    index_choice: Literal["auto", "flat", "ivf", "ivfpq"] = None
    catalog_database: str = Field(None, description="sqlite, or the server's: postgresql")
    generation: int = None
    ready: bool = None
    message: str | None = None
    model_sha256: str | None = None


class Health(Answer):
    status: Literal["ok"]
    ready: bool
    message: str | None = None


# -- the model as a tool ---------------------------------------------------------------------

class Named(Answer):
    id: int
    name: str


class ImageRef(ImageLinks, Named):
    pass


class Psnr(Answer):
    noisy: float | None = None
    denoised: float | None = None


class DenoiseResponse(Answer):
    model_kind: str
    note: Note = None
    image_size: int = None
    width: int = None
    height: int = None
    format: str = None
    add_noise: float = None
    seed: int | None = Field(None, description="Of the added noise.")
    clean: str | None = Field(
        None, description="The upload at the model's size (when noise was added).")
    noisy: str = Field(description="What the model was given.")
    denoised: DataUrl
    psnr: Psnr | None = Field(
        None, description="dB against the clean upload, when noise was added; a null value "
                          "means identical images.")


class CodeSizes(Answer):
    code: int = None
    upload: int = None
    png: int = Field(None, description="A PNG of the image at the model's input size.")


class Ratios(Answer):
    upload: float = None
    png: float = None


class CompressResponse(Answer):
    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    model_kind: str = None
    latent_dim: int = None
    image_size: int = None
    width: int = None
    height: int = None
    format: str = None
    code_base64: str = Field(description="The code file (the CLI's .lkc format).")
    sizes: CodeSizes = Field(alias="bytes")
    ratio: Ratios
    psnr: float | None = Field(
        None, description="dB, decoded code against the resized upload; null when identical.")
    decoded: DataUrl


class Outlying(Answer):
    id: int
    name: str
    path: str = None
    reconstruction_error: float
    anomalous: bool | None = Field(None, description="Above the model's own threshold.")


class OutlierAnswer(ImageLinks, Outlying):
    pass


class AnomaliesResponse(Answer):
    threshold: float | None = Field(None, description="The one applied.")
    model_threshold: float | None = None
    top: int | None = None
    total: int = Field(description="Images passing the threshold (all, without one).")
    anomalies: list[OutlierAnswer]


class SampleResponse(Answer):
    model_kind: str = None
    note: Note = None
    n: int = None
    seed: int
    images: list[DataUrl]


class InterpolateResponse(Answer):
    model_kind: str = None
    note: Note = None
    a: ImageRef
    b: ImageRef
    steps: int = None
    images: list[DataUrl] = Field(description="From a to b, both ends included.")


class ArithmeticResponse(Answer):
    model_kind: str = None
    note: Note = None
    a: ImageRef = None
    b: ImageRef = None
    c: ImageRef = None
    result: str = Field(description="a − b + c, decoded.")
    k: int = None
    results: list[HitAnswer]


# -- library ---------------------------------------------------------------------------------

class LibraryResponse(Answer):
    sort: Literal["indexed", "date", "error", "name"]
    order: Literal["desc", "asc"]
    page: int
    per_page: int
    pages: int
    total: int = Field(description="Images passing the filters.")
    images: list[Image]


class Folder(Answer):
    path: str
    images: int = Field(description="Indexed images in it (not its subfolders).")


class FoldersResponse(Answer):
    folders: list[Folder]


# -- duplicates ------------------------------------------------------------------------------

class DecisionAnswer(Answer):
    id: int = Field(description="Undo it with DELETE /api/duplicates/decisions/{id}.")
    kind: Literal["not_duplicates", "keep"]
    keep_id: int | None = Field(None, description="The image kept (kind keep).")
    decided_at: DateTime


class Duplicate(Answer):
    id: int
    path: str
    width: int
    height: int
    bytes: int = Field(description="File size.")
    largest: bool = Field(description="Most pixels of the group (then the largest file).")
    kept: bool = Field(description="The one a reviewer kept (always the first image): the "
                                   "group's other images are the copies to delete.")
    similarity_to_first: float = Field(description="Cosine similarity of the codes to the "
                                                   "group's first image.")
    name: str


class DuplicateImage(ImageLinks, Duplicate):
    pass


class DuplicateGroup(Answer):
    id: int = Field(description="The group's smallest image id: stable while its images stay.")
    size: int
    exact: bool = Field(description="All the same bytes.")
    decision: DecisionAnswer | None = Field(description="The one that settles the group.")
    images: list[DuplicateImage] = Field(
        description="The one to keep first: the reviewer's choice, else the largest.")


class StatusCounts(Answer):
    pending: int
    reviewed: int


class DuplicatesResponse(Answer):
    threshold: float = Field(description="The one applied.")
    model_threshold: float = Field(description="The one applied without `threshold`: the "
                                   "model's copy threshold, calibrated when it was trained "
                                   "(edited views of held-out images against their nearest "
                                   "other images, past any copies they already have); 0.9999 "
                                   "(identical codes only) when it could not tell copies from "
                                   "look-alikes; 0.37 for older models.")
    model_separates_copies: bool = Field(description="Whether the model told edited copies "
                                         "from look-alikes on its own collection; when not, "
                                         "only identical images group unless `threshold` "
                                         "says otherwise.")
    status: Literal["pending", "reviewed", "all"]
    page: int
    per_page: int
    pages: int = Field(description="Pages of groups with this status.")
    total: int = Field(description="Groups with this status.")
    counts: StatusCounts
    groups: list[DuplicateGroup]


class Decided(Answer):
    decision: DecisionAnswer


class Undone(Answer):
    id: int
    undone: Literal[True]


class PlannedImage(ImageLinks, Answer):
    id: int
    name: str = Field(description="File name, for display.")
    path: str


class KeepPlanAnswer(Answer):
    group: int = Field(description="The group's id, as GET /api/duplicates lists it.")
    keep: PlannedImage
    others: list[PlannedImage] = Field(description="The copies the rule does not keep.")


class KeepPreview(Answer):
    rule: str
    threshold: float = Field(description="The one the groups were made with.")
    groups: int = Field(description="Pending groups the rule chooses in.")
    others: int = Field(description="Copies it does not keep, over all those groups.")
    plans: list[KeepPlanAnswer]
    decisions: list[int] = Field(None, description="(POST) The decisions recorded, one a "
                                 "group; undo each with DELETE /api/duplicates/decisions/{id}.")


def keep_preview(rule: str, threshold: float, plans: list[Keep],
                 decisions: list[int] | None = None) -> KeepPreview:
    """What a rule keeps in each pending group (and, once applied, the decisions made)."""
    def shown(member: Member) -> PlannedImage:
        return PlannedImage(id=member.id, name=PurePath(member.path).name, path=member.path,
                            **image_urls(member.id))

    found = []
    for plan in plans:
        members = {m.id: m for m in plan.group.members}
        found.append(KeepPlanAnswer(group=plan.group.id, keep=shown(members[plan.keep]),
                                    others=[shown(members[i]) for i in plan.others]))
    more = {} if decisions is None else {"decisions": decisions}
    return KeepPreview(rule=rule, threshold=threshold, groups=len(plans),
                       others=sum(len(p.others) for p in plans), plans=found, **more)


# -- the map ---------------------------------------------------------------------------------

Packed = Annotated[str, Field(json_schema_extra={"contentEncoding": "base64"})]


class MapAnswer(Answer):
    method: Literal["umap", "pca"] = Field(description="How codes became places: UMAP or "
                                           "PCA of the normalised codes.")
    fitting: Literal["umap"] | None = Field(None, description="A UMAP layout is being made in "
                                            "the background; until it is, the map is PCA's. "
                                            "Ask again later.")
    count: int
    ids: list[int] | Packed
    x: list[float] | Packed = Field(description="In [-1, 1]; x[i] is ids[i]'s.")
    y: list[float] | Packed
    folders: list[str] = Field(description="The folders, sorted; `folder` indexes them.")
    folder: list[int] | Packed
    date: list[float] | Packed = Field(description="File dates: capture time, else "
                                       "modification time, epoch seconds.")
    reconstruction_error: list[float] | Packed = Field(description="High: the model finds "
                                                       "the image unusual (anomalies).")


# -- the watcher -----------------------------------------------------------------------------

class WatchAnswer(Answer):
    watching: bool = Field(description="False unless the app runs with `serve --watch`; the "
                           "other fields are there only when it does.")
    state: Literal["starting", "scanning", "idle", "waiting", "failed", "stopped"] = Field(
        None, description="waiting: another writer (`lookalike index`) holds the data dir; "
                          "failed: the last pass failed (see note) and is tried again.")
    events: bool = Field(None, description="File events wake a scan sooner; without them "
                         "(a network share, no inotify watches left) only the scans run.")
    events_note: str | None = None
    interval: float = Field(None, description="Seconds between scans.")
    settle: float = Field(None, description="Seconds a file must stay unchanged first.")
    folders: list[str] = None
    passes: int = None
    last_pass_at: float | None = Field(None, description="Epoch seconds.")
    next_pass_at: float | None = Field(None, description="Epoch seconds.")
    last_changes: dict[str, int] = Field(None, description="What the last pass did: added, "
                                         "updated, moved, removed, kept, failed.")
    settling: int = Field(None, description="Files still being written, left for later.")
    note: str | None = None


# -- the trash -------------------------------------------------------------------------------

class TrashedAnswer(Answer):
    id: int = Field(description="The image's id, which a restore gives back.")
    name: str = Field(description="File name, for display.")
    path: str = Field(description="Where the file was, and where a restore puts it.")
    trash_path: str = Field(description="Where it is now: a .lookalike-trash folder on its "
                            "own filesystem.")
    sha256: str
    bytes: int
    width: int
    height: int
    trashed_at: DateTime | None
    present: bool = Field(description="False once the file was taken out of the trash by "
                          "other means: it cannot be restored.")
    thumbnail_url: UriReference


def trashed_answers(items: list[Trashed]) -> list[TrashedAnswer]:
    """Trash entries as the API shows them, each with its thumbnail's link."""
    root = request.script_root
    return [TrashedAnswer(**t.as_dict(),
                          name=PurePath(t.path).name,
                          thumbnail_url=f"{root}/api/trash/{t.id}/thumbnail") for t in items]


class TrashList(Answer):
    trash: list[TrashedAnswer] = Field(description="Most recently trashed first.")


class MovedToTrash(Answer):
    trashed: list[TrashedAnswer]


class RestoredImage(Answer):
    id: int
    path: str
    reencode: bool = Field(description="Its code is another model's than the index's: the "
                           "next re-index encodes it again, under this id.")


class RestoredAnswer(Answer):
    restored: list[RestoredImage]


class Emptied(Answer):
    deleted: list[TrashedAnswer] = Field(description="The files deleted for good.")


# -- admin -----------------------------------------------------------------------------------

class Failure(Answer):
    path: str = None
    reason: str = None


class FolderResult(Answer):
    folder: str
    status: Literal["done", "skipped"]
    reason: str = Field(None, description="Why a folder was skipped.")
    added: int = None
    updated: int = None
    moved: int = None
    removed: int = None
    unchanged: int = None
    excluded: int = Field(None, description="New files skipped: deleted by an admin (path or "
                                            "content).")
    kept: int = Field(None, description="Rows of missing files the removal guard kept.")
    settling: int = Field(None, description="Files still being written, left for a later run "
                          "(the watcher's; 0 for a re-index).")
    failed: int = None
    encoded: int = None
    seconds: float = None
    images_per_second: float = None
    failures: list[Failure] = Field(None, description="The first 100 unreadable files.")
    warnings: list[str] = None


class JobAnswer(Answer):
    id: str
    status: Literal["running", "done", "failed"]
    folders: list[str]
    started_at: float = Field(None, description="Seconds since the epoch.")
    finished_at: float | None = None
    results: list[FolderResult]
    error: str | None = None
    status_url: UriReference = None


class Deleted(Answer):
    id: int
    path: str = Field(None, description="The file, which is left on disk.")
    deleted: Literal[True]
    file_deleted: Literal[False] = None
    excluded: bool = None
    exclusion_id: int | None = Field(
        None, description="Lift it with DELETE /api/admin/exclusions/{id}.")


class ExclusionAnswer(Answer):
    id: int
    path: str
    sha256: str = Field(description="New files with this content are skipped too.")
    excluded_at: DateTime | None = None
    lifted: Literal[True] = None


class Exclusions(Answer):
    exclusions: list[ExclusionAnswer]
