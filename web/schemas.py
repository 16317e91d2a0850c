"""What each endpoint of the JSON API takes, and the errors it answers with.

The views declare these with ``@spec.validate(query=..., form=..., json=...,
resp=...)`` (``web.apispec``): the same models validate the request and make
``/api/openapi.json``. The JSON bodies the API answers with are in
``web.answers``. The API's own limits are written here once (the views and
pages import them); those of the data come from where the data is defined
(catalog ids from ``search.catalog``, code dtypes from ``indexer.compression``,
seeds in ``web.fields``).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel,
                      create_model, model_validator)
from spectree import Response

from indexer.compression import DTYPES, MIN_CODES
from search.catalog import ID_MAX
from search.decisions import KINDS
from search.duplicates import STATUSES
from search.library import SORTS

from .fields import (SEED_MAX, Box, Choice, Day, Flag, Number, Param, Place, QueryString, Text,
                     UploadForm, UploadJson, Whole, bad_parameter, bad_request, shown)

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

ERROR_CODES = ("bad_request", "bad_parameter", "bad_image", "not_found", "method_not_allowed",
               "too_large", "unsupported_media_type", "not_ready", "internal_error", "bad_code",
               "unauthorized", "admin_disabled", "busy", "nothing_to_index", "cross_site",
               "disk_full", "read_only")

# Catalog ids: larger numbers are not ids, a 404 (in a path) or a 400 (in a query).
IMAGE_ID = "Catalog id of an indexed image."
PATH_ID = {"image_id": IMAGE_ID}


def query_model(name: str, params: dict[str, Param]) -> type[QueryString]:
    """The query-string model of an endpoint with these parameters."""
    return create_model(f"{name}QueryString", __base__=QueryString,
                        **{n: p.field(Place.QUERY) for n, p in params.items()})


def upload_models(name: str, params: dict[str, Param]) -> tuple[type[BaseModel], ...]:
    """(query, multipart form, JSON) models of an image endpoint: every option may be sent in
    the query string or in the body, beside the image; the body wins where both have one."""
    form = create_model(f"{name}Form", __base__=UploadForm,
                        **{n: p.field(Place.FORM) for n, p in params.items()})
    json = create_model(f"{name}Json", __base__=UploadJson,
                        **{n: p.field(Place.JSON) for n, p in params.items()})
    return query_model(name, params), form, json


# -- the parameters of each endpoint -----------------------------------------------------------

K = Whole(f"How many results, 1 to {K_MAX}.", K_DEFAULT, low=1, high=K_MAX)
FILTERS = {
    "folder": Text("Only images in this folder (as GET /api/folders lists them) or its "
                   "subfolders."),
    "date_from": Day("Only images whose file date (EXIF capture time, else modification "
                     "time) is on or after this day, UTC."),
    "date_to": Day("Only images whose file date is on or before this day, UTC."),
}
CATALOG_ID = Whole(IMAGE_ID, required=True, low=0, high=ID_MAX)
SearchQueryString, SearchForm, SearchJson = upload_models("Search", {
    "k": K,
    "reconstruction": Flag("Include the query's reconstruction and its error (one extra "
                           "decoder pass).", True),
    "denoise": Flag("Search with the model's reconstruction of the query (its denoised "
                    "version, for a --kind dae model); the reconstruction shown is that image.",
                    False),
    "collapse": Flag("Fold each near-duplicate of a better-ranked hit under it (its "
                     "`copies`), so the k results are k different images.", False),
    "box": Box("Search with this region of the image only: x0,y0,x1,y1 in its pixels as "
               "shown (upright), any two opposite corners; clipped to the image, and at "
               "least one pixel (`query.box` says which region was searched). A box with "
               "no part on the image is a 400."),
    **FILTERS,
})
SimilarQueryString = query_model("Similar", {"k": K, **FILTERS})
LibraryQueryString = query_model("Library", {
    "sort": Choice("indexed: when indexed; date: the file's date (EXIF capture time, else "
                   "modification time); error: reconstruction error; name: path.", "indexed",
                   choices=SORTS),
    "order": Choice("desc or asc.", "desc", choices=("desc", "asc")),
    **FILTERS,
    "page": Whole("Which page, from 1.", 1, low=1, high=PAGE_MAX),
    "per_page": Whole(f"Images a page, 1 to {LIBRARY_PAGE_MAX}.", LIBRARY_PAGE_DEFAULT, low=1,
                      high=LIBRARY_PAGE_MAX),
})

DenoiseQueryString, DenoiseForm, DenoiseJson = upload_models("Denoise", {
    "add_noise": Number("Add Gaussian noise of this σ (pixels in [0, 1]) first.", 0.0,
                        low=0.0, high=MAX_NOISE),
    "seed": Whole("Seed of the added noise (random when absent).", low=0, high=SEED_MAX),
    "format": Choice("png: the image; json: data URLs and PSNR.", "png",
                     choices=("png", "json")),
})
CompressQueryString, CompressForm, CompressJson = upload_models("Compress", {
    "dtype": Choice(f"How the code is stored; pq needs at least {MIN_CODES} indexed images "
                    "for its codebook.", "float16", choices=DTYPES),
})

AnomaliesQueryString = query_model("Anomalies", {
    "top": Whole(f"The N worst (at most {TOP_MAX} are listed in any case).", low=1,
                 high=TOP_MAX),
    "threshold": Number("Only images with reconstruction MSE above this.", low=0.0),
})
SampleQueryString = query_model("Sample", {
    "n": Whole("How many.", 8, low=1, high=SAMPLES_MAX),
    "seed": Whole("Same seed, same images (random when absent).", low=0, high=SEED_MAX),
})
InterpolateQueryString = query_model("Interpolate", {
    "a": CATALOG_ID, "b": CATALOG_ID,
    "steps": Whole("How many images, ends included.", 8, low=STEPS_MIN, high=STEPS_MAX),
})
ArithmeticQueryString = query_model("Arithmetic", {
    "a": CATALOG_ID, "b": CATALOG_ID, "c": CATALOG_ID,
    "k": Whole("How many neighbours.", ARITHMETIC_K, low=1, high=K_MAX),
})
DuplicatesQueryString = query_model("Duplicates", {
    "page": Whole("Which page of groups, from 1.", 1, low=1, high=PAGE_MAX),
    "per_page": Whole(f"Groups a page, 1 to {PER_PAGE_MAX}.", PER_PAGE_DEFAULT, low=1,
                      high=PER_PAGE_MAX),
    "status": Choice("pending: groups still to review; reviewed: groups a decision settles; "
                     "all.", "pending", choices=STATUSES),
    "threshold": Number("Cosine similarity every pair of a group reaches (exact copies: "
                        "always); default: the model's copy threshold.", low=-1.0, high=1.0),
    "min_size": Whole("Smallest group listed.", 2, low=2, high=GROUP_MAX),
})
DeleteImageQueryString = query_model("DeleteImage", {
    "exclude": Flag("Record an exclusion, so that re-indexing skips the file and files with "
                    "the same content.", True),
})


ImageId = Annotated[CATALOG_ID.value_type(), BeforeValidator(
    lambda raw: CATALOG_ID.from_json(raw, "an image id")), Field(description=IMAGE_ID)]


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
        if data.get("kind") not in KINDS:
            raise bad_parameter(f"kind must be one of {', '.join(KINDS)}, "
                                f"not {shown(data.get('kind'))}")
        return data


# -- errors --------------------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    code: Literal[ERROR_CODES]  # type: ignore[valid-type]
    message: str = Field(description="For people; may change.")


class Error(BaseModel):
    """Every error of the API, whatever its status."""

    error: ErrorDetail


NOT_READY = "No model or index yet (or they do not fit); the message says what to run."
NOT_FOUND = "No image with that id, or its file is gone."
UPLOAD_ERRORS = {
    400: "Bad parameter, empty or corrupt image, malformed body.",
    413: "Body over the upload limit, or too many pixels.",
    415: "Not a supported image type, or not multipart/JSON.",
    503: NOT_READY,
}
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


def answers(codes: dict[int, Any]) -> Response:
    """The documented responses of an endpoint by status: (model or None, description), or
    just a description for an :class:`Error`."""
    return Response(**{f"HTTP_{code}": (Error, what) if isinstance(what, str) else what
                       for code, what in codes.items()})
