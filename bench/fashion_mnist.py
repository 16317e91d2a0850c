"""Retrieval quality on Fashion-MNIST through Lookalike's own CLI.

Protocol: train on the 60k training images, index them, query with the
10k test images; relevant = same class. The same run scores raw pixels and
PCA at the latent's dimension (see ``lookalike eval``).

    python -m bench.fashion_mnist [--budget N] [--invariance 1] [--latent-dim 64]

Needs ``apt-get install -y dataset-fashion-mnist``. Work files go to
bench/out/ (ignored by git); a finished model is reused unless --retrain.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.fmnist import export_folder
from indexer.train import DEFAULT_BUDGET, DEFAULT_LATENT

OUT = Path(__file__).resolve().parent / "out"
TARGET_MAP, TARGET_P10, TARGET_GAIN = 0.55, 0.85, 0.10


def lookalike(data_dir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), *args]
    print("$ lookalike", " ".join(cmd[3:]), flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, help="at most this many passes (default: the budget)")
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                    help="optimizer steps (lookalike's default)")
    ap.add_argument("--invariance", type=float, default=None,
                    help="λ (default: lookalike train's default)")
    ap.add_argument("--edits", default=None, help="training edits (default: lookalike's)")
    ap.add_argument("--latent-dim", type=int, default=DEFAULT_LATENT)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--widths", default="32,64,128,256")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--no-baselines", action="store_true",
                    help="skip pixels and PCA (the same on every run; ~5 min of the eval)")
    args = ap.parse_args()

    data = OUT / "fmnist"
    t0 = time.time()
    for split in ("train", "test"):
        n = export_folder(data / split, split)
        print(f"{split}: {n} images under {data / split}")
    print(f"export: {time.time() - t0:.0f} s")
    recipe = []
    for flag, value in (("--epochs", args.epochs), ("--invariance", args.invariance),
                        ("--edits", args.edits)):
        if value is not None:
            recipe += [flag, str(value)]
    tag = "_".join(recipe).replace("--", "").replace(",", "+") or "default"
    data_dir = OUT / (f"fmnist-data-{args.image_size}-{args.latent_dim}-"
                      f"{args.widths.replace(',', '_')}-{args.budget}-{tag}")
    timings = {}
    if args.retrain or not (data_dir / "model.pt").exists():
        t = time.time()
        lookalike(data_dir, "train", str(data / "train"), "--image-size", str(args.image_size),
                  "--latent-dim", str(args.latent_dim), "--widths", args.widths,
                  "--budget", str(args.budget), "--batch-size", str(args.batch_size),
                  "--lr", str(args.lr), "--patience", "4", "--device", args.device, *recipe)
        timings["train_s"] = time.time() - t
    t = time.time()
    lookalike(data_dir, "-q", "index", str(data / "train"), "--device", args.device)
    timings["index_s"] = time.time() - t
    t = time.time()
    report = json.loads(lookalike(data_dir, "-q", "eval", str(data / "train"), "--queries",
                                  str(data / "test"), "--json",
                                  *(["--no-baselines"] if args.no_baselines else [])))
    timings["eval_s"] = time.time() - t
    results = report["results"]
    print()
    print(f"Fashion-MNIST, 60k database / 10k queries, image size {args.image_size}, "
          f"latent {args.latent_dim}, widths {args.widths}, {os.cpu_count()} cores")
    print(f"{'method':<24}{'mAP':>8}{'P@1':>8}{'P@10':>8}{'kNN-10':>8}")
    for name, m in results.items():
        print(f"{name:<24}{m['mAP']:8.4f}{m['p_at_1']:8.4f}{m['p_at_10']:8.4f}{m['knn10_accuracy']:8.4f}")
    ae = results["autoencoder (cosine)"]
    pcas = [m for k, m in results.items() if k.startswith("PCA")]
    gain = ae["mAP"] / max(m["mAP"] for m in pcas) - 1 if pcas else float("nan")
    import torch

    facts = torch.load(data_dir / "model.pt", weights_only=True)["facts"]
    print(f"\nrecipe: λ = {facts['recipe']['invariance']:g}, edits {facts['recipe']['edits']}, "
          f"{facts['steps_run']} steps ({facts['epochs_run']:g} epochs); held-out PSNR "
          f"{facts['val_psnr_db']:.2f} dB")
    print("timings: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"target mAP >= {TARGET_MAP}: {'met' if ae['mAP'] >= TARGET_MAP else 'NOT met'} ({ae['mAP']:.4f})")
    print(f"target P@10 >= {TARGET_P10}: {'met' if ae['p_at_10'] >= TARGET_P10 else 'NOT met'} ({ae['p_at_10']:.4f})")
    print(f"target >= 10% mAP over best PCA: {'met' if gain >= TARGET_GAIN else 'NOT met'} ({gain:+.1%})")


if __name__ == "__main__":
    main()
