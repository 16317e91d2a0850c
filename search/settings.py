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

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .database import catalog_exists, database_url, sqlite_file, sqlite_url
from .store import DEFAULT_DATA_DIR, INDEX_FILE, MODEL_FILE, Store, data_dir_file

MB = 1024 * 1024
INSTANCE_FILE = "config.py"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _whole(value: str | int | float) -> int:
    """An integer: digits in the environment, a whole number in config.py (not 2.5, not True)."""
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _number(value: str | int | float) -> float:
    """A finite number (a timeout of NaN seconds would never end)."""
    if isinstance(value, bool) or not math.isfinite(number := float(value)):
        raise ValueError(value)
    return number


def _text(value: Any) -> str | None:
    """Text; a number in config.py (a token of digits, say) becomes its text."""
    return str(value) or None


def _paths(text: str | list[str]) -> tuple[str, ...] | None:
    """Folders: ``:``-separated in the environment (``;`` on Windows), a list in config.py."""
    parts = text.split(os.pathsep) if isinstance(text, str) else text
    return tuple(str(_absolute(p)) for p in parts if p) or None


def _hosts(text: str | list[str]) -> tuple[str, ...] | None:
    """Host names: comma-separated in the environment, a list in config.py."""
    parts = text.split(",") if isinstance(text, str) else text
    return tuple(h.strip() for h in parts if h.strip()) or None


@dataclass(frozen=True)
class Setting:
    """One setting: its name in config.py (and in the environment, ``LOOKALIKE_``-prefixed
    where it is not already), the :class:`Settings` field that holds it, how a value is read
    (from the environment's text or the instance file's value), and what unset means."""

    key: str
    field: str
    read: Callable[[Any], Any]
    default: Any = None
    why: str = ""

    @property
    def environment(self) -> str:
        return self.key if self.key.startswith("LOOKALIKE_") else f"LOOKALIKE_{self.key}"


