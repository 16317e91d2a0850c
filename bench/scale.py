"""Lookalike at scale, on this box: the figures docs/scale.md plans 100M images from.

    python -m bench.scale index    [--count 1000000]  # (a) index N small files end to end
    python -m bench.scale http     [--requests 2000]  # (b) POST /api/search p50/p99, that data dir
    python -m bench.scale codes    [--count 10000000] # (c) IVF-PQ + re-ranking vs exact search
    python -m bench.scale ray      [--count 20000]    # (d) --engine ray vs local [--repeat 3]
    python -m bench.scale postgres [--count 100000]   # (e) indexing into PostgreSQL vs SQLite

    index and http take --index-type auto|flat|ivf|ivfpq (a data dir per type); ray
    runs local, own cluster and running cluster in turn, --repeat rounds, on the same files.

Files are seeded 32×32 PNGs (bench/memory.py's generator) under ``bench/out/scale``,
made once and reused; the model is an untrained small one (throughput and memory do
not depend on its weights). Every run is the real CLI in a subprocess, its whole
process tree's peak RSS sampled every 0.2 s. Ratios (d, e) are measured in one run,
back to back, on the same files. Targets: (a) peak RSS ≤ 4 GB at 1M; (b) p50 ≤ 25 ms;
(c) recall@10 ≥ 0.95 at ≥ 50× exact, ≤ 40 bytes/code in RAM; (d) ray ≥ 0.8× local;
(e) PostgreSQL ≤ 1.5× SQLite.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from PIL import Image

from indexer.model import build_model, save_checkpoint
from search.vector_index import (INDEX_TYPES, REFINE_FACTOR, VectorIndex, build_index,
                                 normalise)
from tests.postgres import Databases, start_cluster

from .load import free_port, multipart, peak_rss_mb, start_server, stop_server, wait_ready
from .memory import MODEL, sampled
from .query_scale import mixture

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "scale"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"


def make_files(count: int) -> Path:
    """*count* seeded 32×32 PNGs in folders of 1,000; those already there are kept."""
    root = OUT / "images"
    for i in range(count):
        path = root / f"{i // 1000:04d}" / f"img-{i:07d}.png"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # written whole, then renamed: a killed run leaves no stub
            blocks = np.random.default_rng([0, i]).integers(0, 256, (4, 4, 3), dtype=np.uint8)
            part = path.with_suffix(".part")
            Image.fromarray(blocks).resize((32, 32), Image.Resampling.NEAREST).save(part, "PNG")
            part.rename(path)
    return root


def subset(count: int) -> Path:
    """A folder of the first *count* files, hard links (no second copy on disk)."""
    files, folder = make_files(count), OUT / f"first-{count}"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for i in range(count):
            src = files / f"{i // 1000:04d}" / f"img-{i:07d}.png"
            dst = tmp / src.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
        tmp.rename(folder)
    return folder


def checkpoint() -> Path:
    path = OUT / "model.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(path, build_model(MODEL), {})
    return path


def disk_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def index_run(data_dir: Path, folder: Path, *extra: str, env: dict | None = None) -> dict:
    """``lookalike index FOLDER`` into a fresh data dir holding the model; its figures."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    shutil.copy(checkpoint(), data_dir / "model.pt")
    cmd = [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), "-q", "index",
           str(folder), "--json", *extra]
    started = time.perf_counter()
    out, sampler, _ = sampled(cmd, REPO, {**os.environ, **(env or {})})
    summary = json.loads(out)
    return dict(images=summary["added"], job_s=summary["seconds"],
                wall_s=round(time.perf_counter() - started, 1),
                images_per_s=summary["images_per_second"],
                peak_tree_rss_mib=round(sampler.peak_rss / 1024, 1),
                peak_tree_pss_mib=round(sampler.peak_pss / 1024, 1))


def show(name: str, figures: dict) -> None:
    print(json.dumps({"bench": name, "machine": machine(), **figures}, indent=2), flush=True)


# -- (a) and (b) ------------------------------------------------------------------------------

def data_dir_for(args) -> Path:
    """Where (a) leaves the data dir that (b) searches: one per count and index type."""
    kind = "" if args.index_type == "auto" else f"-{args.index_type}"
    return OUT / f"data-{args.count}{kind}"


