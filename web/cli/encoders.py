"""What the commands that use a model share: the encoder, the search engine over the
index, an image read at the model's size; each failure as the one line a user reads."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from indexer.encoding import TorchEncoder, load_serving
from indexer.images import ImageDecodeError, load_image
from indexer.model import CheckpointError, resolve_device
from search.engine import ModelMismatch, SearchEngine, reencode_advice
from search.vector_index import VectorIndexError

from .context import Context


def chosen_device(obj: Context, device: str | None = None) -> str:
    """*device*, else ``LOOKALIKE_DEVICE``'s; refused at once where it is not there."""
    device = device or obj.settings.device
    try:
        resolve_device(device)
    except RuntimeError as exc:  # CUDA asked for where there is none
        raise click.ClickException(f"{exc} (device {device!r}: --device or LOOKALIKE_DEVICE)"
                                   ) from exc
    return device


def no_model(obj: Context, exc: CheckpointError) -> click.ClickException:
    return click.ClickException(
        f"{exc}. Train one first: lookalike --data-dir {obj.data_dir} train FOLDER")


def load_encoder(obj: Context, model: Path | None, device: str | None = None) -> TorchEncoder:
    """*model* or the data dir's, on *device* or ``LOOKALIKE_DEVICE``'s."""
    device = chosen_device(obj, device)
    try:
        return TorchEncoder.from_path(model or obj.settings.model_path, device)
    except CheckpointError as exc:
        raise no_model(obj, exc) from exc


def serving_encoder(obj: Context, model: Path | None) -> TorchEncoder:
    """The encoder that compares with the index: *model* when given, else the data dir's
    model, or the earlier one that built the index while the new one's re-encode has not
    finished (``indexer.encoding.load_serving``; the user is told)."""
    if model is not None or obj.settings.model_is_explicit or not obj.settings.has_catalog:
        return load_encoder(obj, model)
    device = chosen_device(obj)
    try:
        encoder, waiting = load_serving(obj.existing_store(), obj.settings.model_path, device)
    except CheckpointError as exc:
        raise no_model(obj, exc) from exc
    if waiting is not None:
        click.echo(f"note: searching with the model that built the index; the newer {waiting} "
                   f"takes over once `lookalike --data-dir {obj.data_dir} reindex` has "
                   "re-encoded every image", err=True)
    return encoder


def checked_engine(obj: Context, encoder: TorchEncoder) -> SearchEngine:
    """A search engine over the data dir's index, refused when another model built it."""
    engine = SearchEngine(obj.existing_store(), encoder)
    try:
        engine.checked_index()
    except VectorIndexError as exc:
        raise click.ClickException(
            f"{exc}. Index a folder first: lookalike --data-dir {obj.data_dir} index FOLDER"
        ) from exc
    except ModelMismatch as exc:
        raise click.ClickException(f"{exc}. " + reencode_advice(
            f"lookalike --data-dir {obj.data_dir} index --reencode FOLDER",
            "pass --model with the checkpoint that built it")) from exc
    return engine


def read_image(path: Path, size: int) -> np.ndarray:
    """An image the user named, as the model's input, or a ClickException saying why not."""
    try:
        return load_image(path, size)
    except ImageDecodeError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
