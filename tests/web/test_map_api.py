"""GET /api/map: every indexed image once, placed in [-1, 1] with its folder, date and
reconstruction error; look-alikes (the same shape) lie closer than chance; a new image
appears without the others moving."""
from __future__ import annotations

import base64
import time
from collections import Counter

import numpy as np

from ..synthetic import SHAPES
from .conftest import assert_error, image_id, index_more, ok_json


def test_every_image_is_placed_once_with_its_facts(client, library):
    body = ok_json(client, "/api/map")
    ids = body["ids"]
    assert body["method"] == "pca" and body["count"] == len(ids) == len(library.all_files())
    assert len(set(ids)) == len(ids)
    xy = np.array([body["x"], body["y"]]).T
    assert np.abs(xy).max() <= 1.0 and np.abs(xy).max() > 0.99  # fitted into [-1, 1]²
    np.testing.assert_allclose(xy.min(axis=0) + xy.max(axis=0), 0, atol=1e-4)  # centred
    shape_of = {image_id(library.data_dir, p): shape for shape, paths in library.files.items()
                for p in paths}
    assert {body["folders"][f] for f in body["folder"]} == {
        str(p.parent) for p in library.all_files()}
    assert all(d > 0 for d in body["date"]) and all(e >= 0 for e in body["reconstruction_error"])
    # Each image's nearest neighbour on the map is mostly of its own shape (chance: 1/3).
    known = [i for i, image in enumerate(ids) if image in shape_of]
    same = 0
    for i in known:
        distance = np.linalg.norm(xy[known] - xy[i], axis=1)
        distance[known.index(i)] = np.inf
        same += shape_of[ids[known[int(np.argmin(distance))]]] == shape_of[ids[i]]
    assert same / len(known) > 1.5 / len(SHAPES), Counter(shape_of.values())


def test_a_new_image_joins_and_the_others_stay(apps, own_library):
    client = apps(own_library.data_dir).test_client()
    before = ok_json(client, "/api/map")
    folder = own_library.collection / "new"
    folder.mkdir()
    (folder / "again.png").write_bytes(own_library.files["circle"][0].read_bytes())
    index_more(own_library.data_dir, folder)
    after = ok_json(client, "/api/map")
    assert after["count"] == before["count"] + 1
    new = dict(zip(after["ids"], zip(after["x"], after["y"])))
    was = np.array([before["x"], before["y"]]).T
    now = np.array([new[i] for i in before["ids"]])
    # The answer is fitted into [-1, 1]² each time (moved and scaled alike on both axes):
    # up to that, every image that was there is where it was.
    scale = np.ptp(now, axis=0).max() / np.ptp(was, axis=0).max()
    shift = (now - scale * was).mean(axis=0)
    np.testing.assert_allclose(now, scale * was + shift, atol=2e-4)


def test_packed_columns_are_the_same_numbers(client):
    plain = ok_json(client, "/api/map")
    packed = ok_json(client, "/api/map", packed="true")
    dtypes = {"ids": "<i8", "x": "<f4", "y": "<f4", "folder": "<i4", "date": "<f8",
              "reconstruction_error": "<f4"}
    for name, dtype in dtypes.items():
        column = np.frombuffer(base64.b64decode(packed[name]), dtype)
        assert len(column) == plain["count"]
        np.testing.assert_allclose(column, plain[name], rtol=1e-5, atol=1e-5)
    assert packed["folders"] == plain["folders"] and packed["method"] == plain["method"]


def until_umap(client, timeout: float = 120.0) -> dict:
    """GET /api/map?method=umap until the background fit is done; the answers meanwhile
    are PCA's, saying a UMAP layout is being made."""
    deadline = time.monotonic() + timeout
    while True:
        body = ok_json(client, "/api/map", method="umap")
        if body["method"] == "umap":
            assert body["fitting"] is None
            return body
        assert body["fitting"] == "umap" and body["method"] == "pca"
        assert time.monotonic() < deadline, "the UMAP fit did not finish"
        time.sleep(0.2)


def test_either_method_may_be_asked_for(client):
    pca = ok_json(client, "/api/map", method="pca")
    first = ok_json(client, "/api/map", method="umap")  # the fit starts, not in the request
    assert (first["method"], first["fitting"]) == ("pca", "umap")
    assert first["count"] == pca["count"]
    umap = until_umap(client)
    assert (pca["method"], umap["method"]) == ("pca", "umap")
    assert sorted(pca["ids"]) == sorted(umap["ids"])
    assert pca["x"] != umap["x"]
    assert "method must be one of" in assert_error(
        client.get("/api/map?method=tsne"), 400, "bad_parameter")


def test_a_failing_umap_fit_leaves_pcas_map_and_is_not_retried(apps, own_library, monkeypatch,
                                                             caplog):
    import umap

    class Broken:
        calls = 0

        def __init__(self, **_):
            Broken.calls += 1

        def fit_transform(self, _):
            raise RuntimeError("no locator available for the numba cache")

    monkeypatch.setattr(umap, "UMAP", Broken)
    client = apps(own_library.data_dir).test_client()
    first = ok_json(client, "/api/map", method="umap")
    assert (first["method"], first["fitting"]) == ("pca", "umap")
    deadline = time.monotonic() + 60
    while (body := ok_json(client, "/api/map", method="umap"))["fitting"] is not None:
        assert time.monotonic() < deadline, "the failed fit was not noticed"
        time.sleep(0.1)
    assert body["method"] == "pca" and body["count"] == first["count"]
    for _ in range(3):  # not tried again for the same catalog
        assert ok_json(client, "/api/map", method="umap")["fitting"] is None
    assert Broken.calls == 1
    assert "UMAP failed" in caplog.text
