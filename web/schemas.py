"""What each endpoint of the JSON API takes, and the errors it answers with.

Each view declares its parameters as one model here, and its answers, with
``@operation(params=..., body=..., answers=...)`` (``web.apispec``): the
model validates the request (``web.requests``) and makes
``/api/openapi.json``. Adding a parameter is adding a field to its model.
The JSON bodies the API answers with, errors included, are in ``web.answers``. The API's own
limits are written here once (the views and pages import them); those of
the data come from where the data is defined (catalog ids from
``search.catalog``, code dtypes from ``indexer.compression``, seeds in
``web.fields``).
"""
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel,
                      WithJsonSchema, model_validator)

from indexer.compression import DTYPES, MIN_CODES
from search.catalog import ID_MAX
from search.decisions import DECISION_KINDS
from search.duplicates import STATUSES
from search.keep_rules import RULE_HELP, RULE_PATTERN, BadRule, KeepRule
from search.library import SORTS
from search.map import METHODS, UMAP_FROM

from .fields import (SEED_MAX, Box, Day, Flag, bad_parameter, bad_request, base64_bytes, choice,
                     json_whole, number, parameter, shown, text, whole)
from .requests import Params, Upload

K_DEFAULT = 10
K_MAX = 100
MAX_NOISE = 0.5  # σ of the noise /api/denoise may add, pixels in [0, 1]
TOP_MAX = 1000  # also the most a threshold query lists; `total` says how many there are
SAMPLES_MAX = 64
STEPS_MIN, STEPS_MAX = 2, 32
ARITHMETIC_K = 5
PER_PAGE_DEFAULT, PER_PAGE_MAX = 20, 100  # duplicate groups a page
PAGE_MAX = 10**6
LIBRARY_PAGE_DEFAULT, LIBRARY_PAGE_MAX = 100, 500  # library tiles a page
GROUP_MAX = 100_000  # images one decision may name
KIND_HEADER = "X-Lookalike-Model-Kind"
NOTE_HEADER = "X-Lookalike-Note"

# Catalog ids: larger numbers are not ids, a 404 (in a path) or a 400 (in a query).
IMAGE_ID = "Catalog id of an indexed image."
PATH_ID = {"image_id": IMAGE_ID}


# -- the parameters of each endpoint -----------------------------------------------------------
# A field without a default is required; one whose default is None is absent unless sent.

K = Annotated[whole(1, K_MAX), Field(description=f"How many results, 1 to {K_MAX}.")]
Folder = Annotated[text(), Field(
    description="Only images in this folder (as GET /api/folders lists them) or its subfolders.")]
DateFrom = Annotated[Day, Field(
    description="Only images whose file date (EXIF capture time, else modification time) is on "
                "or after this day, UTC.")]
DateTo = Annotated[Day, Field(
    description="Only images whose file date is on or before this day, UTC.")]
CatalogId = Annotated[whole(0, ID_MAX), Field(description=IMAGE_ID)]
Seed = whole(0, SEED_MAX)


class SearchParams(Upload):
    k: K = K_DEFAULT
    reconstruction: Flag = Field(True, description="Include the query's reconstruction and its "
                                 "error (one extra decoder pass).")
    denoise: Flag = Field(False, description="Search with the model's reconstruction of the "
                          "query (its denoised version, for a --kind dae model); the "
                          "reconstruction shown is that image.")
    collapse: Flag = Field(False, description="Fold each near-duplicate of a better-ranked hit "
                           "under it (its `copies`), so the k results are k different images.")
    box: Box = Field(None, description="Search with this region of the image only: "
                               "x0,y0,x1,y1 in its pixels as shown (upright), any two opposite "
                               "corners; clipped to the image, and at least one pixel "
                               "(`query.box` says which region was searched). A box with no "
                               "part on the image is a 400.")
    folder: Folder = None
    date_from: DateFrom = None
    date_to: DateTo = None


class SimilarParams(Params):
    k: K = K_DEFAULT
    folder: Folder = None
    date_from: DateFrom = None
    date_to: DateTo = None


class MapParams(Params):
    method: choice("auto", *METHODS) = Field(
        "auto", description="umap: neighbourhoods kept (the default from "
        f"{UMAP_FROM} images); pca: the linear baseline; auto: the default.")
    packed: Flag = Field(False, description="Each column as base64 of a little-endian "
                         "array (ids int64, x and y float32, folder int32, date float64, "
                         "reconstruction_error float32): a tenth of the parsing for 100,000 "
                         "images.")


