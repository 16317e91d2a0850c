"""Folders as users really have them: FIFOs, device links, odd names, lying extensions.

``lookalike`` runs as a subprocess with a time limit, so a hang (a FIFO
opened for reading blocks forever) fails the test instead of stalling
the suite. Each odd file must be listed with its reason, every good file
indexed (also those sorted after an odd name), on every run; and the
server must answer every image URL of the catalog without a 5xx.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image

from search.catalog import ImageRecord
from search.store import Store
from web.app import create_app

from ..conftest import LOOKALIKE

pytestmark = pytest.mark.skipif(not LOOKALIKE.exists(), reason="no lookalike console script")
NON_UTF8 = os.fsdecode(b"caf\xe9.png")
CRLF = 'line\r\nbreak "quoted".png'


def picture(path: Path, colour: tuple[int, int, int], fmt: str = "PNG") -> Path:
    img = Image.new("RGB", (40, 40), colour)
    img.paste((255 - colour[0], 80, 40), (8, 8, 30, 30))
    img.save(path, fmt)
    return path


@pytest.fixture
def odd_folder(tmp_path) -> tuple[Path, list[Path], dict[str, str]]:
    """Good images around every odd file; the odd ones map to a word their reason must hold."""
    root = tmp_path / "photos"
    root.mkdir()
    good = [picture(root / f"{name}.png", (30 * i, 200 - 20 * i, 90))
            for i, name in enumerate(["0-first", "a-before", "m-middle", "zz-last"])]
    good.append(picture(root / NON_UTF8, (200, 30, 30)))
    good.append(picture(root / CRLF, (30, 30, 200)))
    os.mkfifo(root / "b-fifo.png")
    os.symlink("/dev/zero", root / "c-zero.png")
    outside = picture(tmp_path / "private.png", (90, 90, 90))
    os.symlink(outside, root / "d-outside.png")
    os.symlink(root / "0-first.png", root / "e-inside-link.png")  # stays inside: indexed
    good.append(root / "e-inside-link.png")
    (root / "f-eps.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
                                     b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n")
    picture(root / "g-targa.png", (10, 200, 10), "TGA")
    os.symlink(root / "loop", root / "loop")  # a link to itself
    (root / "sub").mkdir()
    os.symlink(root, root / "sub" / "back-to-root")  # a folder loop
    odd = {"b-fifo.png": "FIFO", "c-zero.png": "/dev/zero", "d-outside.png": "outside",
           "f-eps.jpg": "not a recognised image format",
           "g-targa.png": "not a recognised image format"}
    return root, good, odd


def lookalike(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    # A Ghostscript stand-in: if anything hands the EPS file to `gs`, the marker appears.
    fake_bin = cwd / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    gs = fake_bin / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {cwd / 'ghostscript-ran'}\nexit 1\n")
    gs.chmod(0o755)
    env.update(PATH=f"{fake_bin}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1")
    return subprocess.run([str(LOOKALIKE), *args], cwd=cwd, env=env, capture_output=True,
                          timeout=timeout)


def test_odd_files_are_listed_and_good_ones_indexed(odd_folder, data_dir, tmp_path):
    root, good, odd = odd_folder
    for attempt in ("first", "second"):
        done = lookalike(["--data-dir", str(data_dir), "index", str(root), "--workers", "0"],
                         tmp_path)
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        assert done.returncode == 0, err
        assert "Traceback" not in err
        for name, reason in odd.items():
            line = next((x for x in err.splitlines() if name in x), None)
            assert line is not None and reason in line, (attempt, name, err)
        assert f"failed {len(odd)}" in out, (attempt, out)
    assert not (tmp_path / "ghostscript-ran").exists()

    store = Store.open(data_dir)
    with store.sessions() as s:
        indexed = {r.path for r in s.query(ImageRecord)}
    assert indexed == {str(p) for p in good}
    store.close()
    assert_every_image_url_answers(data_dir, len(good))


def assert_every_image_url_answers(data_dir: Path, expected: int) -> None:
    client = create_app({"LOOKALIKE_DATA_DIR": str(data_dir)}).test_client()
    ids = range(1, expected + 3)  # also ids past the end
    for image_id in ids:
        for what in ("thumbnail", "reconstruction", "original"):
            response = client.get(f"/images/{image_id}/{what}")
            assert response.status_code in (200, 404), (image_id, what, response.data[:200])
    names = [client.get(f"/images/{i}/original").headers.get("Content-Disposition", "")
             for i in ids]
    assert any("caf%EF%BF%BD.png" in n for n in names)
    assert any("line%0D%0Abreak%20%22quoted%22.png" in n and "\r" not in n for n in names)


def test_follow_symlinks_indexes_links_outside(odd_folder, data_dir, tmp_path):
    root, good, _ = odd_folder
    done = lookalike(["--data-dir", str(data_dir), "index", str(root), "--workers", "0",
                      "--follow-symlinks"], tmp_path)
    assert done.returncode == 0, done.stderr
    store = Store.open(data_dir)
    with store.sessions() as s:
        indexed = {Path(r.path).name for r in s.query(ImageRecord)}
    store.close()
    assert "d-outside.png" in indexed
    assert "b-fifo.png" not in indexed and "c-zero.png" not in indexed


def test_a_file_swapped_for_a_fifo_is_a_404_not_a_stuck_thread(data_dir, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        picture(root / f"p{i}.png", (60 * i, 100, 100))
    done = lookalike(["--data-dir", str(data_dir), "index", str(root), "--workers", "0"],
                     tmp_path)
    assert done.returncode == 0, done.stderr
    shutil.rmtree(data_dir / "thumbs", ignore_errors=True)
    (root / "p1.png").unlink()
    os.mkfifo(root / "p1.png")
    client = create_app({"LOOKALIKE_DATA_DIR": str(data_dir)}).test_client()
    answers: dict[str, int] = {}

    def fetch_all() -> None:
        for i in (1, 2, 3):
            for what in ("original", "thumbnail"):
                answers[f"{i}/{what}"] = client.get(f"/images/{i}/{what}").status_code

    worker = threading.Thread(target=fetch_all, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "a request blocked on the FIFO"
    assert answers["2/original"] == 404 and answers["2/thumbnail"] == 404
    assert answers["1/original"] == 200 and answers["3/thumbnail"] == 200


def test_follow_symlinks_is_remembered(odd_folder, data_dir, tmp_path):
    root, _, _ = odd_folder
    base = ["--data-dir", str(data_dir), "index", str(root), "--workers", "0"]
    assert lookalike(base + ["--follow-symlinks"], tmp_path).returncode == 0
    again = lookalike(base, tmp_path)  # as an admin re-index would run it: no flag
    assert again.returncode == 0 and b"removed 0" in again.stdout
    off = lookalike(base + ["--no-follow-symlinks"], tmp_path)
    assert off.returncode == 0 and b"removed 1" in off.stdout