def bench_index(args) -> None:
    folder = subset(args.count)
    data_dir = data_dir_for(args)
    figures = index_run(data_dir, folder, "--index-type", args.index_type)
    figures.update(catalog_mib=round(disk_mib(data_dir / "catalog.sqlite"), 1),
                   index_mib=round(disk_mib(data_dir / "index.faiss"), 1),
                   target_rss_mib=4096, rss_met=figures["peak_tree_rss_mib"] <= 4096)
    show("index", figures)


def bench_http(args) -> None:
    data_dir = data_dir_for(args)
    if not (data_dir / "index.faiss").exists():
        raise SystemExit(f"run first: python -m bench.scale index --count {args.count} "
                         f"--index-type {args.index_type}")
    folder = subset(args.count)
    rng = np.random.default_rng(0)
    picks = [folder / f"{i // 1000:04d}" / f"img-{i:07d}.png"
             for i in rng.integers(0, args.count, args.requests)]
    bodies = [multipart(p.read_bytes(), reconstruction=False) for p in picks]
    port, log = free_port(), OUT / "http-server.log"
    server = start_server(data_dir, port, 4, log)
    try:
        wait_ready(port, server, log)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        times = []
        for i, body in enumerate(bodies):
            started = time.perf_counter()
            conn.request("POST", "/api/search", body=body, headers={
                "Content-Type": "multipart/form-data; boundary=lookalike-load-boundary"})
            answer = conn.getresponse()
            payload = answer.read()
            times.append(time.perf_counter() - started)
            if answer.status != 200 or not json.loads(payload)["results"]:
                raise SystemExit(f"request {i}: {answer.status} {payload[:200]!r}")
        rss = peak_rss_mb(server.pid)
    finally:
        stop_server(server)
    ms = np.array(times[10:]) * 1000  # the first few warm the caches
    show("http", dict(images=args.count, index_type=args.index_type, requests=len(ms),
                      p50_ms=round(float(np.median(ms)), 2),
                      p99_ms=round(float(np.percentile(ms, 99)), 2), server_peak_rss_mib=rss,
                      target_p50_ms=25, met=bool(np.median(ms) <= 25)))


# -- (c) --------------------------------------------------------------------------------------

def bench_codes(args) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4096, args.dim)).astype(np.float32)
    codes = np.empty((args.count, args.dim), np.float32)
    for start in range(0, args.count, 1_000_000):  # in parts: float64 noise for 10M is 5 GB
        part = codes[start:start + 1_000_000]
        part[:] = normalise(mixture(len(part), args.dim, 0, rng, centres)[0])
    ids = np.arange(args.count, dtype=np.int64) + 1
    queries = normalise(mixture(args.queries, args.dim, 0, rng, centres)[0])  # held out
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index = build_index(ids, codes, args.dim, choice="ivfpq")
    build_s = time.perf_counter() - started
    path = OUT / "codes.faiss"
    index.save(path)
    exact = VectorIndex.create(args.dim)
    exact.add(ids, codes)
    started = time.perf_counter()
    _, truth = exact.search(queries, 10)
    exact_s = (time.perf_counter() - started) / len(queries)
    del exact
    per_code = (index.index.code_size + 8)  # PQ bytes + the int64 id in the inverted list
    grid = []
    default = index.index.nprobe
    for nprobe in sorted({default, 2 * default}):
        for refine in sorted({REFINE_FACTOR, 3 * REFINE_FACTOR}):
            index.index.nprobe = nprobe
            recall, ours_s = reranked(index, codes, queries, truth, refine)
            grid.append(dict(nprobe=nprobe, shortlist=10 * refine, recall_at_10=round(recall, 4),
                             ours_ms=round(ours_s * 1000, 3), speedup=round(exact_s / ours_s, 1)))
    index.index.nprobe = default
    shipped = grid[0]  # the defaults: nprobe as built, REFINE_FACTOR
    show("codes", dict(codes=args.count, dim=args.dim, index=index.faiss_class,
                       build_s=round(build_s, 1), file_mib=round(disk_mib(path), 1),
                       bytes_per_code_in_ram=per_code, exact_ms=round(exact_s * 1000, 2),
                       **shipped, settings=grid,
                       met=bool(shipped["recall_at_10"] >= 0.95 and shipped["speedup"] >= 50
                                and per_code <= 40)))


