"""Channels-last (NHWC) against contiguous (NCHW) for the default model on CPU.

Interleaved A/B in one process: ``TorchEncoder.encode_with_error`` at
batch 64 on the default 64-px model (widths 32-256), what ``lookalike
index`` runs per batch, and one training step (32 px, batch 128).

    python -m bench.memory_format [--repeats 25]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from indexer.encoding import TorchEncoder
from indexer.model import AEConfig, Checkpoint, build_model


def _p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def encode_ab(threads: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(AEConfig(image_size=64, latent_dim=64))
    nhwc = TorchEncoder(Checkpoint(copy.deepcopy(model)), "cpu")  # channels-last, as shipped
    nchw = TorchEncoder(Checkpoint(model), "cpu")
    nchw.model = nchw.model.to(memory_format=torch.contiguous_format)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    x_nchw = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255).contiguous()
    times: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
    with torch.inference_mode():
        for i in range(repeats + 3):
            started = time.perf_counter()
            nhwc.encode_with_error(pixels)
            middle = time.perf_counter()
            z = nchw.model.encode(x_nchw)
            (nchw.model.decode(z) - x_nchw).pow(2).flatten(1).mean(1)
            ended = time.perf_counter()
            if i >= 3:
                times["channels_last"].append(middle - started)
                times["contiguous"].append(ended - middle)
    return {k: _p50_ms(v) for k, v in times.items()}


def train_ab(threads: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = build_model(AEConfig(image_size=32, latent_dim=64))
    models = {"contiguous": base,
              "channels_last": copy.deepcopy(base).to(memory_format=torch.channels_last)}
    optimizers = {k: torch.optim.AdamW(m.parameters(), 1e-3) for k, m in models.items()}
    x = torch.rand(128, 3, 32, 32)
    inputs = {"contiguous": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(repeats + 3):
        for name, model in models.items():
            started = time.perf_counter()
            optimizers[name].zero_grad()
            loss = model.loss(inputs[name], inputs[name], 1.0).total
            loss.backward()
            optimizers[name].step()
            if i >= 3:
                times[name].append(time.perf_counter() - started)
    return {k: _p50_ms(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory_format", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=25)
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}; p50 ms, interleaved")
    print("| step | torch threads | contiguous | channels_last |")
    print("|---|---:|---:|---:|")
    for threads in (1, 2):
        r = encode_ab(threads, args.repeats)
        print(f"| encode_with_error, batch 64, 64 px | {threads} | {r['contiguous']} | "
              f"{r['channels_last']} |")
    r = train_ab(2, args.repeats)
    print(f"| training step, batch 128, 32 px | 2 | {r['contiguous']} | {r['channels_last']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
