"""Settings shared by the command line and the web app, resolved once at start-up.

Sources, later ones winning: defaults → ``INSTANCE/config.py`` →
``LOOKALIKE_*`` environment variables → explicit overrides (a test's
config, ``--data-dir``). Each key has the same name in the instance file
and in the environment, so an operator never translates between the two.
The upload limit is Flask's own ``MAX_CONTENT_LENGTH``; its environment
name carries the ``LOOKALIKE_`` prefix so that a generic variable in
someone's shell cannot change it by accident.

Every path is made absolute here, against the working directory at
start-up, and nowhere else: a relative data dir handed on as it is gets
resolved later against whatever folder the consumer thinks of (Flask's
``send_file`` uses the package folder), which once broke every thumbnail.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .database import catalog_exists, database_url, sqlite_file, sqlite_url
from .store import DEFAULT_DATA_DIR, INDEX_FILE, MODEL_FILE, Store, data_dir_file

MB = 1024 * 1024
INSTANCE_FILE = "config.py"

DEFAULTS: dict[str, Any] = {
    # Where catalog.sqlite, index.faiss, model.pt and thumbs/ live.
    "LOOKALIKE_DATA_DIR": DEFAULT_DATA_DIR,
    # Optional overrides of the files inside the data dir.
    "LOOKALIKE_DATABASE_URL": None,
    "LOOKALIKE_INDEX_PATH": None,
    "LOOKALIKE_MODEL": None,
    # "auto" uses CUDA when present.
    "LOOKALIKE_DEVICE": "auto",
    # Intra-op threads for torch and FAISS per request; 0 leaves the libraries'
    # defaults. Two OpenMP runtimes (torch's and FAISS's) spinning on the same
    # cores made single queries 10-100x slower on a 2-core box.
    "LOOKALIKE_INFERENCE_THREADS": 1,
    # Largest request body; bigger uploads get 413 before they are read.
    "MAX_CONTENT_LENGTH": 20 * MB,
    # Memory one upload may take to decode; bigger images get 413 before decoding.
    "LOOKALIKE_MAX_DECODE_BYTES": 256 * MB,
    # Memory all request bodies together may hold in `lookalike serve`; it sets
    # how many connections waitress accepts at once (see web.server.server_limits).
    "LOOKALIKE_UPLOAD_MEMORY": 1024 * MB,
    # Seconds a connection of `lookalike serve` gets to send a request (and more for every
    # 8 KB that arrives), or to stay idle between requests; 0: waitress's 120 s idle limit
    # (web.server).
    "LOOKALIKE_REQUEST_TIMEOUT": 10,
    # Connections one client address may hold open at once in `lookalike serve` (a browser
    # uses 6); 0: no cap (behind a reverse proxy, every client has the proxy's address).
    "LOOKALIKE_CLIENT_CONNECTIONS": 10,
    # The data-changing /api/admin endpoints answer 403 until this is set.
    "LOOKALIKE_ADMIN_TOKEN": None,
    # When set, every request needs it (Bearer, or HTTP Basic with it as password).
    "LOOKALIKE_READ_TOKEN": None,
    # Host header values answered; None: the loopback names, plus what serve binds.
    "LOOKALIKE_TRUSTED_HOSTS": None,
    # Folders POST /api/admin/reindex indexes; unset: the folders indexed into the data dir.
    "LOOKALIKE_INDEX_FOLDERS": None,
}
# Fields where unset is a value of its own (no upload limit, no token, the loopback names,
# the folders indexed into the data dir); any other unset field takes its default.
MAY_BE_UNSET = ("max_content_length", "admin_token", "read_token", "trusted_hosts",
                "index_folders")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
NON_NEGATIVE = ("LOOKALIKE_REQUEST_TIMEOUT", "LOOKALIKE_CLIENT_CONNECTIONS")


def _optional_str(value: str) -> str | None:
    return value or None


def _path_list(value: str) -> list[str] | None:
    return [p for p in value.split(os.pathsep) if p] or None


def _host_list(value: str) -> list[str] | None:
    return [h.strip() for h in value.split(",") if h.strip()] or None


def _int(name: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(
                f"environment variable {name} must be an integer, not {value!r}") from None
    return parse


def _number(name: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"environment variable {name} must be a number, not {value!r}"
                             ) from None
    return parse


# environment variable -> (settings key, parser)
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
    "LOOKALIKE_UPLOAD_MEMORY": ("LOOKALIKE_UPLOAD_MEMORY", _int("LOOKALIKE_UPLOAD_MEMORY")),
    "LOOKALIKE_REQUEST_TIMEOUT": ("LOOKALIKE_REQUEST_TIMEOUT",
                                  _number("LOOKALIKE_REQUEST_TIMEOUT")),
    "LOOKALIKE_CLIENT_CONNECTIONS": ("LOOKALIKE_CLIENT_CONNECTIONS",
                                     _int("LOOKALIKE_CLIENT_CONNECTIONS")),
    "LOOKALIKE_ADMIN_TOKEN": ("LOOKALIKE_ADMIN_TOKEN", _optional_str),
    "LOOKALIKE_READ_TOKEN": ("LOOKALIKE_READ_TOKEN", _optional_str),
    "LOOKALIKE_TRUSTED_HOSTS": ("LOOKALIKE_TRUSTED_HOSTS", _host_list),
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


def from_instance_file(path: Path) -> dict[str, Any]:
    """The upper-case names a Python instance file assigns (as Flask's ``from_pyfile``)."""
    if not path.is_file():
        return {}
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(path.read_bytes(), str(path), "exec"), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}


