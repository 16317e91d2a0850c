"""The map's layout: fitted once and kept with the catalog version; a new image is placed by
the fitted transform and moves no other; enough new ones, or another model, fit it anew."""
from __future__ import annotations

import shutil

import numpy as np

from search.map import MAP_FILE, REFIT_SHARE, current_layout
from search.store import Store

from ..conftest import index_into, make_model


def model_sha(store: Store) -> str:
    return store.index_model()


def test_new_images_are_placed_without_moving_the_others(indexed, collection):
    store = Store.open(indexed)
    try:
        sha = model_sha(store)
        first = current_layout(store, sha)
        assert sorted(first.ids.tolist()) == sorted(store.catalog_ids())
        assert first.xy.shape == (len(first.ids), 2) and np.isfinite(first.xy).all()
        assert (indexed / MAP_FILE).is_file()
        again = current_layout(store, sha)  # from the file: the same map
        np.testing.assert_array_equal(again.xy, first.xy)

        source = sorted(collection.rglob("*.png"))[0]
        shutil.copy(source, collection / "a-copy.png")
        (sorted(collection.rglob("*.png"))[5]).unlink()
        index_into(indexed, collection)
        placed = current_layout(store, sha, first)
        assert placed.fitted_on == first.fitted_on  # not fitted again
        assert sorted(placed.ids.tolist()) == sorted(store.catalog_ids())
        before = dict(zip(first.ids.tolist(), map(tuple, first.xy)))
        after = dict(zip(placed.ids.tolist(), map(tuple, placed.xy)))
        assert all(after[i] == before[i] for i in after if i in before)  # nobody moved
        copy_id = next(iter(set(after) - set(before)))
        source_id = next(i for i, p in store.file_facts(list(after)).items()
                         if p[0] == str(source))
        np.testing.assert_allclose(after[copy_id], after[source_id], atol=1e-5)  # same bytes

        (collection / "a-copy.png").unlink()  # only a removal since
        index_into(indexed, collection)
        fewer = current_layout(store, sha, placed)
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
