"""The collection as a map: every indexed image placed in 2-D by a projection of its code.

Look-alike images have close codes, so they land close together: the map
shows what the model learned, as the seed lecture's autoencoder-vs-PCA
picture does. Two projections, of the normalised codes:

* ``umap`` (McInnes et al. 2018, umap-learn), the default from ``UMAP_FROM`` images:
  it keeps each image's neighbours two to eight times as well as PCA
  (BENCHMARKS.md, "The map"); fitted on at most ``FIT_SAMPLE`` codes,
  the others placed among their nearest fitted neighbours;
* ``pca``, the seed's baseline: always there, instant, and the default for a
  handful of images (UMAP's neighbourhoods need a crowd, and its first fit in
  a process compiles for seconds).

A layout is fitted once and kept with the catalog version and model it belongs to
(``DATA_DIR/map-<method>.npz``): images indexed later are placed without moving the
others (PCA: its fitted transform; UMAP: the weighted mean of their nearest fitted
neighbours' places), and the layout is fitted anew when the share of images it never
saw passes ``REFIT_SHARE`` (or the model changed). A UMAP fit takes a minute and about a
gigabyte at 100,000 images, so the web app makes it in the background when the map is
first asked for (PCA meanwhile), not the index run, whose memory stays the job's own.
"""
from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from .catalog import ImageRecord, id_chunks
from .files import replace_atomically
from .store import Store
from .vector_index import nearest, normalise

log = logging.getLogger(__name__)

METHODS = ("umap", "pca")
UMAP_FROM = 200  # images from which the default is UMAP
UMAP_LEAST = 5  # fewer images than this are laid out by PCA even when UMAP is asked for
REFIT_SHARE = 0.2  # fit again once this share of the images arrived after the fit
FIT_SAMPLE = {"pca": 20_000, "umap": 100_000}  # codes a fit sees at most (seeded sample)
NEIGHBOURS = 10  # fitted images a new one is placed among (UMAP)
ANCHORS = 20_000  # fitted images a new one's neighbours are looked for in, at most


def default_method(images: int) -> str:
    return "umap" if images >= UMAP_FROM else "pca"


@dataclass(frozen=True)
class Layout:
    """Where each image of one model's codes lies, and what placing a new one needs."""

    model: str  # sha256 of the checkpoint whose codes these are
    catalog_version: int
    method: str
    fitted_on: int  # images the fit saw, or placed among their neighbours then
    ids: np.ndarray  # (n,) int64, ascending
    xy: np.ndarray  # (n, 2) float32
    mean: np.ndarray  # PCA: (d,); UMAP: empty
    components: np.ndarray  # PCA: (2, d); UMAP: empty
    fitted: np.ndarray  # UMAP: the ids whose places are the fit's own (the anchors)
    placed: int = 0  # images placed since the fit: past REFIT_SHARE of fitted_on, fit anew

    def place(self, store: Store, codes: np.ndarray) -> np.ndarray:
        """Where codes the fit never saw lie on this map."""
        unit = normalise(codes)
        if self.method == "pca":
            return ((unit - self.mean) @ self.components.T).astype(np.float32)
        anchors, codes = _codes(store, _anchors(self.fitted), self.model)
        anchor_xy = self.xy[np.searchsorted(self.ids, anchors)]
        return place_among(unit, normalise(codes), anchor_xy)


def _anchors(fitted: np.ndarray) -> np.ndarray:
    """The fitted points new ones are placed among: a seeded sample of at most ANCHORS
    (the nearest of 20,000 is near enough; all 100,000 would cost five times as much)."""
    if len(fitted) <= ANCHORS:
        return fitted
    return np.sort(np.random.default_rng(0).choice(fitted, ANCHORS, replace=False))


