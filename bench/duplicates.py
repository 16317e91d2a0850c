"""Near-duplicate groups on the edited-copies benchmark, and grouping 100k codes.

Quality: the copies benchmark (``bench/copies.py``: the real photos that
scikit-image, scikit-learn and matplotlib ship, each with edited copies)
and its default-recipe model (trained there by ``bench.copies`` when it is
missing). Two images are a true pair when they come from the same photo.
The threshold is calibrated on the database set (originals + copies, the
images the model was trained on) and measured on the held-out copies,
which the model never saw. pHash and dHash (imagehash, 64 bits, computed
on the full files) group by connected components at Hamming ≤ t, as peers
do, with t chosen on the held-out set itself (an oracle, their best case).
The duplicate finders people run on their photo folders score on the same
held-out files in the same run, each at its own default and at the setting
a sweep on the held-out set finds best (the same oracle): czkawka (its
Python bindings, ``pip install czkawka``), difPy (``pip install difpy``;
both come with ``pip install -e '.[peers]'``) and findimagedupes (Debian:
``apt-get install findimagedupes``). One that is missing is skipped with a
line saying so.

Scale: 100k random 64-d codes with planted copies (40k photos with 0-4
noisy copies each, the rest single), grouped at the default threshold;
wall time and the process's peak RSS.

    python -m bench.duplicates            # a few minutes on 2 cores with the model there
    python -m bench.duplicates --no-quality --threads 1   # grouping as the web app does it
"""
from __future__ import annotations

import argparse
import functools
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from itertools import combinations
from pathlib import Path

import faiss
import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bench.copies import OUT, build, lookalike
from indexer.encoding import TorchEncoder
from indexer.images import load_image
from search.duplicates import (DEFAULT_THRESHOLD, complete_linkage_groups, cut_components,
                               keep_apart, model_threshold, neighbour_graph)
from search.vector_index import normalise

MODEL_DIR = OUT / "data-Lookalike__default_"
CZKAWKA_DEFAULT = 10  # what czkawka's ImageSimilarity() sets (8×8 gradient hash, Lanczos3)
FINDIMAGEDUPES_DEFAULT = 25  # its -t 90 %: bits = floor(2.56 (100 - percent)) of 256
# findimagedupes runs a shell function VIEW on each group; this one prints a file a line
# and a blank line after the group, which paths with spaces survive.
FINDIMAGEDUPES_VIEW = 'VIEW(){ printf "%s\\n" "$@"; echo; }'
# difPy's "similarity" is a mean squared error over 50×50 thumbnails ("similar" is 5),
# computed on uint8 pixels, so each squared difference wraps modulo 256 (4.2.1): it never
# passes 255, and unrelated pictures land near 105, hence the sweep's range.
DIFPY_MSE = (0, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 100, 105, 110,
             120, 140, 170, 200, 255)
DEFAULT_REPEATS = 4  # further default runs, to show a tool whose groups vary run to run


def labelled(folder: Path) -> tuple[list[Path], list[str]]:
    paths = sorted(folder.rglob("*.jpg"))
    return paths, [p.parent.name for p in paths]


def pair_scores(groups: list[list[int]], labels: list[str]) -> dict[str, float]:
    """Pair precision, recall and F1 of *groups* (row indices) against same-label pairs."""
    predicted = {frozenset(p) for g in groups for p in combinations(g, 2)}
    true = {frozenset(p) for p in combinations(range(len(labels)), 2)
            if labels[min(p)] == labels[max(p)]}
    hits = len(predicted & true)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(predicted)}


def hash_groups(bits: np.ndarray, max_distance: int) -> list[list[int]]:
    """Connected components of the Hamming ≤ t graph (what hash-based dedupers do)."""
    distances = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    rows, cols = np.nonzero(distances <= max_distance)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=distances.shape)
    _, labels = connected_components(graph, directed=False)
    parts: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        parts.setdefault(int(label), []).append(row)
    return [g for g in parts.values() if len(g) > 1]


class PeerMissing(Exception):
    """A duplicate finder that is not installed here: the bench says so and goes on."""


@dataclass(frozen=True)
class Peer:
    """A duplicate finder people use, asked for its groups of the query rows at one setting."""
    name: str  # with its version
    default: object  # the tool's own default setting
    settings: Sequence  # the sweep for its oracle row, strictest first so ties keep the strictest
    groups: Callable[[object], list[list[int]]]
    describe: Callable[[object], str]


def rows_of(groups: Iterable[Iterable[str | Path]], index: dict[Path, int]) -> list[list[int]]:
    """A tool's groups of files as groups of rows; paths resolved, since each tool prints its own."""
    found = []
    for group in groups:
        rows = sorted({index[path] for path in map(lambda p: Path(p).resolve(), group)
                       if path in index})
        if len(rows) > 1:
            found.append(rows)
    return found


