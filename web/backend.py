"""The per-app search backend: one store, and one snapshot of what serves searches.

Loading a checkpoint and a FAISS index is far slower than answering a
query, so they are loaded once per app and shared by all request threads.
The model is reloaded when its file changes on disk (``lookalike train``
replaces it atomically) or when a re-encode lets another model's index serve;
the engine itself reloads the index when an indexer bumps the index generation.
Nothing here is per request, so there is nothing to close at request teardown;
:meth:`Backend.close` releases the database pool when the app is discarded.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import torch
from flask import current_app

from indexer.compression import Codebooks, ProductQuantizer, TooFewCodes
from indexer.encoding import TorchEncoder, load_serving
from indexer.model import CheckpointError, resolve_device
from search.catalog import ImageRecord
from search.database import READ_WRITE, SchemaError
from search.engine import ModelMismatch, SearchEngine, reencode_advice
from search.files import file_key
from search.settings import Settings
from search.store import DEFAULT_DATA_DIR, Store
from search.vector_index import VectorIndex, VectorIndexError

REOPEN_SECONDS = 30  # between tries to open a read-only catalog for writing again


class NotReady(Exception):
    """No usable model or index yet; the message says which command to run."""


@dataclass(frozen=True)
class Serving:
    """What answers searches for one state of the data dir: the model file as it is on disk
    and the model that built the index (``key``). Never changed: when either moves, the
    backend loads a new one and swaps it in whole, so a request holds one consistent set of
    encoder, engine and model id however long it runs."""

    key: tuple
    store: Store  # the store it was loaded on: a reopened one brings a new snapshot
    engine: SearchEngine | None = None
    model_id: int | None = None  # the catalog's id for this checkpoint; None until indexed
    waiting_model: Path | None = None  # a newer model.pt waiting for `lookalike reindex`
    problem: str | None = None  # why the model at *key* cannot serve: not retried per request

    @property
    def encoder(self) -> TorchEncoder:
        return self.engine.encoder


class Backend:
    """The store and the :class:`Serving` snapshot of one app, shared by its request threads.

    Two things are swapped, each under the one lock: the store, when a catalog that was
    opened read-only can be written again, and the snapshot, when the model file or the
    model that built the index changes.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._reopen_at = 0.0
        self._serving: Serving | None = None
        self._codebooks: Codebooks | None = None
        self._local = threading.local()

    # -- what to tell a person who has not indexed anything yet -------------------------

    def command(self, action: str = "index") -> str:
        """A ``lookalike`` command line for this data dir, e.g. ``lookalike index FOLDER``."""
        default = Path(os.path.abspath(DEFAULT_DATA_DIR))
        data_dir = "" if self.data_dir == default else f" --data-dir {self.data_dir}"
        return f"lookalike{data_dir} {action} FOLDER"

    def reencode_advice(self) -> str:
        return reencode_advice(self.command("index --reencode"),
                               "set LOOKALIKE_MODEL to the model that built the index")

    # -- the store --------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The data dir's store, opened (and its catalog migrated) on first use.

        A catalog that could only be opened read-only (a full disk, a read-only folder)
        is tried again every REOPEN_SECONDS: once space is freed, or a writer's
        shared-memory file appears, the app writes again, or sees what the writer commits.
        """
        store = self._store
        if store is not None and (store.access == READ_WRITE
                                  or time.monotonic() < self._reopen_at):
            return store
        with self._lock:
            if self._store is None or (self._store.access < READ_WRITE
                                       and time.monotonic() >= self._reopen_at):
                try:
                    fresh = self.settings.open_store()
                except SchemaError as exc:
                    raise NotReady(str(exc)) from exc
                if self._store is None or fresh.access > self._store.access:
                    # Nothing built on the old store may outlive it (the engine holds it);
                    # its connections are left to close with it, as other threads may use them.
                    self._store, self._serving, self._codebooks = fresh, None, None
                else:
                    fresh.close()
                self._reopen_at = time.monotonic() + REOPEN_SECONDS
        return self._store

    # -- the snapshot -------------------------------------------------------------------------

    def serving(self) -> Serving:
        """The snapshot for the data dir as it is now: loaded (``indexer.encoding.load_serving``)
        when the model file or the model that built the index changed; NotReady without a
        usable model. It may have no index yet: :meth:`ready` asks for one."""
        store = self.store
        key = self._key(store)
        current = self._serving
        if current is None or current.key != key or current.store is not store:
            with self._lock:
                store = self._store  # a reopen may have replaced it meanwhile
                current = self._serving
                if current is None or current.key != key or current.store is not store:
                    current = self._serving = self._load(store, key)
        if current.problem is not None:
            raise NotReady(current.problem)
        self._prepare_thread()
        return current

    def ready(self) -> tuple[Serving, VectorIndex]:
        """The snapshot and an index that exists, holds vectors, and was built by its model;
        else NotReady saying what to run."""
        serving = self.serving()
        try:
            if serving.engine.index().ntotal == 0:
                raise NotReady(f"The collection is empty. Run `{self.command()}` on a folder "
                               "of images.")
            index = serving.engine.checked_index()
        except VectorIndexError as exc:
            raise NotReady(f"No index yet ({exc}). Run `{self.command()}` to index your "
                           "images.") from exc
        except ModelMismatch as exc:
            raise NotReady(f"{str(exc)[0].upper()}{str(exc)[1:]}. "
                           + self.reencode_advice()) from exc
        return serving, index

    def readiness(self) -> str | None:
        """None when searches can run, else the message saying what to do."""
        try:
            self.ready()
        except NotReady as exc:
            return str(exc)
        return None

    def loaded(self) -> Serving | None:
        """The snapshot in use, if one was loaded; loads nothing."""
        current = self._serving
        return current if current is not None and current.engine is not None else None

    def _key(self, store: Store) -> tuple:
        """What the snapshot depends on: the model file, and the model that built the index."""
        key = file_key(store.model_path)
        if key is None:
            if self.settings.model_is_explicit:  # LOOKALIKE_MODEL names a file that is not there
                raise NotReady(f"No model at {store.model_path} (LOOKALIKE_MODEL). Train one "
                               f"with `{self.command(f'train -o {store.model_path}')}`.")
            raise NotReady(f"No model yet at {store.model_path}. Run `{self.command()}` to "
                           "train one on your images and index them.")
        return key, None if self.settings.model_is_explicit else store.index_model()

    def _load(self, store: Store, key: tuple) -> Serving:
        path, device = store.model_path, self.settings.device
        try:
            resolve_device(device)
        except RuntimeError as exc:  # a setting to change, not a model to retrain
            return Serving(key, store, problem=f"{exc}: LOOKALIKE_DEVICE is {device!r}; set "
                           "it to 'cpu' or 'auto' (CUDA when present).")
        try:
            if self.settings.model_is_explicit:
                encoder, waiting = TorchEncoder.from_path(path, device), None
            else:
                encoder, waiting = load_serving(store, path, device)
        except (CheckpointError, RuntimeError) as exc:
            return Serving(key, store, problem=f"The model at {path} cannot be loaded ({exc}). "
                           f"Train a new one with `{self.command('train')}`, then re-encode with "
                           f"`{self.command('index --reencode')}`.")
        return Serving(key, store, SearchEngine(store, encoder),
                       store.model_id_of(encoder.sha256), waiting)

    def _prepare_thread(self) -> None:
        """CPU settings that live per thread, applied once in each request thread.

        Flush-to-zero of denormals (which make a trained model's convolutions
        up to ~100x slower) is a per-thread CPU flag, and OpenMP team sizes
        are per-thread too, so setting them where the model was loaded does
        not reach waitress's worker threads.
        """
        if getattr(self._local, "prepared", False):
            return
        torch.set_flush_denormal(True)
        threads = self.settings.inference_threads
        if threads > 0:
            torch.set_num_threads(threads)
            faiss.omp_set_num_threads(threads)
        self._local.prepared = True

    # -- what the views ask of it ---------------------------------------------------------------

    def indexing_encoder(self) -> TorchEncoder:
        """The model a re-index encodes with: the data dir's own, also while the previous
        one still serves searches (``Serving.waiting_model``)."""
        serving = self.serving()
        if serving.waiting_model is None:
            return serving.encoder
        try:
            return TorchEncoder.from_path(serving.waiting_model, self.settings.device)
        except (CheckpointError, RuntimeError) as exc:
            raise NotReady(f"The model at {serving.waiting_model} cannot be loaded ({exc}).") \
                from exc

    def check_same_model(self, serving: Serving, row: ImageRecord) -> None:
        """Codes of another model decode and compare as noise: refuse them instead."""
        model_id = serving.model_id
        if model_id is None:  # the snapshot predates the model's first row: ask the catalog
            model_id = self.store.model_id_of(serving.encoder.sha256)
        if row.model_id != model_id:
            raise NotReady(f"Image {row.id} was encoded by another model. "
                           + self.other_model_message(serving))

    def other_model_message(self, serving: Serving | None = None) -> str:
        waiting = serving.waiting_model if serving is not None else None
        if waiting is not None:
            return (f"It is being re-encoded with the new model at {waiting}; "
                    "searches use the previous one until every image is (run "
                    f"`{self.command('reindex').removesuffix(' FOLDER')}` if none is running).")
        return (f"The catalog was encoded with a different model than the one at "
                f"{self.store.model_path}, so their codes cannot be compared. "
                + self.reencode_advice())

    @property
    def codebooks(self) -> Codebooks:
        """The data dir's PQ codebooks, the ones ``lookalike compress`` uses too."""
        if self._codebooks is None:
            store = self.store  # outside the lock: opening the store takes it
            with self._lock:
                if self._codebooks is None:
                    self._codebooks = Codebooks(store.data_dir, lambda: store)
        return self._codebooks

    def codebook(self, checkpoint_sha256: str) -> ProductQuantizer:
        """The loaded model's codebook, trained on first use; NotReady with too few codes."""
        try:
            return self.codebooks.get_or_train(checkpoint_sha256)
        except TooFewCodes as exc:
            raise NotReady(f"{exc}. Run `{self.command()}` first, or use another dtype.") from exc

    def record(self, image_id: int) -> ImageRecord:
        """One catalog row by id; needs no model, so metadata and files work without one."""
        return self.store.record(image_id)

    def close(self) -> None:
        """Release the database connections (tests create many apps)."""
        if self._store is not None:
            self._store.close()


def current_backend() -> Backend:
    """The backend of the app handling this request."""
    return current_app.extensions["lookalike"]


def current_settings() -> Settings:
    """The settings of the app handling this request: the one way the web reads a setting."""
    return current_backend().settings
