"""A camera RAW on the web: its thumbnail is made, its preview is a JPEG a browser shows (its
original stays the file), and a RAW upload is a query like any other."""
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
    assert original.status_code == 200 and original.data == raw.read_bytes()
    preview = client.get(f"/images/{raw_id}/preview")  # what a browser can show
    assert preview.status_code == 200 and preview.mimetype == "image/jpeg"
    assert "DSC_0042.dng.jpg" in preview.headers["Content-Disposition"]
    assert Image.open(io.BytesIO(preview.data)).size == (96, 96)  # full size, not a draft
    again = client.get(f"/images/{raw_id}/preview",
                       headers={"If-None-Match": preview.headers["ETag"]})
    assert again.status_code == 304
    png = own_library.files["circle"][0]
    as_is = client.get(f"/images/{image_id(own_library.data_dir, png)}/preview")
    assert as_is.mimetype == "image/png" and as_is.data == png.read_bytes()

    found = client.post("/api/search", data={"image": (io.BytesIO(raw.read_bytes()), "q.dng"),
                                             "k": 3, "reconstruction": "false"})
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["results"][0]["id"] == raw_id