def place_among(unit: np.ndarray, anchors: np.ndarray, anchor_xy: np.ndarray) -> np.ndarray:
    """Each (normalised) code at the weighted mean place of its NEIGHBOURS most similar
    anchors: a copy lands on its original, an image between two kinds between their
    regions."""
    if len(anchors) == 0 or len(unit) == 0:
        return np.zeros((len(unit), 2), np.float32)
    sims, near = nearest(unit, anchors, min(NEIGHBOURS, len(anchors)))
    # Inverse squared distance between unit codes (Shepard's weighting): an exact copy
    # (distance 0) takes its original's place.
    weights = 1.0 / (np.maximum(2.0 - 2.0 * sims, 0.0) + 1e-9)
    return ((anchor_xy[near] * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)
            ).astype(np.float32)


def fit(ids: np.ndarray, codes: np.ndarray, model: str, catalog_version: int,
        method: str = "pca") -> Layout:
    """The layout of these codes by *method*, fitted on a seeded sample of at most
    FIT_SAMPLE of them (the others placed as images indexed later would be)."""
    unit = normalise(codes)
    pick = np.arange(len(unit))
    if len(unit) > FIT_SAMPLE[method]:
        pick = np.sort(np.random.default_rng(0).choice(len(unit), FIT_SAMPLE[method],
                                                       replace=False))
    umap_xy = _umap(unit[pick]) if method == "umap" and len(pick) >= UMAP_LEAST else None
    if umap_xy is not None:
        xy = np.empty((len(unit), 2), np.float32)
        xy[pick] = umap_xy
        rest = np.setdiff1d(np.arange(len(unit)), pick, assume_unique=True)
        anchors = _anchors(pick)
        xy[rest] = place_among(unit[rest], unit[anchors], xy[anchors])
        empty = np.zeros(0, np.float32)
        return Layout(model, catalog_version, "umap", len(ids), ids.astype(np.int64), xy,
                      empty, empty.reshape(2, 0), ids[pick].astype(np.int64))
    sample = unit[pick]
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    components = vt[:2] if len(vt) >= 2 else np.eye(2, unit.shape[1], dtype=np.float32)
    # A sign convention, so a refit of the same codes does not mirror the map.
    components = components * np.sign(components[:, :1] + 1e-12)
    xy = ((unit - mean) @ components.T).astype(np.float32)
    return Layout(model, catalog_version, "pca", len(ids), ids.astype(np.int64), xy,
                  mean.astype(np.float32), components.astype(np.float32),
                  np.zeros(0, np.int64))


def _umap(unit: np.ndarray) -> np.ndarray | None:
    """UMAP of normalised codes: Euclidean distance between unit vectors ranks neighbours
    as the cosine does, and is the metric umap-learn compiles fastest. Not seeded: a
    seed makes it run on one core. Imported here: numba and umap-learn take a second
    to import and compile for seconds, which only a fit needs."""
    try:
        import umap  # heavy (numba): only a fit needs it, not the app or the CLI

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on threads and spectral init
            reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(unit) - 1),
                                init="spectral" if len(unit) > 16 else "random")
            xy = np.asarray(reducer.fit_transform(unit), np.float32)
    except Exception as exc:  # numba with nowhere to cache, a broken install: PCA still maps
        log.warning("UMAP failed, the map is PCA's instead: %s", exc)
        return None
    return xy - xy.mean(axis=0)


