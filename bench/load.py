"""Load test of ``lookalike serve``: 16 client threads, 2,000 requests, and no errors.

Prepares a data dir under ``bench/out/load-data`` with the ``lookalike`` CLI
(reused when it is already there): a small model trained on the bundled
Fashion-MNIST sample (32 px, 3 epochs) and an index of the sample. Starts
``lookalike serve`` on 127.0.0.1 in a subprocess, waits until ``/healthz``
says it is ready, then 16 client threads, each with a keep-alive
connection, share one fixed, seeded list of requests:

* ~70 % ``POST /api/search`` with a sample image as multipart (half with
  the query's reconstruction, as the page asks, half without);
* ~20 % ``GET /api/images/<id>/similar``;
* ~10 % ``GET /images/<id>/thumbnail`` (made on first use, then cached).

It prints the requests sent, the errors (a non-2xx answer, a malformed
body or an exception; there must be none), the throughput, p50/p99
latency per kind of request, and the machine; then it stops the server.
Exits 1 on any error or when the time bound cut the run short.

Run: ``python -m bench.load`` (one to two minutes on 2 cores, the first
time a little longer for training).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "indexer" / "sample" / "fashion-mnist"
OUT = Path(__file__).resolve().parent / "out"
BOUNDARY = "lookalike-load-boundary"
KINDS = ("search", "search+recon", "similar", "thumbnail")


# -- the data dir and the server ---------------------------------------------------------------

def lookalike(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "web.cli", "--data-dir", str(data_dir), *args]


def server_environment() -> dict[str, str]:
    """This environment without LOOKALIKE_* settings: the run measures the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def prepare(data_dir: Path, log) -> None:
    """Train and index once; a data dir with an index is reused as it is."""
    if (data_dir / "index.faiss").is_file():
        log(f"reusing {data_dir}")
        return
    log(f"training a 32 px model on {SAMPLE} and indexing it into {data_dir} ...")
    started = time.monotonic()
    subprocess.run(lookalike(data_dir, "-q", "index", str(SAMPLE), "--image-size", "32",
                             "--epochs", "3", "--device", "cpu"),
                   check=True, cwd=ROOT, env=server_environment())
    log(f"  done in {time.monotonic() - started:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, port: int, threads: int, log_path: Path) -> subprocess.Popen:
    """``lookalike serve`` in its own process, its output in *log_path* (a pipe could fill)."""
    log_file = open(log_path, "wb")
    try:
        return subprocess.Popen(
            lookalike(data_dir, "serve", "--host", "127.0.0.1", "--port", str(port),
                      "--threads", str(threads)),
            cwd=ROOT, env=server_environment(), stdout=log_file, stderr=subprocess.STDOUT)
    finally:
        log_file.close()  # the child has its own copy


def wait_ready(port: int, server: subprocess.Popen, log_path: Path, limit: float = 180) -> None:
    """Poll /healthz until it says ready; fail early if the server died."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n"
                               + log_path.read_text(errors="replace")[-2000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = json.loads(response.read())
            conn.close()
            if response.status == 200 and body.get("ready"):
                return
            if response.status == 200:
                raise RuntimeError(f"the server is up but not ready: {body.get('message')}")
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {limit:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    """Ctrl-C first (waitress closes cleanly on it), then harder."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(15)


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- the requests ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    path: str
    body: bytes | None = None


def multipart(image: bytes, reconstruction: bool, k: int = 10) -> bytes:
    fields = "".join(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                     f"{value}\r\n" for name, value in
                     (("k", k), ("reconstruction", "true" if reconstruction else "false")))
    head = (f"{fields}--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            "filename=\"query.png\"\r\nContent-Type: image/png\r\n\r\n")
    return head.encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def plan(n: int, images: list[bytes], ids: list[int], seed: int) -> list[Request]:
    """*n* requests in a fixed order: the same mix every run with the same seed."""
    rng = random.Random(seed)
    requests = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.7:
            recon = rng.random() < 0.5
            body = multipart(rng.choice(images), recon)
            requests.append(Request("search+recon" if recon else "search", "POST",
                                    "/api/search", body))
        elif roll < 0.9:
            requests.append(Request("similar", "GET",
                                    f"/api/images/{rng.choice(ids)}/similar?k=10"))
        else:
            requests.append(Request("thumbnail", "GET", f"/images/{rng.choice(ids)}/thumbnail"))
    return requests


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.sent += 1
            self.latencies[kind].append(seconds)
            if error:
                self.errors[f"{kind}: {error}"] += 1


def send(conn: http.client.HTTPConnection, request: Request) -> str | None:
    """One request on a keep-alive connection; the error, or None when it went right."""
    headers = ({"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
               if request.body is not None else {})
    conn.request(request.method, request.path, body=request.body, headers=headers)
    response = conn.getresponse()
    body = response.read()
    if not 200 <= response.status < 300:
        return f"HTTP {response.status} {body[:120]!r}"
    if request.kind == "thumbnail":
        return None if body[:3] == b"\xff\xd8\xff" else "not a JPEG"
    answer = json.loads(body)
    return None if answer.get("results") else "no results"


class Turns:
    """Hands out request numbers 0, 1, 2, ... to the client threads, each exactly once."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next - 1


def client(port: int, requests: list[Request], turns: Turns, results: Results, deadline: float,
           timeout: float) -> None:
    """One client thread: take the next request until none are left or time is up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        while time.monotonic() < deadline:
            i = turns.take()
            if i >= len(requests):
                return
            started = time.perf_counter()
            try:
                error = send(conn, requests[i])
            except (OSError, http.client.HTTPException, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                conn.close()  # a fresh connection for the next one
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            results.record(requests[i].kind, time.perf_counter() - started, error)
    finally:
        conn.close()


def run_load(port: int, requests: list[Request], clients: int, limit: float,
             timeout: float) -> tuple[Results, float]:
    results, turns = Results(), Turns()
    deadline = time.monotonic() + limit
    threads = [threading.Thread(target=client, args=(port, requests, turns, results, deadline,
                                                     timeout), name=f"client-{n}")
               for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - started


# -- the report ------------------------------------------------------------------------------------

def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] * 1000


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average %.2f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"{usable} usable of {os.cpu_count()} cores, {cpu}; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}{load}")


def report(results: Results, seconds: float, planned: int, args: argparse.Namespace,
           images: int, server_rss: float | None) -> str:
    errors = sum(results.errors.values())
    lines = [
        f"Lookalike load test: `lookalike serve` (waitress, {args.server_threads} threads, "
        f"defaults otherwise) on 127.0.0.1, {images} indexed images (32 px model); "
        f"{args.clients} client threads",
        f"machine: {machine()}",
        "",
        f"requests: {results.sent} of {planned} sent, errors: {errors}, "
        f"wall time {seconds:.1f} s, throughput {results.sent / seconds:.1f} requests/s"
        + (f", server peak RSS {server_rss:.0f} MB" if server_rss else ""),
        "",
        "| request | count | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    names = {"search": "POST /api/search, reconstruction=false",
             "search+recon": "POST /api/search, with reconstruction",
             "similar": "GET /api/images/<id>/similar", "thumbnail": "GET /images/<id>/thumbnail"}
    every = []
    for kind in KINDS:
        samples = results.latencies.get(kind, [])
        every += samples
        if samples:
            lines.append(f"| {names[kind]} | {len(samples)} | {percentile(samples, 50):.1f} | "
                         f"{percentile(samples, 99):.1f} |")
    if every:
        lines.append(f"| all | {len(every)} | {percentile(every, 50):.1f} | "
                     f"{percentile(every, 99):.1f} |")
    for error, count in results.errors.most_common(10):
        lines.append(f"error ×{count}: {error}")
    return "\n".join(lines)


def catalog_ids(data_dir: Path) -> list[int]:
    from search.store import Store

    store = Store.open(data_dir)
    try:
        return sorted(store.catalog_ids())
    finally:
        store.sessions.kw["bind"].dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--server-threads", type=int, default=4, help="lookalike serve --threads")
    ap.add_argument("--time-limit", type=float, default=600,
                    help="seconds after which no new request is sent")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per request")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=OUT / "load-data")
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    prepare(args.data_dir, log)
    ids = catalog_ids(args.data_dir)
    images = [p.read_bytes() for p in sorted(SAMPLE.rglob("*.png"))]
    requests = plan(args.requests, images, ids, args.seed)

    port, log_path = free_port(), args.data_dir.parent / "load-server.log"
    server = start_server(args.data_dir, port, args.server_threads, log_path)
    try:
        wait_ready(port, server, log_path)
        log(f"server ready on 127.0.0.1:{port}; {len(requests)} requests from "
            f"{args.clients} threads ...")
        results, seconds = run_load(port, requests, args.clients, args.time_limit, args.timeout)
        rss = peak_rss_mb(server.pid)
    finally:
        stop_server(server)
    print(report(results, seconds, len(requests), args, len(ids), rss))
    return 0 if not results.errors and results.sent == len(requests) else 1


if __name__ == "__main__":
    sys.exit(main())
