"""A camera RAW on the web: its thumbnail is made, its original is served as a JPEG a browser
shows, and a RAW upload is a query like any other."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..synthetic import draw, write_dng
from .conftest import image_id, index_more


def test_a_raw_is_thumbnailed_previewed_and_searched(apps, own_library):
    folder = own_library.collection / "camera"
    folder.mkdir()
    raw = write_dng(folder / "DSC_0042.dng", draw("circle", np.random.default_rng(5), 96))
    assert index_more(own_library.data_dir, folder)["added"] == 1
    client = apps(own_library.data_dir).test_client()
    raw_id = image_id(own_library.data_dir, raw)

    thumb = client.get(f"/images/{raw_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.data)).size == (96, 96)
    original = client.get(f"/images/{raw_id}/original")
    assert original.status_code == 200 and original.mimetype == "image/jpeg"
    assert "DSC_0042.dng.jpg" in original.headers["Content-Disposition"]
    assert Image.open(io.BytesIO(original.data)).size == (96, 96)  # full size, not a draft
    again = client.get(f"/images/{raw_id}/original",
                       headers={"If-None-Match": original.headers["ETag"]})
    assert again.status_code == 304

    found = client.post("/api/search", data={"image": (io.BytesIO(raw.read_bytes()), "q.dng"),
                                             "k": 3, "reconstruction": "false"})
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["results"][0]["id"] == raw_id
