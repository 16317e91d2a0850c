"""Schema = code: schemathesis runs every operation of the OpenAPI document against the app
(in process, through WSGI) and checks each answer against the document: documented status,
headers and body, no 5xx, schema-violating requests rejected, schema-valid ones accepted.

Bounded and derandomized (20 examples an operation, beyond schemathesis's coverage cases,
the same ones every run), so a failure is a reproducible mismatch, with a curl line to
replay it. Every admin endpoint is included, with the token configured; none is left out.
They run last (the document's order) on this module's own library: deleting images,
lifting exclusions and a background re-index (whose 409 busy for the writes after it is
documented) leave every other answer documented too.
"""
from __future__ import annotations

import base64
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from indexer.images import SUPPORTED_FORMATS
from web.app import openapi_document

from ..synthetic import SHAPES, dng_bytes, draw, png_bytes
from .conftest import build_library, close_app, make_app

TOKEN = "schemathesis-token"
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def images(fmt: str) -> st.SearchStrategy[bytes]:
    """Small real images of one type. The document says which types an upload may have, not
    that its bytes decode: random bytes would only ever get the documented 415."""
    def encode(kind: str, seed: int, size: int) -> bytes:
        picture = draw(kind, np.random.default_rng(seed), size)
        return dng_bytes(picture) if fmt == "RAW" else png_bytes(picture, fmt)
    smallest = 32 if fmt == "RAW" else 16  # LibRaw reads no sensor under 22 pixels a side
    return st.builds(encode, st.sampled_from(SHAPES), st.integers(0, 2**16),
                     st.integers(smallest, 80))


Image.init()
for _fmt in SUPPORTED_FORMATS:  # multipart image parts, by the types their encoding lists
    schemathesis.openapi.media_type(Image.MIME[_fmt], images(_fmt))
# JSON image_base64, the document's only format: byte
schemathesis.openapi.format("byte", st.one_of(*map(images, SUPPORTED_FORMATS)).map(
    lambda data: base64.b64encode(data).decode()))


class ServingThread:
    """A WSGI callable that hands each request to the module's app on a thread of its own.

    The schema needs an app when schemathesis makes the tests, at import; the app exists
    once its fixture has run. And not this thread: torch turns on flush-to-zero for the
    threads that train or serve (``indexer.train``, ``web.backend``), after which
    Hypothesis refuses to draw floats; so the library is built over there too.
    """

    def __init__(self) -> None:
        self.app: Any = None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="wsgi")

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.thread.submit(func, *args, **kwargs).result()

    def __call__(self, environ, start_response):
        return self.run(self._serve, environ, start_response)

    def _serve(self, environ, start_response) -> list[bytes]:
        body = self.app(environ, start_response)
        try:
            return list(body)
        finally:
            getattr(body, "close", lambda: None)()


# The document as the app serves it (test_the_served_document_is_the_one_tested checks).
DOCUMENT = json.loads(json.dumps(openapi_document()))
SERVER = ServingThread()
AUTH = {"headers": {"Authorization": f"Bearer {TOKEN}"}}


def load_schema(config: dict[str, Any]) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(config))
    schema.app = SERVER
    return schema


SCHEMA = load_schema(AUTH)
SCHEMAS = {  # (not an [[operations]] config entry: with one, include() stops narrowing)
    # Any bytes are a schema-valid code file, but only one this model wrote decodes:
    # the rest get the documented 400 (bad_code, or bad_request when not base64).
    ("POST", "/api/decompress"): load_schema({**AUTH, "checks": {"positive_data_acceptance": {
        "expected-statuses": ["200", "400", "401", "403", "404", "409", "429", "5xx"]}}}),
    # Any four numbers are a schema-valid box, but one with no part on the image sent is
    # the documented 400 (the schema cannot know the image's size).
    ("POST", "/api/search"): load_schema({**AUTH, "checks": {"positive_data_acceptance": {
        "expected-statuses": ["200", "400", "401", "403", "404", "409", "429", "5xx"]}}}),
}


@pytest.fixture(autouse=True)
def subnormal_floats():
    """Hypothesis draws floats on this thread; an earlier test in the suite that trained or
    searched here left torch's flush-to-zero on (a per-thread flag), so turn it off."""
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    # 36 images: compressing with dtype=pq needs 32 for its codebook (else a 503)
    library = SERVER.run(build_library, tmp_path_factory.mktemp("schema"), per_class=12)
    with pytest.MonkeyPatch.context() as env:  # no LOOKALIKE_* setting from the shell
        for name in [n for n in os.environ if n.startswith("LOOKALIKE_")]:
            env.delenv(name)
        app = make_app(library.data_dir, LOOKALIKE_ADMIN_TOKEN=TOKEN,
                       LOOKALIKE_INFERENCE_THREADS=0)
    SERVER.app = app
    yield app
    SERVER.app = None
    close_app(app)  # a re-index still running must not outlive its data dir


def test_the_served_document_is_the_one_tested(app):
    assert app.test_client().get("/api/openapi.json").get_json() == DOCUMENT


def operation_test(method: str, path: str) -> Callable[..., None]:
    @SCHEMAS.get((method, path), SCHEMA).include(method=method, path=path).parametrize()
    @SETTINGS
    def test(app, case):  # noqa: ARG001 (app: SERVER serves it)
        case.call_and_validate()
    return test


# One test function per operation, named after it: pytest 9 names schemathesis's tests by
# their function alone, so a single parametrized one would give them all the same id.
for _path, _methods in DOCUMENT["paths"].items():
    for _method in _methods:
        globals()["test_" + re.sub(r"\W+", "_", f"{_method} {_path}").strip("_").lower()] = (
            operation_test(_method.upper(), _path))
