"""From nothing to the first search on a new folder: ``lookalike index FOLDER`` with no model
yet (it trains one on the folder first, with the default budget), then ``lookalike search``.

    python -m bench.first_search [--folder bench/out/photos-1600x1200] [--old TREE]

The folder defaults to ``bench/train_time.py``'s 10,000 photo-like 1600×1200 JPEGs (made
there). With ``--old`` (a ``git worktree`` of an earlier commit) the same is run by that
tree's ``lookalike`` after this one's. The figures: the whole ``index`` process, the indexing
job within it (``--json``'s seconds), the rest (start-up, scan, training), and the search.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def first_search(folder: Path, data_dir: Path, tree: Path | None) -> dict[str, float]:
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), "-q"]
    started = time.perf_counter()
    summary = json.loads(subprocess.run([*cli, "index", str(folder), "--json"], check=True,
                                        stdout=subprocess.PIPE, text=True, cwd=tree).stdout)
    indexed = time.perf_counter()
    query = next(folder.rglob("*.jpg"))
    hits = subprocess.run([*cli, "search", str(query), "-k", "5"], check=True,
                          stdout=subprocess.PIPE, text=True, cwd=tree).stdout
    done = time.perf_counter()
    assert str(query) in hits or query.name in hits, hits  # the photo finds itself
    return {"images": summary["encoded"], "index_process_s": indexed - started,
            "indexing_job_s": summary["seconds"],
            "before_the_job_s": indexed - started - summary["seconds"],
            "search_s": done - indexed, "to_first_result_s": done - started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=OUT / "photos-1600x1200")
    ap.add_argument("--old", type=Path, help="a worktree of an earlier commit to run after")
    args = ap.parse_args()
    trees = {"this tree": None, **({"--old": args.old.resolve()} if args.old else {})}
    for name, tree in trees.items():
        data_dir = OUT / f"first-search{'-old' if tree else ''}"
        r = first_search(args.folder.resolve(), data_dir, tree)
        print(f"{name}: {r['images']:,} images; index from nothing {r['index_process_s']:.1f} s "
              f"(start-up, scan and training {r['before_the_job_s']:.1f} s, indexing job "
              f"{r['indexing_job_s']:.1f} s); first search {r['search_s']:.2f} s; first result "
              f"after {r['to_first_result_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