def reranked(index, codes: np.ndarray, queries: np.ndarray, truth: np.ndarray,
             refine: int) -> tuple[float, float]:
    """Recall@10 and seconds a query of what the search engine does: the shortlist of
    10·*refine*, re-ranked with the full codes (an array standing in for the catalog)."""
    started = time.perf_counter()
    found = []
    for q in queries:  # one at a time, as the server asks
        _, short = index.search(q[None], 10 * refine)
        short = short[0][short[0] != -1]
        scores = index.exact_scores(q[None], codes[short - 1])
        found.append(short[np.argsort(-scores)[:10]])
    seconds = (time.perf_counter() - started) / len(queries)
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])), seconds


# -- (d) and (e) ------------------------------------------------------------------------------

def ray_start_seconds() -> float:
    """What starting a local cluster costs, in a process of its own (the index run pays it)."""
    code = ("import time, ray; t = time.perf_counter(); ray.init(include_dashboard=False, "
            "log_to_driver=False); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def running_cluster_run(folder: Path) -> dict:
    """``--engine ray --ray-address auto`` against a cluster started before (``ray start``), as
    a deployment runs: the job pays for joining it, not for starting it."""
    ray_cli = [str(Path(sys.executable).with_name("ray"))]
    subprocess.run(ray_cli + ["start", "--head", f"--num-cpus={os.cpu_count()}",
                              "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True)
    try:
        return index_run(OUT / "data-ray-running", folder, "--engine", "ray",
                         "--ray-address", "auto")
    finally:
        subprocess.run(ray_cli + ["stop", "--force"], check=True, capture_output=True)


def bench_ray(args) -> None:
    """The three runs in turn, *repeat* times (a shared box drifts between runs): medians."""
    folder = subset(args.count)
    runs = {"local": [], "ray_own_cluster": [], "ray_running_cluster": []}
    for _ in range(args.repeat):
        runs["local"].append(index_run(OUT / "data-local", folder))
        runs["ray_own_cluster"].append(index_run(OUT / "data-ray", folder, "--engine", "ray"))
        runs["ray_running_cluster"].append(running_cluster_run(folder))
    median = {name: float(np.median([r["images_per_s"] for r in rs])) for name, rs in runs.items()}
    ratio = {name: round(median[name] / median["local"], 3) for name in runs}
    show("ray", dict(images=args.count, repeats=args.repeat, runs=runs,
                     median_images_per_s=median, ratio_own_cluster=ratio["ray_own_cluster"],
                     ratio_running_cluster=ratio["ray_running_cluster"],
                     cluster_start_s=round(ray_start_seconds(), 1), target=0.8,
                     met_own=ratio["ray_own_cluster"] >= 0.8,
                     met_running=ratio["ray_running_cluster"] >= 0.8))


def bench_postgres(args) -> None:
    folder = subset(args.count)
    cluster = start_cluster(durable=True)  # fsync on, as SQLite's commits are
    try:
        url = Databases(cluster.url).url(OUT / "data-postgres")
        sqlite = index_run(OUT / "data-sqlite", folder)
        postgres = index_run(OUT / "data-postgres", folder, env={"LOOKALIKE_DATABASE_URL": url})
    finally:
        cluster.stop()
    show("postgres", dict(images=args.count, sqlite=sqlite, postgres=postgres,
                          ratio=round(postgres["job_s"] / sqlite["job_s"], 3), target=1.5,
                          met=postgres["job_s"] / sqlite["job_s"] <= 1.5))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="bench", required=True)
    for name, count in (("index", 1_000_000), ("http", 1_000_000), ("codes", 10_000_000),
                        ("ray", 20_000), ("postgres", 100_000)):
        p = sub.add_parser(name)
        p.add_argument("--count", type=int, default=count)
    for name in ("index", "http"):  # ivfpq: what the refine step costs through HTTP
        sub.choices[name].add_argument("--index-type", default="auto", choices=INDEX_TYPES)
    sub.choices["http"].add_argument("--requests", type=int, default=2000)
    sub.choices["ray"].add_argument("--repeat", type=int, default=3)
    sub.choices["codes"].add_argument("--dim", type=int, default=64)
    sub.choices["codes"].add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    {"index": bench_index, "http": bench_http, "codes": bench_codes, "ray": bench_ray,
     "postgres": bench_postgres}[args.bench](args)


if __name__ == "__main__":
    main()
