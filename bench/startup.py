"""How long `lookalike` takes to start: `--help`, `stats` and `search`, beside the floor
(`python -c "import torch"`), for this tree and, with ``--old``, another checkout (a
``git worktree`` of an earlier commit), runs interleaved so both see the same box.

Each command runs as a fresh process (``python -m web.cli`` with the tree first on
``PYTHONPATH``), from a temporary working directory, ``--runs`` times; medians are printed.

    python -m bench.startup --data-dir D --query IMAGE [--old ../lookalike-old] [--runs 7]

Targets (issue #28): `stats` and `--help` ≤ 1.0 s; `search` ≤ torch's import + 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(args: list[str], tree: Path, cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(tree)})
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="an indexed data dir")
    ap.add_argument("--query", type=Path, required=True, help="an image to search with")
    ap.add_argument("--old", type=Path, help="another checkout to compare with")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    trees = {"new": REPO, **({"old": args.old.resolve()} if args.old else {})}
    cli = ["-m", "web.cli", "--data-dir", str(args.data_dir.resolve())]
    commands = {"--help": ["-m", "web.cli", "--help"], "stats": [*cli, "stats"],
                "search": [*cli, "-q", "search", str(args.query.resolve())]}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.runs):
            times.setdefault("import torch", []).append(
                timed(["-c", "import torch"], REPO, cwd))
            for name, tree in trees.items():
                for command, argv in commands.items():
                    times.setdefault(f"{name} {command}", []).append(timed(argv, tree, cwd))
    medians = {k: round(statistics.median(v), 3) for k, v in times.items()}
    if args.json:
        print(json.dumps({"runs": args.runs, "median_seconds": medians}, indent=2))
        return
    print(f"median of {args.runs} runs, seconds:")
    for key, value in medians.items():
        print(f"  {key:20s} {value:6.3f}")
    for name in trees:
        extra = medians[f"{name} search"] - medians["import torch"]
        print(f"{name}: search = torch import + {extra:.3f} s")


if __name__ == "__main__":
    main()