def czkawka_peer(folder: Path, index: dict[Path, int], workdir: Path) -> Peer:
    """czkawka's similar-images search through its Python bindings (a recursive folder scan)."""
    try:
        from czkawka import ImageSimilarity
    except ImportError as e:
        raise PeerMissing(f"not installed ({e}); pip install czkawka") from e

    def groups(level: int) -> list[list[int]]:
        finder = ImageSimilarity()  # no cache: the bindings turn czkawka's off
        finder.set_directories([folder])
        finder.set_similarity(level)
        return rows_of(finder.find_similar(), index)

    return Peer(f"czkawka {version('czkawka')}", CZKAWKA_DEFAULT, range(0, 51), groups,
                lambda level: f"similarity {level}")


def findimagedupes_peer(folder: Path, index: dict[Path, int], workdir: Path) -> Peer:
    """findimagedupes (a 256-bit fingerprint, groups are connected components at ≤ t bits).

    Its fingerprints go to a database in *workdir*, so the sweep after the first run
    compares without fingerprinting again.
    """
    exe = shutil.which("findimagedupes")
    if exe is None:
        raise PeerMissing("not on PATH (Debian: apt-get install findimagedupes)")
    fingerprints = workdir / "findimagedupes.db"

    def groups(bits: int) -> list[list[int]]:
        run = subprocess.run([exe, "-q", "-R", "-f", str(fingerprints), "-t", f"{bits}b",
                              "-i", FINDIMAGEDUPES_VIEW, "--", str(folder)],
                             capture_output=True, text=True)
        if run.returncode > 1:  # 1 is warnings only
            raise RuntimeError(f"findimagedupes exited {run.returncode}: {run.stderr.strip()}")
        return rows_of((block.splitlines() for block in run.stdout.split("\n\n")), index)

    name = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    return Peer(name, FINDIMAGEDUPES_DEFAULT, range(0, 129), groups,
                lambda bits: f"≤ {bits} of 256 bits ({100 - bits / 2.56:.0f} %)")


def difpy_peer(folder: Path, index: dict[Path, int], workdir: Path) -> Peer:
    """difPy: MSE between 50×50 thumbnails, by default of same-sized images only.

    Its sweep covers same_dim too: edited copies are cropped or framed, so its
    default never compares most of them.
    """
    try:
        import difPy
    except ImportError as e:
        raise PeerMissing(f"not installed ({e}); pip install difpy") from e
    built = functools.cache(lambda: difPy.build(str(folder), show_progress=False))

    def groups(setting: tuple) -> list[list[int]]:
        similarity, same_dim = setting
        found = difPy.search(built(), similarity=similarity, same_dim=same_dim,
                             show_progress=False).result
        # Each result is a file and its matches, which is how difPy shows a group.
        return rows_of(([key, *(match for match, _ in matches)] for key, matches in found.items()),
                       index)

    def describe(setting: tuple) -> str:
        similarity, same_dim = setting
        mse = "MSE 0 (“duplicates”)" if similarity == "duplicates" else f"MSE ≤ {similarity}"
        return f"{mse}, {'same size only' if same_dim else 'any size'}"

    return Peer(f"difPy {version('difpy')}", ("duplicates", True),
                [(mse, same_dim) for same_dim in (True, False) for mse in DIFPY_MSE],
                groups, describe)


def table_row(name: str, setting: str, s: dict[str, float]) -> str:
    """A row of quality()'s table, F1 not in bold: the bold rows are Lookalike's."""
    return (f"| {name} | {setting} | {s['precision']:.3f} | {s['recall']:.3f} | "
            f"{s['f1']:.3f} |")


def peer_rows(peer: Peer, labels: list[str]) -> tuple[list[str], str]:
    """Its default and its oracle setting as table rows, and a line with their wall times."""
    started = time.perf_counter()
    default = pair_scores(peer.groups(peer.default), labels)
    first = time.perf_counter()
    best, scores = max(((s, pair_scores(peer.groups(s), labels)) for s in peer.settings),
                       key=lambda ss: ss[1]["f1"])
    swept = time.perf_counter()
    f1s = [default["f1"]] + [pair_scores(peer.groups(peer.default), labels)["f1"]
                             for _ in range(DEFAULT_REPEATS)]
    note = (f"{peer.name}: default run {first - started:.2f} s from the files, "
            f"sweep of {len(peer.settings)} settings {swept - first:.1f} s")
    if max(f1s) - min(f1s) > 1e-9:  # then its oracle row is its luckiest run as well
        note += (f"; its groups vary run to run, default pair F1 over {len(f1s)} runs "
                 f"{min(f1s):.3f}–{max(f1s):.3f}")
    return [table_row(f"{peer.name}, its default", peer.describe(peer.default), default),
            table_row(f"{peer.name}, oracle setting", peer.describe(best), scores)], note


def peers(paths: list[Path], labels: list[str]) -> list[str]:
    """The peers' rows, printed into the table; returns the lines to print after it."""
    folder = paths[0].parent.parent.resolve()  # queries/<photo>/<copy>.jpg
    index = {p.resolve(): row for row, p in enumerate(paths)}
    notes = []
    with tempfile.TemporaryDirectory(prefix="lookalike-peers-") as tmp:
        for make in (czkawka_peer, difpy_peer, findimagedupes_peer):
            name = make.__name__.removesuffix("_peer")
            try:
                peer = make(folder, index, Path(tmp))
            except PeerMissing as e:
                notes.append(f"{name} skipped: {e}")
                continue
            rows, note = peer_rows(peer, labels)
            print("\n".join(rows))
            notes.append(note)
    return notes


