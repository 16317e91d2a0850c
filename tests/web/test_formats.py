"""The formats an upload may be: phone formats accepted, EPS refused before Ghostscript, as
indexing decodes them (the indexer's list of formats: tests/indexer/test_formats.py)."""
from __future__ import annotations

import pytest

from indexer.images import ImageDecodeError, load_image, scan_folder
from web.uploads import sniff_format

from ..indexer.test_formats import saved

pytestmark = pytest.mark.any_catalog


@pytest.mark.parametrize("fmt, ext", [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_phone_formats_are_found_decoded_and_accepted(tmp_path, fmt, ext):
    data = saved(fmt, quality=90)
    (tmp_path / f"photo{ext}").write_bytes(data)
    assert scan_folder(tmp_path).files == [str(tmp_path / f"photo{ext}")]
    pixels = load_image(tmp_path / f"photo{ext}", 16)
    assert pixels.shape == (16, 16, 3) and pixels[..., 0].max() > 150
    assert sniff_format(data) == (fmt, True)


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    import subprocess

    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs")  # as if Ghostscript were installed
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: started.append(a))
    path = tmp_path / "drawing.jpg"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageDecodeError, match="not a recognised image format"):
        load_image(path, 16)
    assert started == []
    assert sniff_format(path.read_bytes())[1] is False
