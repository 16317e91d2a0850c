"""Peak memory of `lookalike index` at two collection sizes: does it grow with the folder?

Makes (or reuses) small 32×32 PNGs under ``bench/out/memory/``, nested so
the smaller collection is a sub-folder of the larger, saves an untrained
small model (memory does not depend on its weights), then runs the real
CLI, ``python -m web.cli --data-dir D -q index FOLDER --model CKPT --json``,
once per size into a fresh data dir, sampling /proc every 0.2 s for the
whole process tree (the CLI and its decode workers).

    python -m bench.memory [--counts 20000 200000] [--old-decode]

Each run is made from a snapshot of the working tree (copied once, at
start), so edits made meanwhile do not change what is measured.
``--old-decode`` also runs a second snapshot whose ``indexer/images.py``
ends with the ``decode_many`` of before the window (``Executor.map`` over
every path at once), which replaces the current one for every importer:
a before/after in the same run, with nothing else changed.

Target: peak RSS at 200k images ≤ 1.3 × the peak at 20k.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from indexer.model import AEConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "memory"
SOURCE = ("indexer", "search", "web", "migrations")
MODEL = AEConfig(image_size=32, latent_dim=16, widths=(16, 32))
TARGET = 1.3


def nested_folders(root: Path, counts: list[int]) -> list[Path]:
    """One folder per count, each inside the next larger: folder k holds the first counts[k]."""
    folders, d = [], root
    for c in sorted(counts, reverse=True):
        d = d / f"n{c}"
        folders.append(d)
    return folders[::-1]


def make_pngs(root: Path, counts: list[int]) -> list[Path]:
    """Seeded 4×4 colour blocks scaled to 32×32: distinct files of a few hundred bytes."""
    counts = sorted(counts)
    folders = nested_folders(root, counts)
    level = 0
    for i in range(counts[-1]):
        while i >= counts[level]:
            level += 1
        path = folders[level] / f"{i // 1000:03d}" / f"img-{i:06d}.png"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        blocks = np.random.default_rng([0, i]).integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(blocks).resize((32, 32), Image.Resampling.NEAREST).save(path)
    return folders


# decode_many before its window (commit a3c6fa0), appended to a snapshot by --old-decode.
OLD_DECODE = '''

def _old_decode_star(args):
    return decode_file(*args)


def decode_many(paths, size, workers=None, chunksize=16):
    if workers is None:
        workers = os.cpu_count() or 1
    if workers <= 1 or len(paths) < 2 * chunksize:
        for p in paths:
            yield decode_file(p, size)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_old_decode_star, ((p, size) for p in paths), chunksize=chunksize)
'''


def snapshot(dest: Path, old_decode: bool = False) -> Path:
    """The packages as they are now; *old_decode* puts the old decode_many in."""
    shutil.rmtree(dest, ignore_errors=True)
    for name in SOURCE:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if old_decode:
        with open(dest / "indexer" / "images.py", "a") as f:
            f.write(OLD_DECODE)
    return dest


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Peak RSS and PSS summed over a process and all its descendants.

    RSS counts pages shared by the forked workers once per process; PSS
    splits them, so the PSS sum is what the tree really holds.
    """

    def __init__(self, root: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.peak_rss = self.peak_pss = self.most_processes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)

    def sample(self) -> None:
        kids, tree, todo = _children(), [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(kids.get(pid, []))
        rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in tree)
        pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in tree)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.most_processes = max(self.most_processes, len(tree))


def sampled(cmd: list[str], cwd: Path, env: dict[str, str]):
    """Run *cmd* to its end, its process tree sampled: (stdout, the sampler, its rusage)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, text=True, env=env)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {proc.returncode}")
    return out, sampler, usage


def run_index(source: Path, data_dir: Path, folder: Path, checkpoint: Path) -> dict:
    """One `lookalike index` run into a fresh data dir, with its memory figures."""
    shutil.rmtree(data_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), "-q", "index", str(folder),
           "--model", str(checkpoint), "--json"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    started = time.perf_counter()
    out, sampler, usage = sampled(cmd, source, env)
    summary = json.loads(out)
    return dict(images=summary["added"], job_s=summary["seconds"],
                rate=summary["images_per_second"], wall_s=time.perf_counter() - started,
                max_process_mib=usage.ru_maxrss / 1024, tree_rss_mib=sampler.peak_rss / 1024,
                tree_pss_mib=sampler.peak_pss / 1024, processes=sampler.most_processes)


def report(name: str, runs: list[dict]) -> None:
    print(f"\n{name}")
    print(f"{'images':>8} {'job s':>7} {'img/s':>7} {'wall s':>7} {'max proc MiB':>12} "
          f"{'tree RSS MiB':>12} {'tree PSS MiB':>12} {'procs':>5}")
    for r in runs:
        print(f"{r['images']:8d} {r['job_s']:7.1f} {r['rate']:7.1f} {r['wall_s']:7.1f} "
              f"{r['max_process_mib']:12.1f} {r['tree_rss_mib']:12.1f} {r['tree_pss_mib']:12.1f} "
              f"{r['processes']:5d}")
    if len(runs) < 2:
        return
    small, large = runs[0], runs[-1]
    for key, label in (("max_process_mib", "largest process"), ("tree_rss_mib", "tree RSS"),
                       ("tree_pss_mib", "tree PSS")):
        ratio = large[key] / small[key]
        verdict = "met" if ratio <= TARGET else "NOT met"
        print(f"ratio {large['images']} / {small['images']}, {label}: {ratio:.2f} "
              f"(target <= {TARGET}: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[20000, 200000])
    ap.add_argument("--old-decode", action="store_true",
                    help="also run with decode_many as it was before its window")
    args = ap.parse_args()
    counts = sorted(args.counts)
    t = time.time()
    folders = make_pngs(OUT / "images", counts)
    print(f"{counts[-1]} PNGs 32x32 under {OUT / 'images'} ({time.time() - t:.0f} s to make/check)")
    torch.manual_seed(0)
    checkpoint = OUT / "model.pt"
    save_checkpoint(checkpoint, build_model(MODEL), {})
    sources = {"current working tree": snapshot(OUT / "src-current")}
    if args.old_decode:
        sources["old decode_many (Executor.map)"] = snapshot(OUT / "src-old", old_decode=True)
    print(f"cores: {os.cpu_count()}, model {MODEL.image_size}px latent {MODEL.latent_dim} "
          f"widths {MODEL.widths}, load average {os.getloadavg()[0]:.1f}")
    for name, source in sources.items():
        runs = [run_index(source, OUT / "data", folder, checkpoint) for folder in folders]
        report(name, runs)


if __name__ == "__main__":
    main()