def codes_of(encoder: TorchEncoder, paths: list[Path]) -> np.ndarray:
    """The copy parts of their codes: what ``lookalike duplicates`` groups by."""
    return copy_codes(encoder, np.stack([load_image(p, encoder.image_size) for p in paths]))


def copy_codes(encoder: TorchEncoder, pixels: np.ndarray) -> np.ndarray:
    """``codes_of`` for images already decoded (uint8 NHWC at the model's size)."""
    return np.concatenate([encoder.encode(pixels[i:i + 64])[:, encoder.copy_part]
                           for i in range(0, len(pixels), 64)])


def calibrate(codes: np.ndarray, labels: list[str]) -> tuple[float, dict]:
    best = (0.0, {"f1": -1.0})
    for threshold in np.round(np.arange(0.05, 0.995, 0.01), 2):
        scores = pair_scores(complete_linkage_groups(codes, float(threshold)), labels)
        if scores["f1"] > best[1]["f1"]:
            best = (float(threshold), scores)
    return best


def quality() -> None:
    build(OUT, 9, 10, 0)
    if not (MODEL_DIR / "model.pt").exists():
        print(lookalike(MODEL_DIR, "train", str(OUT / "db")), end="")
    encoder = TorchEncoder.from_path(MODEL_DIR / "model.pt", "cpu")
    db_paths, db_labels = labelled(OUT / "db")
    q_paths, q_labels = labelled(OUT / "queries")
    calibrated, on_db = calibrate(codes_of(encoder, db_paths), db_labels)
    print(f"calibration (database set, {len(db_paths)} images): best threshold {calibrated:.2f}, "
          f"pair F1 {on_db['f1']:.3f}")
    q_codes = codes_of(encoder, q_paths)
    print(f"\nheld-out copies: {len(q_paths)} images of {len(set(q_labels))} photos\n")
    print("| method | threshold | pair precision | pair recall | pair F1 |\n| --- | ---: | ---: | ---: | ---: |")
    rows = [("Lookalike, default threshold", DEFAULT_THRESHOLD),
            ("Lookalike, calibrated here", calibrated)]
    own = model_threshold(encoder.copy_threshold, encoder.separates_copies)
    rows.insert(0, ("Lookalike, the model's own threshold (its default)", own))
    for name, threshold in rows:
        s = pair_scores(complete_linkage_groups(q_codes, threshold), q_labels)
        print(f"| {name} | {threshold:.2f} | {s['precision']:.3f} | {s['recall']:.3f} | "
              f"**{s['f1']:.3f}** |")
    for name, fn in (("pHash", imagehash.phash), ("dHash", imagehash.dhash)):
        bits = np.stack([fn(Image.open(p)).hash.reshape(-1) for p in q_paths])
        t, s = max(((t, pair_scores(hash_groups(bits, t), q_labels)) for t in range(0, 33)),
                   key=lambda ts: ts[1]["f1"])
        print(f"| {name}, oracle Hamming threshold | ≤ {t} | {s['precision']:.3f} | "
              f"{s['recall']:.3f} | {s['f1']:.3f} |")
    notes = peers(q_paths, q_labels)
    print("\n" + "\n".join(notes))


def scale(n: int, dim: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photos = rng.normal(size=(n * 2 // 5, dim)).astype(np.float32)
    copies = rng.integers(0, 5, size=len(photos))
    planted = np.repeat(photos, copies, axis=0)
    planted += 0.15 * rng.normal(size=planted.shape).astype(np.float32)
    singles = rng.normal(size=(max(n - len(photos) - len(planted), 0), dim)).astype(np.float32)
    codes = np.concatenate([photos, planted, singles])[:n]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    codes = normalise(codes)
    graph = neighbour_graph(codes, DEFAULT_THRESHOLD)
    searched = time.perf_counter()
    groups = cut_components(codes, graph, DEFAULT_THRESHOLD)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    apart = [g[:2] for g in groups[:100]]  # 100 "not duplicates" decisions
    keep_apart(codes, graph, groups, DEFAULT_THRESHOLD, apart)
    decided = time.perf_counter()
    print(f"\n{len(codes):,} codes ({dim}-d): {len(groups):,} groups in {done - started:.1f} s "
          f"(range search {searched - started:.1f} s, the cut {done - searched:.1f} s); peak RSS "
          f"{peak / 1024:.0f} MB (grew {(peak - before) / 1024:.0f} MB while grouping); "
          f"100 decisions applied in {decided - done:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000, help="Codes to group (0: skip).")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--threads", type=int, help="FAISS threads for the scale run (the web app "
                                                "uses LOOKALIKE_INFERENCE_THREADS, 1 by default).")
    args = ap.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    if not args.no_quality:
        quality()
    if args.scale:
        scale(args.scale)


if __name__ == "__main__":
    main()
