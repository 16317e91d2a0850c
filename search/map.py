"""The collection as a map: every indexed image placed in 2-D by a projection of its code.

Look-alike images have close codes, so they land close together: the map
shows what the model learned, as the seed lecture's autoencoder-vs-PCA
picture does. The projection is PCA of the normalised codes (the seed's
baseline, with no extra dependency). It is fitted once and kept with the
catalog version and model it belongs to (``DATA_DIR/map.npz``): images
indexed later are placed by the same fitted transform, without moving the
others, and the layout is fitted anew when the share of images it never
saw passes ``REFIT_SHARE`` (or the model changed).
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from .catalog import ImageRecord, id_chunks
from .files import replace_atomically
from .store import Store
from .vector_index import normalise

log = logging.getLogger(__name__)

MAP_FILE = "map.npz"
METHOD = "pca"
REFIT_SHARE = 0.2  # fit again once this share of the images arrived after the fit
FIT_SAMPLE = 20_000  # codes the PCA is fitted on at most (seeded sample)


@dataclass(frozen=True)
class Layout:
    """Where each image of one model's codes lies, and the transform that put it there."""

    model: str  # sha256 of the checkpoint whose codes these are
    catalog_version: int
    fitted_on: int  # images the transform was fitted on
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d)
    ids: np.ndarray  # (n,) int64, ascending
    xy: np.ndarray  # (n, 2) float32

    method: str = METHOD

    def place(self, codes: np.ndarray) -> np.ndarray:
        """Where codes the fit never saw lie on this map."""
        return ((normalise(codes) - self.mean) @ self.components.T).astype(np.float32)


def fit(ids: np.ndarray, codes: np.ndarray, model: str, catalog_version: int) -> Layout:
    """PCA of the normalised codes (on a seeded sample of at most FIT_SAMPLE)."""
    unit = normalise(codes)
    sample = unit
    if len(unit) > FIT_SAMPLE:
        pick = np.random.default_rng(0).choice(len(unit), FIT_SAMPLE, replace=False)
        sample = unit[np.sort(pick)]
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    components = vt[:2] if len(vt) >= 2 else np.eye(2, unit.shape[1], dtype=np.float32)
    # A sign convention, so a refit of the same codes does not mirror the map.
    components = components * np.sign(components[:, :1] + 1e-12)
    xy = ((unit - mean) @ components.T).astype(np.float32)
    return Layout(model, catalog_version, len(ids), mean.astype(np.float32),
                  components.astype(np.float32), ids.astype(np.int64), xy)


def current_layout(store: Store, model: str, kept: Layout | None = None) -> Layout:
    """The map of *model*'s codes as the catalog is now: *kept* (or the saved one) when it
    is current, brought up to date by placing new images and dropping gone ones, or fitted
    anew (see the module's docstring). Saved when it changed, if the data dir takes it."""
    version = store.catalog_version()
    layout = kept if kept is not None and kept.model == model else _load(store.data_dir, model)
    if layout is not None and layout.catalog_version == version:
        return layout
    model_id = store.model_id_of(model)
    present = np.array(sorted(store.catalog_ids(model_id)) if model_id is not None else [],
                       dtype=np.int64)
    if layout is None or len(present) == 0:
        layout = _fitted(store, present, model, version)
    else:
        new = np.setdiff1d(present, layout.ids, assume_unique=True)
        if len(new) > REFIT_SHARE * max(layout.fitted_on, 1):
            layout = _fitted(store, present, model, version)
        else:
            keep = np.isin(layout.ids, present)
            ids = np.concatenate([layout.ids[keep], new])
            placed = layout.place(_codes(store, new, model)) if len(new) else \
                np.zeros((0, 2), np.float32)  # only removals since
            xy = np.concatenate([layout.xy[keep], placed])
            order = np.argsort(ids)
            layout = Layout(model, version, layout.fitted_on, layout.mean, layout.components,
                            ids[order], xy[order])
    _save(store.data_dir, layout)
    return layout


def _fitted(store: Store, ids: np.ndarray, model: str, version: int) -> Layout:
    codes = _codes(store, ids, model)
    if len(ids) == 0:
        return Layout(model, version, 0, np.zeros(0, np.float32), np.zeros((2, 0), np.float32),
                      ids, np.zeros((0, 2), np.float32))
    return fit(ids, codes, model, version)


def _codes(store: Store, ids: np.ndarray, model: str) -> np.ndarray:
    found = store.codes_of(ids.tolist(), model)
    if not found:
        return np.zeros((0, 0), np.float32)
    return np.stack([found[int(i)] for i in ids])


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / MAP_FILE


def _load(data_dir: Path, model: str) -> Layout | None:
    try:
        with np.load(_path(data_dir), allow_pickle=False) as saved:
            if str(saved["model"]) != model or str(saved["method"]) != METHOD:
                return None
            return Layout(model, int(saved["catalog_version"]), int(saved["fitted_on"]),
                          saved["mean"], saved["components"], saved["ids"], saved["xy"])
    except (OSError, KeyError, ValueError):  # none yet, or an older or damaged one: fit anew
        return None


def _save(data_dir: Path, layout: Layout) -> None:
    """Keep the layout beside the index; a data dir that cannot be written keeps none
    (the map is made again next time, and looks the same: the fit is seeded)."""
    out = io.BytesIO()
    np.savez(out, model=layout.model, method=layout.method,
             catalog_version=layout.catalog_version, fitted_on=layout.fitted_on,
             mean=layout.mean, components=layout.components, ids=layout.ids, xy=layout.xy)
    try:
        replace_atomically(_path(data_dir), lambda tmp: Path(tmp).write_bytes(out.getvalue()),
                           "map")
    except OSError as exc:
        log.warning("could not save the map layout: %s", exc)


@dataclass(frozen=True)
class MapFacts:
    """What a point may be coloured by: its folder, its file date, its reconstruction error."""

    folders: list[str]
    folder: np.ndarray  # index into folders
    date: np.ndarray  # seconds since the epoch (capture time, else mtime)
    reconstruction_error: np.ndarray


def map_facts(store: Store, ids: np.ndarray) -> MapFacts:
    """The colouring facts of these images, in the same order."""
    rows: dict[int, tuple[str, float, float]] = {}
    with store.sessions() as session:
        for chunk in id_chunks(ids.tolist()):
            for r in session.execute(
                    select(ImageRecord.id, ImageRecord.path, ImageRecord.taken_at,
                           ImageRecord.mtime, ImageRecord.reconstruction_error)
                    .where(ImageRecord.id.in_(chunk))):
                date = r.taken_at if r.taken_at is not None else r.mtime
                rows[r.id] = (str(Path(r.path).parent), date, r.reconstruction_error)
    folders = sorted({rows[int(i)][0] for i in ids if int(i) in rows})
    where = {f: n for n, f in enumerate(folders)}
    facts = [rows.get(int(i), ("", 0.0, 0.0)) for i in ids]
    return MapFacts(folders, np.array([where.get(f, -1) for f, _, _ in facts], np.int32),
                    np.array([d for _, d, _ in facts], np.float64),
                    np.array([e for _, _, e in facts], np.float32))
