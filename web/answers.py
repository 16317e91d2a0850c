"""The JSON bodies the API answers with, as they appear in ``/api/openapi.json``.

They document the views' ``jsonify`` answers; they are not run on each
response (``web.apispec``), and ``tests/web/test_schema.py`` checks every answer
against them. A field with a default is one an answer may leave out; it is
never null unless its type says so.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from indexer.compression import DTYPES


def _absent_is_not_null(schema: dict[str, Any]) -> None:
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class Answer(BaseModel):
    # protected_namespaces: fields named model_* (model_id, model_kind) are ours, not pydantic's
    model_config = ConfigDict(json_schema_extra=_absent_is_not_null, protected_namespaces=())


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


# -- search ------------------------------------------------------------------------------------

class ImageLinks(Answer):
    thumbnail_url: UriReference = None
    reconstruction_url: UriReference = None
    original_url: UriReference = None
    similar_url: UriReference = None


class Copy(ImageLinks):
    id: int
    name: str = Field(description="File name, for display.")
    path: str = Field(description="Full path on the server.")
    similarity: float = Field(description="Cosine similarity of the codes; higher is closer.")
    reconstruction_error: float = None


class Hit(Copy):
    copies: list[Copy] = Field(None, description="With collapse=true: this hit's "
                                                 "near-duplicates, folded under it.")


class Image(ImageLinks):
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


class UploadQuery(Answer):
    width: int = None
    height: int = None
    format: str = None
    denoised: bool = Field(None, description="Searched with the reconstruction.")
    reconstruction: DataUrl = None
    reconstruction_error: float = Field(None, description="MSE with pixels in [0, 1].")
    anomalous: Anomalous = None
    anomaly_threshold: AnomalyThreshold = None
    box: list[int] | None = Field(None, description="The region searched (left, top, right, "
                                                    "bottom), clipped to the image.")


class SimilarQuery(Image):
    anomalous: Anomalous = None
    anomaly_threshold: AnomalyThreshold = None


class SearchResponse(Answer):
    query: UploadQuery
    k: int
    results: list[Hit]


class SimilarResponse(Answer):
    query: SimilarQuery
    k: int
    results: list[Hit]


class Stats(Answer):
    data_dir: str = None
    images: int = None
    excluded: int = None
    model: str | None = None
    model_kind: str | None = None
    encoded_with_model: int = None
    latent_dim: int | None = None
    index_type: str | None = None
    index_vectors: int = None
    copy_dim: int | None = Field(None, description="The code's first numbers, its copy "
                                 "part: what duplicate grouping reads.")
    recipe: str | None = Field(None, description="How the model was trained.")
    copies: dict[str, Any] | None = Field(None, description="The model's copy calibration: "
                                          "threshold, separable, and what it measured.")
    index_model: str | None = Field(None, description="The checkpoint whose codes the index "
                                    "holds, which searches use.")
    model_waiting_for_reencode: bool = Field(None, description="A newer model waits for "
                                             "`lookalike reindex` to re-encode the images.")
    index_choice: Literal["auto", "flat", "ivf", "ivfpq"] = None
    catalog_database: str = Field(None, description="sqlite, or the server's: postgresql")
    metric: str | None = None
    generation: int = None
    ready: bool = None
    message: str | None = None
    model_sha256: str | None = None


class Health(Answer):
    status: Literal["ok"]
    ready: bool
    message: str | None = None


# -- the model as a tool ---------------------------------------------------------------------

class ImageRef(ImageLinks):
    id: int
    name: str


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


class Outlier(ImageLinks):
    id: int
    name: str
    path: str = None
    reconstruction_error: float
    anomalous: bool | None = Field(None, description="Above the model's own threshold.")


class AnomaliesResponse(Answer):
    threshold: float | None = Field(None, description="The one applied.")
    model_threshold: float | None = None
    top: int | None = None
    total: int = Field(description="Images passing the threshold (all, without one).")
    anomalies: list[Outlier]


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
    results: list[Hit]


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


class DuplicateImage(ImageLinks):
    id: int
    name: str
    path: str
    width: int
    height: int
    bytes: int = Field(description="File size.")
    largest: bool = Field(description="Most pixels of the group (then the largest file).")
    kept: bool = Field(description="The one a reviewer kept (always the first image): the "
                                   "group's other images are the copies to delete.")
    similarity_to_first: float = Field(description="Cosine similarity of the codes to the "
                                                   "group's first image.")


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
    failed: int = None
    excluded: int = Field(None, description="New files skipped: deleted by an admin (path or "
                                            "content).")
    encoded: int = None
    seconds: float = None
    images_per_second: float = None
    failures: list[Failure] = Field(None, description="The first 100 unreadable files.")


class Job(Answer):
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


class Exclusion(Answer):
    id: int
    path: str
    sha256: str = Field(description="New files with this content are skipped too.")
    excluded_at: DateTime | None = None
    lifted: Literal[True] = None


class Exclusions(Answer):
    exclusions: list[Exclusion]