class LibraryParams(Params):
    sort: choice(*SORTS) = Field("indexed", description="indexed: when indexed; date: the "
                                 "file's date (EXIF capture time, else modification time); "
                                 "error: reconstruction error; name: path.")
    order: choice("desc", "asc") = Field("desc", description="desc or asc.")
    folder: Folder = None
    date_from: DateFrom = None
    date_to: DateTo = None
    page: whole(1, PAGE_MAX) = Field(1, description="Which page, from 1.")
    per_page: whole(1, LIBRARY_PAGE_MAX) = Field(
        LIBRARY_PAGE_DEFAULT, description=f"Images a page, 1 to {LIBRARY_PAGE_MAX}.")


class DenoiseParams(Upload):
    add_noise: number(0.0, MAX_NOISE) = Field(
        0.0, description="Add Gaussian noise of this σ (pixels in [0, 1]) first.")
    seed: Seed = Field(None, description="Seed of the added noise (random when absent).")
    format: choice("png", "json") = Field(
        "png", description="png: the image; json: data URLs and PSNR.")


class CompressParams(Upload):
    dtype: choice(*DTYPES) = Field("float16", description=f"How the code is stored; pq needs "
                                   f"at least {MIN_CODES} indexed images for its codebook.")


class AnomaliesParams(Params):
    top: whole(1, TOP_MAX) = Field(
        None, description=f"The N worst (at most {TOP_MAX} are listed in any case).")
    threshold: number(0.0) = Field(
        None, description="Only images with reconstruction MSE above this.")


class SampleParams(Params):
    n: whole(1, SAMPLES_MAX) = Field(8, description="How many.")
    seed: Seed = Field(None, description="Same seed, same images (random when absent).")


class InterpolateParams(Params):
    a: CatalogId
    b: CatalogId
    steps: whole(STEPS_MIN, STEPS_MAX) = Field(8, description="How many images, ends included.")


class ArithmeticParams(Params):
    a: CatalogId
    b: CatalogId
    c: CatalogId
    k: whole(1, K_MAX) = Field(ARITHMETIC_K, description="How many neighbours.")


class GroupsParams(Params):
    """How the groups are made: what every listing of them, and every rule over them, takes."""

    threshold: number(-1.0, 1.0) = Field(
        None, description="Cosine similarity every pair of a group reaches (exact copies: "
                          "always); default: the model's copy threshold.")
    min_size: whole(2, GROUP_MAX) = Field(2, description="Smallest group listed.")


Status = Annotated[choice(*STATUSES), Field(description="pending: groups still to review; "
                                            "reviewed: groups a decision settles; all.")]


class DuplicatesParams(GroupsParams):
    page: whole(1, PAGE_MAX) = Field(1, description="Which page of groups, from 1.")
    per_page: whole(1, PER_PAGE_MAX) = Field(
        PER_PAGE_DEFAULT, description=f"Groups a page, 1 to {PER_PAGE_MAX}.")
    status: Status = "pending"
    image: CatalogId | None = Field(None, description="Only the group holding this image "
                                                      "(its copies), if it has any.")


class DuplicatesCsvParams(GroupsParams):
    status: Status = "pending"


def _rule(raw: Any, name: str) -> str:
    try:
        return KeepRule.parse(str(raw)).text
    except BadRule as exc:
        raise bad_parameter(f"{name}: {exc}") from None


class KeepParams(GroupsParams):
    rule: parameter(Annotated[str, WithJsonSchema({
        "type": "string", "pattern": RULE_PATTERN, "maxLength": 200})], _rule) = Field(
            description=f"The copy each pending group keeps: {RULE_HELP}.")


class DeleteImageParams(Params):
    exclude: Flag = Field(True, description="Record an exclusion, so that re-indexing skips the "
                          "file and files with the same content.")


# -- the bodies of the endpoints that take one without parameters --------------------------------

class CodeJson(BaseModel):
    """A code file (what lookalike compress writes, .lkc) in base64."""

    code_base64: Annotated[bytes, BeforeValidator(
        lambda value: base64_bytes(value, "code_base64", data_url=False)), WithJsonSchema({
            "type": "string", "minLength": 1, "description": "The code file, base64."})]

    @model_validator(mode="before")
    @classmethod
    def _has_code(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("code_base64"), str):
            raise bad_request("the body must be a JSON object with 'code_base64', a base64 "
                              "string")
        return data


ImageId = Annotated[json_whole(0, ID_MAX, "an image id"), Field(description=IMAGE_ID)]


