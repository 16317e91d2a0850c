"""The per-app search backend: one store, one loaded model, one engine.

Loading a checkpoint and a FAISS index is far slower than answering a
query, so they are loaded once per app and shared by all request threads.
The model is reloaded when its file changes on disk (``lookalike train``
replaces it atomically); the engine itself reloads the index when an
indexer bumps the index generation. Nothing here is per request, so
there is nothing to close at request teardown; :meth:`Backend.close`
releases the database pool when the app is discarded.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import faiss
import torch
from flask import current_app

from indexer.compression import Codebooks, ProductQuantizer, TooFewCodes
from indexer.encoding import TorchEncoder, load_serving
from indexer.model import CheckpointError
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


class Backend:
    """Lazily opened store + model + engine for one app, safe to share between threads."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir
        self.device = settings.device
        self.threads = settings.inference_threads
        self._store: Store | None = None
        self._codebooks: Codebooks | None = None
        self._engine: SearchEngine | None = None
        self._model_key: tuple | None = None
        # A newer model.pt than the one serving, waiting for `lookalike reindex` to re-encode.
        self.waiting_model: Path | None = None
        self._model_id: tuple[SearchEngine, int] | None = None
        self._verified: VectorIndex | None = None
        self._broken: tuple[tuple, str] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._reopen_at = 0.0

    # -- what to tell a person who has not indexed anything yet -------------------------

    def command(self, action: str = "index") -> str:
        """A ``lookalike`` command line for this data dir, e.g. ``lookalike index FOLDER``."""
        default = Path(os.path.abspath(DEFAULT_DATA_DIR))
        data_dir = "" if self.data_dir == default else f" --data-dir {self.data_dir}"
        return f"lookalike{data_dir} {action} FOLDER"

    # -- resources ------------------------------------------------------------------------

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
                    self._store, self._engine, self._codebooks = fresh, None, None
                    self._model_key = self._model_id = self._verified = None
                else:
                    fresh.close()
                self._reopen_at = time.monotonic() + REOPEN_SECONDS
        return self._store

    def search_engine(self) -> SearchEngine:
        """The engine with the model that built the index (``indexer.encoding.load_serving``),
        reloaded when the model file changes or a re-encode switches the index to another."""
        store = self.store
        key = file_key(store.model_path)
        if key is None:
            if self.settings.model_is_explicit:  # LOOKALIKE_MODEL names a file that is not there
                raise NotReady(f"No model at {store.model_path} (LOOKALIKE_MODEL). Train one "
                               f"with `{self.command(f'train -o {store.model_path}')}`.")
            raise NotReady(f"No model yet at {store.model_path}. Run `{self.command()}` to "
                           "train one on your images and index them.")
        key = (key, None if self.settings.model_is_explicit else store.index_model())
        if self._engine is not None and key == self._model_key:
            self._prepare_thread()
            return self._engine
        with self._lock:
            if self._broken is not None and self._broken[0] == key:
                raise NotReady(self._broken[1])  # same unreadable file: do not reload per request
            if self._engine is None or key != self._model_key:
                try:
                    encoder, self.waiting_model = self._load_encoder(store)
                except NotReady as exc:
                    self._broken = (key, str(exc))
                    raise
                self._engine = SearchEngine(store, encoder)
                self._model_key, self._broken = key, None
        self._prepare_thread()
        return self._engine

    def indexing_encoder(self) -> TorchEncoder:
        """The model a re-index encodes with: the data dir's own, also while the previous
        one still serves searches (``waiting_model``)."""
        engine = self.search_engine()
        if self.waiting_model is None:
            return engine.encoder
        try:
            return TorchEncoder.from_path(self.waiting_model, self.device)
        except (CheckpointError, RuntimeError) as exc:
            raise NotReady(f"The model at {self.waiting_model} cannot be loaded ({exc}).") from exc

    def _load_encoder(self, store: Store) -> tuple[TorchEncoder, Path | None]:
        path = store.model_path
        try:
            if self.settings.model_is_explicit:
                return TorchEncoder.from_path(path, self.device), None
            return load_serving(store, path, self.device)
        except (CheckpointError, RuntimeError) as exc:
            raise NotReady(f"The model at {path} cannot be loaded ({exc}). Train a new one "
                           f"with `{self.command('train')}`, then re-encode with "
                           f"`{self.command('index --reencode')}`.") from exc

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
        if self.threads > 0:
            torch.set_num_threads(self.threads)
            faiss.omp_set_num_threads(self.threads)
        self._local.prepared = True

    def ready_search_engine(self) -> tuple[SearchEngine, VectorIndex]:
        """An engine whose index exists, has vectors, and fits the model; else NotReady."""
        engine = self.search_engine()
        try:
            index = engine.index()
        except VectorIndexError as exc:
            raise NotReady(f"No index yet ({exc}). Run `{self.command()}` to index your "
                           "images.") from exc
        if index.ntotal == 0:
            raise NotReady(f"The collection is empty. Run `{self.command()}` on a folder "
                           "of images.")
        if self._verified is not index:  # once per loaded index: is it this model's?
            try:
                engine.check_index(index)
            except ModelMismatch as exc:
                raise NotReady(f"{str(exc)[0].upper()}{str(exc)[1:]}. "
                               + self.reencode_advice()) from exc
            self._verified = index
        return engine, index

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

    def model_id(self, engine: SearchEngine) -> int | None:
        """The catalog's id for the loaded checkpoint; None until an indexer has used it."""
        cached = self._model_id
        if cached is not None and cached[0] is engine:
            return cached[1]
        found = self.store.model_id_of(getattr(engine.encoder, "sha256", None))
        if found is not None:
            self._model_id = (engine, found)
        return found

    def check_same_model(self, engine: SearchEngine, row: ImageRecord) -> None:
        """Codes of another model decode and compare as noise: refuse them instead."""
        if row.model_id != self.model_id(engine):
            raise NotReady(f"Image {row.id} was encoded by another model. "
                           + self.other_model_message())

    def other_model_message(self) -> str:
        if self.waiting_model is not None:
            return (f"It is being re-encoded with the new model at {self.waiting_model}; "
                    "searches use the previous one until every image is (run "
                    f"`{self.command('reindex').removesuffix(' FOLDER')}` if none is running).")
        return (f"The catalog was encoded with a different model than the one at "
                f"{self.store.model_path}, so their codes cannot be compared. "
                + self.reencode_advice())

    def reencode_advice(self) -> str:
        return reencode_advice(self.command("index --reencode"),
                               "set LOOKALIKE_MODEL to the model that built the index")

    def record(self, image_id: int) -> ImageRecord:
        """One catalog row by id; needs no model, so metadata and files work without one."""
        return self.store.record(image_id)

    def readiness(self) -> str | None:
        """None when searches can run, else the message saying what to do."""
        try:
            self.ready_search_engine()
        except NotReady as exc:
            return str(exc)
        return None

    def loaded_model_sha256(self) -> str | None:
        """The sha256 of the checkpoint in use, once one has been loaded."""
        engine = self._engine
        return getattr(engine.encoder, "sha256", None) if engine is not None else None

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
