"""search.library's folders (the tree the folder filter can choose from, with subtree counts)
and the stats' word on the index."""
from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import insert

from search.catalog import ImageRecord, ModelRecord
from search.library import Filters, collect_stats, folders, list_images
from search.store import Store
from search.vector_index import VectorIndex


def store_with(tmp_path, paths: list[str]) -> Store:
    store = Store.open(tmp_path)
    with store.sessions() as s, s.begin():
        s.execute(insert(ModelRecord), [dict(id=1, kind="ae", config={}, checkpoint_path="m",
                                             checkpoint_sha256="x", latent_dim=4)])
        s.execute(insert(ImageRecord), [dict(
            path=p, sha256=f"{i:064x}", size=1, mtime=0.0, width=1, height=1, model_id=1,
            code=b"", reconstruction_error=0.0, indexed_at=datetime(2026, 1, 1))
            for i, p in enumerate(paths)])
    return store


def test_folders_from_the_shared_parent_down_with_subtree_counts(tmp_path):
    store = store_with(tmp_path, ["/lib/photos/2020/a.jpg", "/lib/photos/2020/b.jpg",
                                  "/lib/photos/2021/trip/c.jpg", "/lib/photos/2021/d.jpg"])
    try:
        assert folders(store) == [("/lib/photos", 4), ("/lib/photos/2020", 2),
                                  ("/lib/photos/2021", 2), ("/lib/photos/2021/trip", 1)]
        assert list_images(store, Filters(folder="/lib/photos/2021")).total == 2
        assert list_images(store, Filters(folder="/lib/photos/202")).total == 0
    finally:
        store.close()


def test_unrelated_trees_are_listed_from_their_own_tops(tmp_path):
    store = store_with(tmp_path, ["/a/x/1.png", "/b/y/2.png", "/b/y/z/3.png"])
    try:
        assert folders(store) == [("/a/x", 1), ("/b/y", 2), ("/b/y/z", 1)]
    finally:
        store.close()


def test_stats_say_what_the_index_is_without_loading_it_unless_the_file_changed(tmp_path):
    """publish_index records the index's facts; stats read them (no FAISS: `lookalike
    stats` starts fast), and load the file only when it is not the one recorded."""
    store = store_with(tmp_path, ["/lib/a.jpg", "/lib/b.jpg"])
    try:
        index = VectorIndex.create(4)
        index.add(np.array([1, 2]), np.eye(4, dtype=np.float32)[:2])
        store.publish_index(index)
        assert store.index_facts() == {"index_type": "IndexFlatIP", "index_vectors": 2,
                                       "metric": "cosine"}
        assert collect_stats(store)["index_vectors"] == 2

        bigger = VectorIndex.create(4)  # the file replaced behind the catalog's back
        bigger.add(np.array([1, 2, 3]), np.eye(4, dtype=np.float32)[:3])
        bigger.save(store.index_path)
        assert store.index_facts() is None
        assert collect_stats(store)["index_vectors"] == 3  # loaded: the file's own word

        store.index_path.unlink()
        assert store.index_facts() is None and collect_stats(store)["index_vectors"] == 0
    finally:
        store.close()