def _different(ids: list[int]) -> list[int]:
    if len(set(ids)) < len(ids):
        raise bad_parameter("images must be different images: an id is listed twice")
    return ids


GroupIds = Annotated[list[ImageId], AfterValidator(_different), Field(
    min_length=2, max_length=GROUP_MAX, json_schema_extra={"uniqueItems": True},
    description="The group's image ids, as GET /api/duplicates lists them.")]


class NotDuplicates(BaseModel):
    """These images are not copies of each other: never group their contents together again."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["not_duplicates"]  # type: ignore[valid-type]
    images: GroupIds


class KeepThisOne(BaseModel):
    """The group is reviewed and *keep* is the copy to keep; no file is touched."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["keep"]  # type: ignore[valid-type]
    images: GroupIds
    keep: ImageId = Field(description="The image kept; part of the group whether or not "
                                      "`images` lists it.")


class DecisionJson(RootModel[Annotated[Union[NotDuplicates, KeepThisOne],
                                       Field(discriminator="kind")]]):
    """A reviewer's decision on one group of GET /api/duplicates."""

    @model_validator(mode="before")
    @classmethod
    def _kind_first(cls, data: Any) -> Any:
        """Say what is wrong in the API's words before pydantic's union does."""
        if not isinstance(data, dict):
            raise bad_request("the body must be a JSON object with 'kind' and 'images'")
        if data.get("kind") not in DECISION_KINDS:
            raise bad_parameter(f"kind must be one of {', '.join(DECISION_KINDS)}, "
                                f"not {shown(data.get('kind'))}")
        return data


class TrashJson(BaseModel):
    """Images to move to the trash (catalog ids), or back from it (the same ids)."""

    model_config = ConfigDict(extra="forbid")
    images: Annotated[list[ImageId], AfterValidator(_different), Field(
        min_length=1, max_length=GROUP_MAX, json_schema_extra={"uniqueItems": True})]

    @model_validator(mode="before")
    @classmethod
    def _has_images(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise bad_request("the body must be a JSON object with 'images', a list of ids")
        return data


OLDER_THAN = "Only files trashed more than this many days ago; every trashed file when absent."


class EmptyTrashParams(Params):
    older_than_days: number(0.0) = Field(None, description=OLDER_THAN)


class EmptyTrashJson(BaseModel):
    """The same, as a JSON body (it wins over the query)."""

    model_config = ConfigDict(extra="forbid")
    older_than_days: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)] = Field(
        None, description=OLDER_THAN)  # a null is refused: it must not mean "everything"


# -- what the errors of each endpoint mean -----------------------------------------------------

NOT_READY = "No model or index yet (or they do not fit); the message says what to run."
NOT_FOUND = "No image with that id, or its file is gone."
UPLOAD_ERRORS = {
    400: "Bad parameter, empty or corrupt image, malformed body.",
    413: "Body over the upload limit, or too many pixels.",
    415: "Not a supported image type, or not multipart/JSON.",
    503: NOT_READY,
}
CANNOT_MOVE = ("busy: another writer holds the data dir's lock; cannot_move: a file cannot go "
               "to the trash or back (changed since indexed, gone, a link's target, or "
               "something else at its place). Every file is checked first, so nothing moved, "
               "unless the message says how many did before the one that could not.")
CROSS_SITE = "A request made by another site's page."
NOT_JSON = "The body is not application/json."
DISABLED = "Admin endpoints are disabled (no LOOKALIKE_ADMIN_TOKEN configured)."
UNAUTHORIZED = "Missing or wrong 'Authorization: Bearer <token>'."
BUSY = ("Another writer (`lookalike index`, a running re-index job, ...) holds the data dir's "
        "lock; try again when it is done.")
ADMIN_ERRORS = {401: UNAUTHORIZED, 403: DISABLED}
READ_ONLY = ("read_only: the data dir cannot be written here (a read-only mount, another "
             "user's folder); everything that only reads still works.")
DISK_FULL = ("disk_full: no room left where the data dir is; nothing was written and nothing "
             "lost. Free some space and send it again.")


def writing(codes: dict[int, Any]) -> dict[int, Any]:
    """*codes* of an endpoint that writes to the data dir, with the two answers of a data dir
    that cannot be written (``web.errors.STORAGE_ANSWERS``)."""
    unavailable = codes.get(503)
    return {**codes, 503: f"{unavailable} Or {READ_ONLY}" if unavailable else READ_ONLY,
            507: DISK_FULL}
