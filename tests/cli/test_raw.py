"""A camera RAW in the collection: indexed as RAW, and it and its JPEG export (what a camera or
a RAW editor writes beside it) find each other as copies."""
from __future__ import annotations

import json

import numpy as np

from indexer.images import open_image

from ..synthetic import draw, write_dng
from .conftest import run


def test_a_raw_and_its_jpeg_export_find_each_other(data_dir, collection):
    shots = collection / "camera"
    shots.mkdir()
    picture = draw("square", np.random.default_rng(7), 96)
    raw = write_dng(shots / "IMG_0001.dng", picture)
    rendered, _ = open_image(raw)
    rendered.save(shots / "IMG_0001.jpg", quality=90)  # the export, beside it
    run(data_dir, "index", str(collection), "--workers", "0")

    hits = json.loads(run(data_dir, "search", str(shots / "IMG_0001.jpg"), "-k", "2",
                          "--json").stdout)["results"]
    assert {h["path"] for h in hits} == {str(raw), str(shots / "IMG_0001.jpg")}
    assert min(h["similarity"] for h in hits) > 0.98
    groups = json.loads(run(data_dir, "duplicates", "--threshold", "0.98", "--json").stdout)
    pair = next(g for g in groups["groups"] if str(raw) in [i["path"] for i in g["images"]])
    assert str(shots / "IMG_0001.jpg") in [i["path"] for i in pair["images"]]
    kept = json.loads(run(data_dir, "duplicates", "--threshold", "0.98", "--keep",
                          "format=raw", "--json").stdout)
    ours = next(p for p in kept["plans"] if p["group"] == pair["id"])
    by_path = {i["path"]: i["id"] for i in pair["images"]}
    assert ours["keep"] == by_path[str(raw)]  # "keep the RAW" keeps it
