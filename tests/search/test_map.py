"""The map's layout: fitted once and kept with the catalog version; a new image is placed
without moving the others (PCA: the fitted transform; UMAP: among its nearest fitted
neighbours); enough new ones, or another model, fit it anew; UMAP keeps neighbours
better than PCA."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from sqlalchemy import delete

from search.map import REFIT_SHARE, UMAP_FROM, current_layout, default_method, fit, map_file
from search.catalog import ImageRecord
from search.store import Store

from ..conftest import index_into, make_model


def model_sha(store: Store) -> str:
    return store.index_model()


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_new_images_are_placed_without_moving_the_others(indexed, collection, method):
    store = Store.open(indexed)
    try:
        sha = model_sha(store)
        first = current_layout(store, sha, method=method)
        assert first.method == method
        assert sorted(first.ids.tolist()) == sorted(store.catalog_ids())
        assert first.xy.shape == (len(first.ids), 2) and np.isfinite(first.xy).all()
        assert map_file(indexed, method).is_file()
        again = current_layout(store, sha, method=method)  # from the file: the same map
        np.testing.assert_array_equal(again.xy, first.xy)

        source = sorted(collection.rglob("*.png"))[0]
        shutil.copy(source, collection / "a-copy.png")
        (sorted(collection.rglob("*.png"))[5]).unlink()
        index_into(indexed, collection)
        placed = current_layout(store, sha, first, method=method)
        assert placed.fitted_on == first.fitted_on  # not fitted again
        assert sorted(placed.ids.tolist()) == sorted(store.catalog_ids())
        before = dict(zip(first.ids.tolist(), map(tuple, first.xy)))
        after = dict(zip(placed.ids.tolist(), map(tuple, placed.xy)))
        assert all(after[i] == before[i] for i in after if i in before)  # nobody moved
        copy_id = next(iter(set(after) - set(before)))
        source_id = next(i for i, p in store.file_facts(list(after)).items()
                         if p[0] == str(source))
        # The same bytes land on the original (UMAP: within its neighbours' spread).
        spread = np.ptp(first.xy, axis=0).max()
        tolerance = 1e-5 if method == "pca" else 0.05 * spread
        assert np.linalg.norm(np.subtract(after[copy_id], after[source_id])) <= tolerance

        (collection / "a-copy.png").unlink()  # only a removal since
        index_into(indexed, collection)
        fewer = current_layout(store, sha, placed, method=method)
        assert sorted(fewer.ids.tolist()) == sorted(store.catalog_ids())
        assert len(fewer.ids) == len(placed.ids) - 1
    finally:
        store.close()


def test_many_new_images_or_another_model_fit_the_map_anew(indexed, collection, tmp_path):
    store = Store.open(indexed)
    try:
        first = current_layout(store, model_sha(store))
        extra = tmp_path / "more"
        shutil.copytree(collection, extra)
        index_into(indexed, extra)  # twice the images: far past REFIT_SHARE
        assert len(store.catalog_ids()) > (1 + REFIT_SHARE) * first.fitted_on
        refit = current_layout(store, model_sha(store), first)
        assert refit.fitted_on == len(refit.ids) == len(store.catalog_ids())

        make_model(indexed / "model.pt", seed=5)
        index_into(indexed, collection, reencode=True)
        index_into(indexed, extra, reencode=True)
        other = current_layout(store, model_sha(store), refit)
        assert other.model != refit.model and other.fitted_on == len(other.ids)
    finally:
        store.close()


def saved_version(data_dir, method: str) -> int:
    with np.load(map_file(data_dir, method)) as saved:
        return int(saved["catalog_version"])


def test_a_current_saved_layout_is_taken_and_a_umap_fit_only_when_allowed(
        indexed, collection, tmp_path):
    """The web app asks without fitting UMAP (it fits in the background): None when a fit
    is needed, a placed layout when placing is enough; a layout another process saved is
    taken, not fitted again."""
    store = Store.open(indexed)
    try:
        sha = model_sha(store)
        assert current_layout(store, sha, method="umap", may_fit=False) is None
        assert not map_file(indexed, "umap").exists()
        kept = current_layout(store, sha, method="umap")  # the background fit
        assert saved_version(indexed, "umap") == store.catalog_version()

        source = sorted(collection.rglob("*.png"))[0]
        shutil.copy(source, collection / "one-more.png")
        index_into(indexed, collection)  # one image: placed, no fit needed
        placed = current_layout(store, sha, kept, method="umap", may_fit=False)
        assert placed is not None and placed.fitted_on == kept.fitted_on
        assert len(placed.ids) == len(kept.ids) + 1

        extra = tmp_path / "more"
        shutil.copytree(collection, extra)
        index_into(indexed, extra)  # twice the images: a fit is needed again
        assert current_layout(store, sha, placed, method="umap", may_fit=False) is None
        other = Store.open(indexed)  # another process fits and saves
        try:
            current_layout(other, sha, method="umap")
        finally:
            other.close()
        saved = np.load(map_file(indexed, "umap"))["xy"]
        taken = current_layout(store, sha, placed, method="umap", may_fit=False)
        np.testing.assert_array_equal(taken.xy, saved)  # read, not fitted again
    finally:
        store.close()


def test_images_added_a_few_at_a_time_fit_the_map_anew_in_the_end(indexed, collection):
    store = Store.open(indexed)
    try:
        first = current_layout(store, model_sha(store))
        sources = sorted(collection.rglob("*.png"))
        layout, added = first, 0
        while layout.fitted_on == first.fitted_on:
            added += 1  # one image a run: each is far below REFIT_SHARE on its own
            (collection / f"again-{added}.png").write_bytes(sources[added].read_bytes())
            index_into(indexed, collection)
            layout = current_layout(store, model_sha(store), layout)
            assert added <= REFIT_SHARE * first.fitted_on + 1
        assert added > REFIT_SHARE * first.fitted_on - 1 and layout.placed == 0
    finally:
        store.close()


def test_umap_asked_of_a_handful_of_images_is_pca_and_says_so(indexed):
    store = Store.open(indexed)
    try:
        sha = model_sha(store)
        keep = sorted(store.catalog_ids())[:3]
        with store.sessions() as s, s.begin():  # leave three images of this model
            s.execute(delete(ImageRecord).where(ImageRecord.id.not_in(keep)))
            store.mark_catalog_changed(s)
        layout = current_layout(store, sha, method="umap")
        assert layout.method == "pca" and len(layout.ids) == 3
        assert current_layout(store, sha, layout, method="umap") is layout  # settled
    finally:
        store.close()


def clustered(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes of 8 kinds of look-alikes, each kind a tight cloud."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 32)).astype(np.float32)
    kinds = rng.integers(0, 8, n)
    return centres[kinds] + 0.35 * rng.normal(size=(n, 32)).astype(np.float32), kinds


def neighbours_kept(codes: np.ndarray, xy: np.ndarray, k: int = 10) -> float:
    unit = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    near_codes = np.argsort(-sims, axis=1)[:, :k]
    near_map = np.argsort(d2, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near_codes, near_map)]))


def test_umap_is_the_default_for_a_library_and_keeps_neighbours_better_than_pca():
    assert default_method(UMAP_FROM - 1) == "pca" and default_method(UMAP_FROM) == "umap"
    codes, kinds = clustered(600)
    ids = np.arange(600)
    umap_xy = fit(ids, codes, "m", 1, "umap").xy
    pca_xy = fit(ids, codes, "m", 1, "pca").xy
    assert neighbours_kept(codes, umap_xy) > neighbours_kept(codes, pca_xy) + 0.05
    # Each kind is a region: a point's nearest point on the map is nearly always its kind.
    d2 = ((umap_xy[:, None] - umap_xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert np.mean(kinds[d2.argmin(axis=1)] == kinds) > 0.95
