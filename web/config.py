"""Settings: defaults, then ``instance/config.py``, then the environment, then explicit overrides.

Each key has the same name in the instance file and in the environment,
so an operator never has to translate between the two. The upload limit
is Flask's own ``MAX_CONTENT_LENGTH``; its environment name carries the
``LOOKALIKE_`` prefix so that a generic variable in someone's shell
cannot change it by accident.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from flask import Flask

from search.store import DEFAULT_DATA_DIR

MB = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    # Where catalog.sqlite, index.faiss, model.pt and thumbs/ live.
    "LOOKALIKE_DATA_DIR": DEFAULT_DATA_DIR,
    # Optional overrides of the files inside the data dir.
    "LOOKALIKE_DATABASE_URL": None,
    "LOOKALIKE_INDEX_PATH": None,
    "LOOKALIKE_MODEL": None,
    # "auto" uses CUDA when present, as the CLI does.
    "LOOKALIKE_DEVICE": "auto",
    # Intra-op threads for torch and FAISS; 0 leaves the libraries' defaults.
    # A request encodes one image, so parallelism belongs to the WSGI
    # threads; two OpenMP runtimes (torch's and FAISS's) spinning on the
    # same cores made single queries 10-100x slower on a 2-core box.
    "LOOKALIKE_INFERENCE_THREADS": 1,
    # Largest request body; bigger uploads get 413 before they are read.
    "MAX_CONTENT_LENGTH": 20 * MB,
    # Memory one upload may take to decode (pixels × a per-mode cost, see
    # web.uploads.check_decode_cost); bigger images get 413 before decoding.
    "LOOKALIKE_MAX_DECODE_BYTES": 256 * MB,
    # The data-changing /api/admin endpoints answer 403 until this is set;
    # then they need "Authorization: Bearer <token>".
    "LOOKALIKE_ADMIN_TOKEN": None,
    # Folders POST /api/admin/reindex indexes (a list, or os.pathsep-separated
    # in the environment); unset: the folders the catalog's files are in.
    "LOOKALIKE_INDEX_FOLDERS": None,
}


def _optional_str(value: str) -> str | None:
    return value or None


def _path_list(value: str) -> list[str] | None:
    return [p for p in value.split(os.pathsep) if p] or None


def _int(name: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(
                f"environment variable {name} must be an integer, not {value!r}") from None
    return parse


# environment variable -> (config key, parser)
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "LOOKALIKE_DATA_DIR": ("LOOKALIKE_DATA_DIR", str),
    "LOOKALIKE_DATABASE_URL": ("LOOKALIKE_DATABASE_URL", _optional_str),
    "LOOKALIKE_INDEX_PATH": ("LOOKALIKE_INDEX_PATH", _optional_str),
    "LOOKALIKE_MODEL": ("LOOKALIKE_MODEL", _optional_str),
    "LOOKALIKE_DEVICE": ("LOOKALIKE_DEVICE", str),
    "LOOKALIKE_INFERENCE_THREADS": ("LOOKALIKE_INFERENCE_THREADS",
                                    _int("LOOKALIKE_INFERENCE_THREADS")),
    "LOOKALIKE_MAX_CONTENT_LENGTH": ("MAX_CONTENT_LENGTH", _int("LOOKALIKE_MAX_CONTENT_LENGTH")),
    "LOOKALIKE_MAX_DECODE_BYTES": ("LOOKALIKE_MAX_DECODE_BYTES",
                                   _int("LOOKALIKE_MAX_DECODE_BYTES")),
    "LOOKALIKE_ADMIN_TOKEN": ("LOOKALIKE_ADMIN_TOKEN", _optional_str),
    "LOOKALIKE_INDEX_FOLDERS": ("LOOKALIKE_INDEX_FOLDERS", _path_list),
}


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment sets; unset and empty-for-required variables are skipped."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name, (key, parse) in ENVIRONMENT.items():
        if name in environ:
            value = environ[name]
            if value == "" and parse is str:
                continue
            found[key] = parse(value)
    return found


def configure(app: Flask, overrides: Mapping[str, Any] | None = None,
              environ: Mapping[str, str] | None = None) -> None:
    """Fill ``app.config``: defaults → instance/config.py → environment → *overrides*.

    *overrides* come last because they are the most specific: a test's
    temporary data dir, or ``lookalike serve --data-dir``.
    """
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile(os.path.join(app.instance_path, "config.py"), silent=True)
    app.config.from_mapping(from_environment(environ))
    if overrides:
        app.config.from_mapping(overrides)