def default_instance_path() -> Path:
    """The folder holding config.py, as Flask places it; LOOKALIKE_INSTANCE_PATH moves it.

    Beside the code in a checkout (``instance/`` at the top of the repo,
    git-ignored), ``PREFIX/var/lookalike-instance`` for an installed
    package. Never the working directory: the instance file is Python that
    every command runs, and ``lookalike index .`` inside a downloaded
    folder must not run code that folder brings.
    """
    top = Path(__file__).resolve().parent.parent
    if top.name in ("site-packages", "dist-packages"):
        return Path(sys.prefix) / "var" / "lookalike-instance"
    return top / "instance"


def _absolute(path: str | os.PathLike) -> Path:
    """Absolute without resolving symlinks: a linked data dir keeps the name its user gave."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _anchored_url(url: str | None, data_dir: Path) -> str:
    """The catalog URL with a relative SQLite file made absolute; default: DATA_DIR/catalog."""
    if not url:
        return database_url(data_dir)
    path = sqlite_file(url)
    return sqlite_url(_absolute(path)) if path is not None else url


# settings key → the Settings field that holds it, typed; the paths are fields of their own.
FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "LOOKALIKE_DEVICE": ("device", str),
    "LOOKALIKE_INFERENCE_THREADS": ("inference_threads", int),
    "MAX_CONTENT_LENGTH": ("max_content_length", int),
    "LOOKALIKE_MAX_DECODE_BYTES": ("max_decode_bytes", int),
    "LOOKALIKE_UPLOAD_MEMORY": ("upload_memory", int),
    "LOOKALIKE_REQUEST_TIMEOUT": ("request_timeout", float),
    "LOOKALIKE_CLIENT_CONNECTIONS": ("client_connections", int),
    "LOOKALIKE_ADMIN_TOKEN": ("admin_token", str),
    "LOOKALIKE_READ_TOKEN": ("read_token", str),
    "LOOKALIKE_TRUSTED_HOSTS": ("trusted_hosts", tuple),
    "LOOKALIKE_INDEX_FOLDERS": ("index_folders", tuple),
}


def _typed(key: str, kind: Callable[[Any], Any], value: Any) -> Any:
    """*value* as its field's type; None (and an empty text) means unset."""
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be {'a number' if kind in (int, float) else 'text'}, "
                         f"not {value!r}") from None