def current_layout(store: Store, model: str, kept: Layout | None = None,
                   method: str | None = None, may_fit: bool = True) -> Layout | None:
    """The map of *model*'s codes by *method* (None: ``default_method`` for the library's
    size) as the catalog is now: *kept* or the saved one, whichever is current (another
    process may have saved one), else the newer of them brought up to date by placing new
    images and dropping gone ones, or fitted anew (see the module's docstring). None
    instead of a UMAP fit when not *may_fit*: the web app fits in the background
    (``web.collection_map``). Saved when it changed, if the data dir takes it."""
    version = store.catalog_version()
    if (kept is not None and (kept.model, kept.catalog_version) == (model, version)
            and method in (None, kept.method)):
        return kept  # every request of the web app: no need to list the catalog's ids
    model_id = store.model_id_of(model)
    present = np.array(sorted(store.catalog_ids(model_id)) if model_id is not None else [],
                       dtype=np.int64)
    method = method or default_method(len(present))
    if method == "umap" and len(present) < UMAP_LEAST:
        method = "pca"  # too few for any neighbourhood: the answer says what it is
    if kept is None or (kept.model, kept.method) != (model, method):
        kept = None
    if kept is None or kept.catalog_version != version:
        saved = _load(store.data_dir, model, method)
        if saved is not None and (kept is None or saved.catalog_version >= kept.catalog_version):
            kept = saved
    if kept is not None and kept.catalog_version == version:
        return kept
    layout = kept
    new = np.setdiff1d(present, layout.ids, assume_unique=True) if layout is not None else present
    if (layout is None or len(present) == 0
            or layout.placed + len(new) > REFIT_SHARE * max(layout.fitted_on, 1)):
        if method == "umap" and len(present) and not may_fit:
            return None
        ids, codes = _codes(store, present, model)
        layout = fit(ids, codes, model, version, method) if len(ids) else \
            _empty(model, version, method)
    else:
        keep = np.isin(layout.ids, present)
        layout = replace(layout, catalog_version=version, ids=layout.ids[keep],
                         xy=layout.xy[keep], fitted=layout.fitted[np.isin(layout.fitted, present)])
        new, codes = _codes(store, new, model)  # an image deleted meanwhile is left out
        if len(new):  # else only removals since
            ids = np.concatenate([layout.ids, new])
            xy = np.concatenate([layout.xy, layout.place(store, codes)])
            order = np.argsort(ids)
            layout = replace(layout, ids=ids[order], xy=xy[order],
                             placed=layout.placed + len(new))
    _save(store.data_dir, layout)
    return layout


def _empty(model: str, version: int, method: str) -> Layout:
    none = np.zeros(0, np.int64)
    return Layout(model, version, method, 0, none, np.zeros((0, 2), np.float32),
                  np.zeros(0, np.float32), np.zeros((2, 0), np.float32), none)


def _codes(store: Store, ids: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(the ids that still have *model*'s codes, those codes), in the order asked."""
    found = store.codes_of(ids.tolist(), model)
    there = np.array([i for i in ids.tolist() if i in found], dtype=np.int64)
    if not len(there):
        return there, np.zeros((0, 0), np.float32)
    return there, np.stack([found[int(i)] for i in there])


def map_file(data_dir: Path, method: str) -> Path:
    return Path(data_dir) / f"map-{method}.npz"


def _load(data_dir: Path, model: str, method: str) -> Layout | None:
    try:
        with np.load(map_file(data_dir, method), allow_pickle=False) as saved:
            if str(saved["model"]) != model or str(saved["method"]) != method:
                return None
            return Layout(model, int(saved["catalog_version"]), method,
                          int(saved["fitted_on"]), saved["ids"], saved["xy"], saved["mean"],
                          saved["components"], saved["fitted"], int(saved["placed"]))
    except (OSError, KeyError, ValueError):  # none yet, or an older or damaged one: fit anew
        return None


def _save(data_dir: Path, layout: Layout) -> None:
    """Keep the layout beside the index; a data dir that cannot be written keeps none
    (the map is fitted again next time; the web app keeps its own in memory meanwhile)."""
    out = io.BytesIO()
    np.savez(out, model=layout.model, method=layout.method,
             catalog_version=layout.catalog_version, fitted_on=layout.fitted_on,
             mean=layout.mean, components=layout.components, ids=layout.ids, xy=layout.xy,
             fitted=layout.fitted, placed=layout.placed)
    try:
        replace_atomically(map_file(data_dir, layout.method),
                           lambda tmp: Path(tmp).write_bytes(out.getvalue()), "map")
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
