"""The autoencoder family on Fashion-MNIST: denoising, one-class anomaly detection, linear vs PCA.

    python -m bench.autoencoders denoise   [--epochs 15] [--latent-dim 256]
    python -m bench.autoencoders one-class [--epochs 15] [--latent-dim 32]
    python -m bench.autoencoders linear    [--epochs 60] [--latent-dim 32]

Models are built and trained with Lookalike's own code (``indexer.model``,
``indexer.train.fit``) on the native 28×28 grey images (one channel, two
stride-2 layers: 28 → 14 → 7). Needs ``apt-get install -y dataset-fashion-mnist``.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from bench.fmnist import CLASSES, load
from indexer.model import AEConfig, corrupt
from indexer.retrieval import pca_projection
from indexer.train import TrainConfig, fit

LIMIT: int | None = None  # --limit: a smoke run on the first N images of each split


def data(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load(split)
    return (images[:LIMIT], labels[:LIMIT]) if LIMIT else (images, labels)


def as_pixels(images: np.ndarray) -> np.ndarray:
    return images[..., None]  # N×28×28×1 uint8, what fit() takes


def tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).float().div(255).unsqueeze(1)


@torch.no_grad()
def batched_apply(model, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).flatten(1).mean(1).clamp(min=1e-10)
    return 10 * torch.log10(1.0 / mse)


def auroc(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann–Whitney U statistic (ties count half)."""
    scores = np.concatenate([normal_scores, anomaly_scores])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_a, n_n = len(anomaly_scores), len(normal_scores)
    u = ranks[n_n:].sum() - n_a * (n_a + 1) / 2
    return float(u / (n_a * n_n))


def config(args, kind: str) -> tuple[AEConfig, TrainConfig]:
    widths = tuple(int(w) for w in args.widths.split(","))
    return (AEConfig(image_size=28, channels=1, widths=widths, latent_dim=args.latent_dim, kind=kind),
            TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        patience=args.patience, device=args.device, seed=args.seed,
                        noise="gaussian", noise_level=0.3,
                        budget=None, invariance=0))  # the plain recipe these figures were made with


def bench_denoise(args) -> None:
    train, _ = data("train")
    test, _ = data("test")
    model_cfg, train_cfg = config(args, "dae")
    t = time.time()
    model, facts = fit(as_pixels(train), model_cfg, train_cfg, progress=not args.quiet)
    train_s = time.time() - t
    clean = tensor(test)
    noisy = corrupt(clean, "gaussian", 0.3, torch.Generator().manual_seed(0))
    denoised = batched_apply(model, noisy)
    noisy_db = psnr_per_image(noisy, clean).mean().item()
    out_db = psnr_per_image(denoised, clean).mean().item()
    print(f"DAE latent {args.latent_dim}, widths {args.widths}, {facts['epochs_run']} epochs, "
          f"{train_s:.0f} s training on {os.cpu_count()} cores ({facts['device']})")
    print("Fashion-MNIST test (10k), Gaussian σ = 0.3, mean per-image PSNR:")
    print(f"  noisy input: {noisy_db:.2f} dB")
    print(f"  denoised:    {out_db:.2f} dB  (target ≥ 21 dB: {'met' if out_db >= 21 else 'NOT met'})")


def bench_one_class(args) -> None:
    train, train_labels = data("train")
    test, test_labels = data("test")
    clean = tensor(test)
    results = []
    t0 = time.time()
    for c, name in enumerate(CLASSES):
        model_cfg, train_cfg = config(args, "ae")
        model, facts = fit(as_pixels(train[train_labels == c]), model_cfg, train_cfg,
                           progress=not args.quiet)
        scores = (batched_apply(model, clean) - clean).pow(2).flatten(1).mean(1).numpy()
        auc = auroc(scores[test_labels == c], scores[test_labels != c])
        results.append(auc)
        print(f"  class {c} {name:<11} AUROC {auc:.4f}  ({facts['epochs_run']} epochs)", flush=True)
    mean = float(np.mean(results))
    print(f"one-class AE (latent {args.latent_dim}, widths {args.widths}), score = reconstruction "
          f"MSE, {time.time() - t0:.0f} s on {os.cpu_count()} cores")
    print(f"mean AUROC over 10 classes: {mean:.4f} (target ≥ 0.90: {'met' if mean >= 0.90 else 'NOT met'})")


def bench_linear(args) -> None:
    train, _ = data("train")
    test, _ = data("test")
    model_cfg, train_cfg = config(args, "linear")
    train_cfg.flips = False
    train_cfg.weight_decay = 0.0
    model, facts = fit(as_pixels(train), model_cfg, train_cfg, progress=not args.quiet)
    x_test = tensor(test)
    ae = (batched_apply(model, x_test) - x_test).pow(2).mean().item()
    flat_train = train.reshape(len(train), -1).astype(np.float32) / 255
    flat_test = x_test.reshape(len(test), -1).numpy()
    mean, axes = pca_projection(flat_train, args.latent_dim)
    pca = float((((flat_test - mean) @ axes @ axes.T + mean - flat_test) ** 2).mean())
    print(f"Fashion-MNIST test reconstruction MSE at dimension {args.latent_dim}:")
    print(f"  PCA-{args.latent_dim}:             {pca:.5f}")
    print(f"  linear AE ({facts['epochs_run']} epochs): {ae:.5f}  ratio to PCA {ae / pca:.3f}")
    if args.with_conv:
        model_cfg, train_cfg = config(args, "ae")
        conv, _ = fit(as_pixels(train), model_cfg, train_cfg, progress=not args.quiet)
        conv_mse = (batched_apply(conv, x_test) - x_test).pow(2).mean().item()
        print(f"  conv AE:            {conv_mse:.5f}  ratio to PCA {conv_mse / pca:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["denoise", "one-class", "linear"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--latent-dim", type=int)
    ap.add_argument("--widths", default="32,64")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--with-conv", action="store_true", help="linear: also train a conv AE.")
    ap.add_argument("--limit", type=int, help="Use only the first N images of each split (smoke run).")
    args = ap.parse_args()
    global LIMIT
    LIMIT = args.limit
    defaults = {"denoise": 256, "one-class": 32, "linear": 32}
    args.latent_dim = args.latent_dim or defaults[args.which]
    torch.set_num_threads(os.cpu_count() or 1)
    {"denoise": bench_denoise, "one-class": bench_one_class, "linear": bench_linear}[args.which](args)


if __name__ == "__main__":
    main()