@dataclass(frozen=True)
class Settings:
    """Every setting, typed and resolved (paths absolute): what the command line and the web
    app both read, the same way, and nothing else does."""

    data_dir: Path
    database_url: str
    index_path: Path
    model_path: Path
    instance_path: Path
    model_is_explicit: bool = False  # LOOKALIKE_MODEL names the model, not the data dir
    device: str = DEFAULTS["LOOKALIKE_DEVICE"]
    inference_threads: int = DEFAULTS["LOOKALIKE_INFERENCE_THREADS"]
    max_content_length: int | None = DEFAULTS["MAX_CONTENT_LENGTH"]
    max_decode_bytes: int = DEFAULTS["LOOKALIKE_MAX_DECODE_BYTES"]
    upload_memory: int = DEFAULTS["LOOKALIKE_UPLOAD_MEMORY"]
    request_timeout: float = DEFAULTS["LOOKALIKE_REQUEST_TIMEOUT"]
    client_connections: int = DEFAULTS["LOOKALIKE_CLIENT_CONNECTIONS"]
    admin_token: str | None = None
    read_token: str | None = None
    trusted_hosts: tuple[str, ...] | None = None  # None: the loopback names
    index_folders: tuple[str, ...] | None = None  # None: the folders indexed into the data dir

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None,
             instance_path: str | os.PathLike | None = None) -> "Settings":
        """Defaults → instance file → environment → *overrides*, then every path anchored.

        Keys that are not settings (a test config's ``TESTING``, say) are left to the caller.
        """
        environ = os.environ if environ is None else environ
        instance = _absolute(instance_path or environ.get("LOOKALIKE_INSTANCE_PATH")
                             or default_instance_path())
        values = dict(DEFAULTS)
        values.update(from_instance_file(instance / INSTANCE_FILE))
        values.update(from_environment(environ))
        values.update(overrides or {})
        data_dir = _absolute(values["LOOKALIKE_DATA_DIR"])
        index = values.get("LOOKALIKE_INDEX_PATH")
        model = values.get("LOOKALIKE_MODEL")
        if isinstance(values.get("LOOKALIKE_INDEX_FOLDERS"), str):
            values["LOOKALIKE_INDEX_FOLDERS"] = _path_list(values["LOOKALIKE_INDEX_FOLDERS"])
        if isinstance(values.get("LOOKALIKE_TRUSTED_HOSTS"), str):
            values["LOOKALIKE_TRUSTED_HOSTS"] = _host_list(values["LOOKALIKE_TRUSTED_HOSTS"])
        if values.get("LOOKALIKE_INDEX_FOLDERS"):
            values["LOOKALIKE_INDEX_FOLDERS"] = [str(_absolute(f))
                                                 for f in values["LOOKALIKE_INDEX_FOLDERS"]]
        typed = {name: _typed(key, kind, values.get(key)) for key, (name, kind) in FIELDS.items()}
        typed = {n: v for n, v in typed.items() if v is not None or n in MAY_BE_UNSET}
        for key in NON_NEGATIVE:
            if (typed[FIELDS[key][0]] or 0) < 0:
                raise ValueError(f"{key} must be 0 or more, not {values[key]!r}")
        url = _anchored_url(values.get("LOOKALIKE_DATABASE_URL"), data_dir)
        return cls(data_dir=data_dir, database_url=url,
                   index_path=data_dir_file(data_dir, INDEX_FILE, index and _absolute(index)),
                   model_path=data_dir_file(data_dir, MODEL_FILE, model and _absolute(model)),
                   instance_path=instance, model_is_explicit=bool(model), **typed)

    @property
    def has_catalog(self) -> bool:
        """Whether a catalog exists already (for a server database: its schema does)."""
        return catalog_exists(self.database_url)

    def open_store(self) -> Store:
        """The data dir's store (catalog migrated to head), with these settings' file paths."""
        return Store.open(self.data_dir, self.database_url, self.index_path, self.model_path)