# Every setting, once. The paths (data dir, catalog, index, model) are anchored by
# Settings.load; the upload limit is Flask's own MAX_CONTENT_LENGTH, whose environment name
# carries the LOOKALIKE_ prefix so that a generic variable in a shell cannot change it.
SETTINGS = (
    Setting("LOOKALIKE_DATA_DIR", "data_dir", str, DEFAULT_DATA_DIR,
            "where catalog.sqlite, index.faiss, model.pt and thumbs/ live"),
    Setting("LOOKALIKE_DATABASE_URL", "database_url", _text, None,
            "the catalog's database; default: DATA_DIR/catalog.sqlite"),
    Setting("LOOKALIKE_INDEX_PATH", "index_path", _text, None, "default: DATA_DIR/index.faiss"),
    Setting("LOOKALIKE_MODEL", "model_path", _text, None, "default: DATA_DIR/model.pt"),
    Setting("LOOKALIKE_DEVICE", "device", str, "auto", '"auto" uses CUDA when present'),
    Setting("LOOKALIKE_INFERENCE_THREADS", "inference_threads", _whole, 1,
            "intra-op threads for torch and FAISS per request; 0 leaves the libraries' "
            "defaults. Two OpenMP runtimes spinning on the same cores made single queries "
            "10-100x slower on a 2-core box"),
    Setting("MAX_CONTENT_LENGTH", "max_content_length", _whole, 20 * MB,
            "largest request body; bigger uploads get 413 before they are read"),
    Setting("LOOKALIKE_MAX_DECODE_BYTES", "max_decode_bytes", _whole, 256 * MB,
            "memory one upload may take to decode; bigger images get 413 before decoding"),
    Setting("LOOKALIKE_UPLOAD_MEMORY", "upload_memory", _whole, 1024 * MB,
            "memory all request bodies together may hold in `lookalike serve`; it sets how "
            "many connections waitress accepts at once (web.server.server_limits)"),
    Setting("LOOKALIKE_REQUEST_TIMEOUT", "request_timeout", _number, 10.0,
            "seconds a connection of `lookalike serve` gets to send a request (and more for "
            "every 8 KB that arrives), or to stay idle; 0: waitress's 120 s idle limit"),
    Setting("LOOKALIKE_CLIENT_CONNECTIONS", "client_connections", _whole, 10,
            "connections one client address may hold open in `lookalike serve` (a browser "
            "uses 6); 0: no cap (behind a reverse proxy every client has its address)"),
    Setting("LOOKALIKE_ADMIN_TOKEN", "admin_token", _text, None,
            "the data-changing /api/admin endpoints answer 403 until this is set"),
    Setting("LOOKALIKE_READ_TOKEN", "read_token", _text, None,
            "when set, every request needs it (Bearer, or HTTP Basic with it as password)"),
    Setting("LOOKALIKE_TRUSTED_HOSTS", "trusted_hosts", _hosts, None,
            "Host header values answered; unset: the loopback names, plus what serve binds"),
    Setting("LOOKALIKE_INDEX_FOLDERS", "index_folders", _paths, None,
            "folders a re-index covers; unset: the folders indexed into the data dir"),
    Setting("LOOKALIKE_WATCH_INTERVAL", "watch_interval", _number, 300.0,
            "seconds between two scans of `lookalike watch` / `serve --watch` (file events, "
            "where the system gives them, wake a scan sooner)"),
    Setting("LOOKALIKE_WATCH_SETTLE", "watch_settle", _number, 10.0,
            "seconds a new or changed file must stay the same size and time before the "
            "watcher indexes it (a file still being copied waits)"),
)
BY_KEY = {s.key: s for s in SETTINGS}
ENVIRONMENT = {s.environment: s for s in SETTINGS}
NON_NEGATIVE = ("LOOKALIKE_REQUEST_TIMEOUT", "LOOKALIKE_CLIENT_CONNECTIONS",
                "LOOKALIKE_WATCH_INTERVAL", "LOOKALIKE_WATCH_SETTLE")


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment sets, by key, still as text; an empty variable unsets an
    optional setting and leaves a required one (the data dir, the device) at its default."""
    environ = os.environ if environ is None else environ
    return {s.key: environ[name] for name, s in ENVIRONMENT.items()
            if name in environ and (environ[name] or s.default is None)}


def _value(setting: Setting, raw: Any, where: str) -> Any:
    """*raw* (text from the environment, or a config.py value) as its field's type; None or
    an empty text means unset, which is the default."""
    if raw is None or raw == "":
        return setting.default
    try:
        value = setting.read(raw)
    except (TypeError, ValueError):
        kind = {_whole: "an integer", _number: "a number"}.get(setting.read, "text")
        raise ValueError(f"{where} must be {kind}, not {raw!r}") from None
    return setting.default if value is None else value


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


@dataclass(frozen=True)
class Settings:
    """Every setting, typed and resolved (paths absolute): what the command line and the web
    app both read, the same way, and nothing else does (``SETTINGS`` says what each means)."""

    data_dir: Path
    database_url: str
    index_path: Path
    model_path: Path
    instance_path: Path
    model_is_explicit: bool = False  # LOOKALIKE_MODEL names the model, not the data dir
    device: str = BY_KEY["LOOKALIKE_DEVICE"].default
    inference_threads: int = BY_KEY["LOOKALIKE_INFERENCE_THREADS"].default
    max_content_length: int = BY_KEY["MAX_CONTENT_LENGTH"].default
    max_decode_bytes: int = BY_KEY["LOOKALIKE_MAX_DECODE_BYTES"].default
    upload_memory: int = BY_KEY["LOOKALIKE_UPLOAD_MEMORY"].default
    request_timeout: float = BY_KEY["LOOKALIKE_REQUEST_TIMEOUT"].default
    client_connections: int = BY_KEY["LOOKALIKE_CLIENT_CONNECTIONS"].default
    admin_token: str | None = None
    read_token: str | None = None
    trusted_hosts: tuple[str, ...] | None = None  # None: the loopback names
    index_folders: tuple[str, ...] | None = None  # None: the folders indexed into the data dir
    watch_interval: float = BY_KEY["LOOKALIKE_WATCH_INTERVAL"].default
    watch_settle: float = BY_KEY["LOOKALIKE_WATCH_SETTLE"].default
    # The instance file's and the overrides' other upper-case names: Flask's own settings
    # (MAX_FORM_MEMORY_SIZE, PREFERRED_URL_SCHEME...), which the app passes on to Flask.
    flask: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None,
             instance_path: str | os.PathLike | None = None) -> "Settings":
        """Defaults → instance file → environment → *overrides*, each typed, then every
        path anchored. Keys that are not settings (a test config's ``TESTING``, say) are
        left to the caller."""
        environ = os.environ if environ is None else environ
        instance = _absolute(instance_path or environ.get("LOOKALIKE_INSTANCE_PATH")
                             or default_instance_path())
        raw: dict[str, Any] = {}
        where: dict[str, str] = {}
        flask: dict[str, Any] = {}
        instance_file = instance / INSTANCE_FILE
        for source, found in (("instance", from_instance_file(instance_file)),
                              ("environment", from_environment(environ)),
                              ("overrides", overrides or {})):
            for key, value in found.items():
                if key not in BY_KEY:
                    flask[key] = value
                    continue
                raw[key] = value
                where[key] = {"instance": f"{key} in {instance_file}",
                              "environment": f"environment variable {BY_KEY[key].environment}",
                              }.get(source, key)
        values = {s.field: _value(s, raw.get(s.key), where.get(s.key, s.key))
                  for s in SETTINGS}
        for key in NON_NEGATIVE:
            if values[BY_KEY[key].field] < 0:
                raise ValueError(f"{key} must be 0 or more, not {raw[key]!r}")
        data_dir = _absolute(values.pop("data_dir"))
        index, model = values.pop("index_path"), values.pop("model_path")
        return cls(data_dir=data_dir,
                   database_url=_anchored_url(values.pop("database_url"), data_dir),
                   index_path=data_dir_file(data_dir, INDEX_FILE, index and _absolute(index)),
                   model_path=data_dir_file(data_dir, MODEL_FILE, model and _absolute(model)),
                   instance_path=instance, model_is_explicit=bool(model),
                   flask=MappingProxyType(flask), **values)

    @property
    def has_catalog(self) -> bool:
        """Whether a catalog exists already (for a server database: its schema does)."""
        return catalog_exists(self.database_url)

    def open_store(self) -> Store:
        """The data dir's store (catalog migrated to head), with these settings' file paths."""
        return Store.open(self.data_dir, self.database_url, self.index_path, self.model_path)
