"""One list of formats for indexing, thumbnails, originals and uploads: what else Pillow reads
is refused (phone formats and uploads: tests/web/test_formats.py)."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from indexer.images import ImageDecodeError, load_image

pytestmark = pytest.mark.any_catalog


def saved(fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img = Image.new("RGB", (40, 30), (200, 40, 40))
    img.paste((20, 20, 220), (5, 5, 20, 20))
    img.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["TGA", "ICO", "PCX", "PPM"])
def test_other_pillow_formats_are_refused_whatever_their_name(tmp_path, fmt):
    path = tmp_path / "disguised.png"
    path.write_bytes(saved(fmt))
    with pytest.raises(ImageDecodeError, match="not a recognised image format"):
        load_image(path, 16)
