"""Camera RAW through the same list of formats as every other: a DNG (written here, as a
camera's mosaic) decodes upright at its size, half size when a draft is enough; an ordinary
TIFF is still a TIFF; a RAW that LibRaw cannot read is a clear, counted skip."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexer.images import ImageDecodeError, decode_file, load_image, open_image, scan_folder

from ..synthetic import draw, write_dng

pytestmark = pytest.mark.any_catalog


@pytest.fixture
def dng(tmp_path):
    picture = draw("circle", np.random.default_rng(3), 96).resize((96, 64))
    return write_dng(tmp_path / "shot.dng", picture), picture


def test_a_dng_is_found_and_decoded_like_the_picture_it_recorded(dng, tmp_path):
    path, picture = dng
    assert scan_folder(tmp_path).files == [str(path)]
    img, size = open_image(path)
    assert img.format == "RAW" and img.mode == "RGB" and size == img.size == (96, 64)
    rendered = np.asarray(img, dtype=np.int16)
    truth = np.asarray(picture.convert("RGB"), dtype=np.int16)
    # the same picture: far closer to it than to the same picture upside down
    assert np.abs(rendered - truth).mean() < 0.5 * np.abs(rendered - truth[::-1]).mean()
    half, _ = open_image(path, draft_size=16)  # a thumbnail's draft: LibRaw's half size
    assert half.size == (48, 32)
    decoded = decode_file(path, 16)
    assert decoded.error is None and decoded.format == "RAW" and (decoded.width,
                                                                   decoded.height) == (96, 64)
    assert open_image(path.read_bytes())[0].format == "RAW"  # an upload has no name


def test_an_ordinary_tiff_stays_a_tiff_and_a_broken_raw_is_a_clear_skip(tmp_path):
    Image.new("RGB", (40, 30), (10, 200, 10)).save(tmp_path / "scan.tif")
    assert open_image(tmp_path / "scan.tif")[0].format == "TIFF"
    # A camera maker's name alone (an edited export) does not make a RAW of a TIFF.
    Image.new("RGB", (40, 30), (10, 200, 10)).save(tmp_path / "export.tif",
                                                   tiffinfo={271: "Canon"})
    assert open_image(tmp_path / "export.tif")[0].format == "TIFF"
    broken = tmp_path / "broken.nef"
    broken.write_bytes(b"II*\x00" + bytes(200))
    with pytest.raises(ImageDecodeError, match="not a recognised image format"):
        load_image(broken, 16)
    assert decode_file(broken, 16).error is not None
