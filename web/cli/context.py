"""What every command shares: settings, the store, the writer lock, the model, errors.

Domain errors become ``click.ClickException`` in the commands and the
helpers here, at the edge, and nowhere else.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from sqlalchemy.exc import OperationalError

from indexer.encoder import TorchEncoder, load_serving
from indexer.images import ImageDecodeError, load_image
from indexer.lock import DataDirBusy, WriterLock
from indexer.model import CheckpointError
from indexer.settings import Settings
from search.database import CATALOG_FILE, SchemaError, sqlite_file, storage_error
from search.files import DiskFullError, ReadOnlyError
from search.engine import ModelMismatch, SearchEngine
from search.store import Store
from search.vector_index import VectorIndexError


class Unwritable(click.ClickException):
    """The data dir cannot take a write (a full disk, a read-only mount): one sentence, exit 2."""

    exit_code = 2


def unwritable_data_dir(exc: BaseException, database_url: str | None) -> Unwritable | None:
    """The :class:`Unwritable` that *exc* means, or None when it means something else."""
    if isinstance(exc, (DiskFullError, ReadOnlyError)):
        return Unwritable(str(exc))
    if isinstance(exc, OperationalError) and (known := storage_error(exc, database_url)):
        return Unwritable(str(known))
    return None


class Context:
    """The settings (paths already absolute) and, once a command asks, the store."""

    def __init__(self, settings: Settings, quiet: bool):
        self.settings = settings
        self.data_dir = settings.data_dir
        self.quiet = quiet
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The data dir's store, made (folder, catalog) if it is not there yet: for writers."""
        if self._store is None:
            try:
                self._store = self.settings.open_store()
            except SchemaError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._store

    def existing_store(self) -> Store:
        """The store for commands that only read it.

        A mistyped --data-dir must get an error, not a new empty data dir
        that then answers "0 images".
        """
        if self._store is None and not self.settings.has_catalog:
            where = (f"no {CATALOG_FILE} there" if sqlite_file(self.settings.database_url)
                     else "its catalog database is empty")
            raise click.ClickException(
                f"nothing indexed in {self.data_dir} yet ({where}). Index a "
                f"folder first: lookalike --data-dir {self.data_dir} index FOLDER")
        return self.store

    def echo(self, message: str = "", err: bool = False) -> None:
        if not self.quiet:
            click.echo(message, err=err)


pass_ctx = click.make_pass_decorator(Context)
def model_option(what: str = "Checkpoint"):
    """``--model CKPT``: another checkpoint than the data dir's (or LOOKALIKE_MODEL's)."""
    return click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
                        help=f"{what} (default: DATA_DIR/model.pt).")


def lock_data_dir(obj: Context, doing: str) -> WriterLock:
    """Hold the data dir's writer lock until the command ends, or refuse at once.

    Two writers would each keep an index in memory that misses the
    other's commits; see indexer.lock.
    """
    try:
        return click.get_current_context().with_resource(WriterLock(obj.data_dir, doing, obj.settings.database_url))
    except DataDirBusy as exc:
        raise click.ClickException(str(exc)) from exc


def load_encoder(obj: Context, model: Path | None, device: str = "auto") -> TorchEncoder:
    path = model or obj.settings.model_path
    try:
        return TorchEncoder.from_path(path, device)
    except CheckpointError as exc:
        raise click.ClickException(
            f"{exc}. Train one first: lookalike --data-dir {obj.data_dir} train FOLDER") from exc


def serving_encoder(obj: Context, model: Path | None) -> TorchEncoder:
    """The encoder that compares with the index: *model* when given, else the data dir's
    model, or the earlier one that built the index while the new one's re-encode has not
    finished (``indexer.encoder.load_serving``; the user is told)."""
    if model is not None or obj.settings.model_is_explicit or not obj.settings.has_catalog:
        return load_encoder(obj, model)
    try:
        encoder, waiting = load_serving(obj.existing_store(), obj.settings.model_path)
    except CheckpointError as exc:
        raise click.ClickException(
            f"{exc}. Train one first: lookalike --data-dir {obj.data_dir} train FOLDER") from exc
    if waiting is not None:
        click.echo(f"note: searching with the model that built the index; the newer {waiting} "
                   f"takes over once `lookalike --data-dir {obj.data_dir} reindex` has "
                   "re-encoded every image", err=True)
    return encoder


def checked_engine(obj: Context, encoder: TorchEncoder) -> SearchEngine:
    """A search engine over the data dir's index, refused when another model built it."""
    engine = SearchEngine(obj.existing_store(), encoder)
    try:
        engine.check_index(engine.index())
    except VectorIndexError as exc:
        raise click.ClickException(
            f"{exc}. Index a folder first: lookalike --data-dir {obj.data_dir} index FOLDER"
        ) from exc
    except ModelMismatch as exc:
        raise click.ClickException(
            f"{exc}. Re-encode with: lookalike --data-dir {obj.data_dir} index --reencode "
            "FOLDER (or pass --model with the checkpoint that built it)") from exc
    return engine


def read_image(path: Path, size: int) -> np.ndarray:
    """An image the user named, as the model's input, or a ClickException saying why not."""
    try:
        return load_image(path, size)
    except ImageDecodeError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


def report_failures(failures: list[tuple[str, str]]) -> None:
    if not failures:
        return
    click.echo(f"skipped {len(failures)} file(s):", err=True)
    for path, reason in failures:
        click.echo(f"  {path}: {reason}", err=True)
