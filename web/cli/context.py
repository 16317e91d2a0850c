"""What every command shares: settings, the store, the writer lock, errors.

Domain errors become ``click.ClickException`` in the commands and the
helpers here, at the edge, and nowhere else. What commands that use a model
share is ``web.cli.encoders``: this module loads no torch, so ``lookalike stats``
does not either.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
from sqlalchemy.exc import OperationalError

from search.database import (CATALOG_FILE, SchemaError, describe_database_error, sqlite_file,
                             storage_error)
from search.files import DiskFullError, ReadOnlyError
from search.lock import WATCHING, DataDirBusy, WriterLock, holder
from search.settings import Settings
from search.store import Store
from search.vector_index import VectorIndexError

WAIT_FOR_WATCHER = 600.0  # seconds a command waits for a watcher's pass (a big first pass)


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
                        help=f"{what} (default: LOOKALIKE_MODEL, or DATA_DIR/model.pt).")


def lock_data_dir(obj: Context, doing: str) -> WriterLock:
    """Hold the data dir's writer lock until the command ends, or refuse at once, unless a
    watcher holds it: then wait for its pass to end (up to WAIT_FOR_WATCHER seconds).

    Two writers would each keep an index in memory that misses the
    other's commits; see search.lock.
    """
    waited_since = unnamed_since = None
    while True:
        try:
            return click.get_current_context().with_resource(
                WriterLock(obj.data_dir, doing, obj.settings.database_url))
        except DataDirBusy as exc:
            by = holder(obj.data_dir)
            if by is None and unnamed_since is None:  # taken or given back this instant
                unnamed_since = time.monotonic()
            if by is None and time.monotonic() - unnamed_since < 1.0:
                time.sleep(0.1)
                continue
            if by is None or by[1] != WATCHING:
                raise click.ClickException(str(exc)) from exc
            if waited_since is None:
                obj.echo(f"waiting for the watcher (pid {by[0]}) to finish its pass", err=True)
                waited_since = time.monotonic()
            elif time.monotonic() - waited_since > WAIT_FOR_WATCHER:
                raise click.ClickException(str(exc)) from exc
            time.sleep(0.2)


def report_failures(failures: list[tuple[str, str]]) -> None:
    if not failures:
        return
    click.echo(f"skipped {len(failures)} file(s):", err=True)
    for path, reason in failures:
        click.echo(f"  {path}: {reason}", err=True)


@contextmanager
def writing(obj: Context, *expected: type[Exception]) -> Iterator[None]:
    """What a write to the data dir can meet (a full disk, a damaged index, a database
    that refuses, and the *expected* errors of the work itself), as the one-line errors
    the commands print."""
    try:
        yield
    except (VectorIndexError, OSError, OperationalError, *expected) as exc:
        known = unwritable_data_dir(exc, obj.settings.database_url)
        if known is not None:
            raise known from exc
        if isinstance(exc, OperationalError):
            raise click.ClickException(
                describe_database_error(exc, obj.settings.database_url)) from exc
        raise click.ClickException(str(exc)) from exc
