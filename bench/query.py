"""Query latency of ``POST /api/search`` against the model + FAISS work it cannot avoid.

Builds a 10k-image data dir in a temporary folder: a small model trained
on the bundled Fashion-MNIST sample, and 10k catalog rows whose codes are
that model's codes of jittered sample images (written straight into the
catalog and the index; no files). Then, query by query and interleaved so
all figures share the same conditions, it times:

* the baseline: encode one image (``TorchEncoder.encode``) + FAISS search;
* ``POST /api/search`` through the Flask test client and through waitress
  on 127.0.0.1, both as the page calls it (with the query's reconstruction,
  one decoder pass more) and with ``reconstruction=false``; bodies are
  multipart forms with a fresh random boundary, as browsers send them;
* the floor: the same request with ``k=0``, which the app refuses (400)
  before any image or model work, and the same body sent to a bare WSGI
  app and to a one-route Flask app under waitress: what HTTP, waitress,
  Flask and the form cost on their own.

Run: ``python -m bench.query`` (about a minute on 2 cores).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# torch, FAISS, Flask and the packages are imported in the functions that use them:
# `python -m bench.query --help` takes 0.3 s that way, 7.7 s with them up here (2 busy cores).

SAMPLE = Path(__file__).resolve().parent.parent / "indexer" / "sample" / "fashion-mnist"


def jitter(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shifted, flipped, re-lit and noisy copies: distinct codes near the real ones."""
    out = np.empty_like(images)
    size = images.shape[1]
    max_shift = max(1, size // 16)
    for i, img in enumerate(images):
        dy, dx = rng.integers(-max_shift, max_shift + 1, 2)
        img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = img.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 6, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def build_data_dir(data_dir: Path, n_images: int, image_size: int, latent_dim: int, epochs: int,
                   seed: int, log) -> dict:
    from sqlalchemy import insert

    from indexer.encoding import TorchEncoder
    from indexer.job import register_model
    from indexer.model import AEConfig, save_checkpoint
    from indexer.train import TrainConfig, fit
    from indexer.training_data import load_folder
    from search.catalog import ImageRecord
    from search.store import Store

    store = Store.open(data_dir)
    loaded = load_folder(SAMPLE, image_size, workers=0, progress=False)
    started = time.perf_counter()
    model, facts = fit(loaded.pixels, AEConfig(image_size=image_size, latent_dim=latent_dim),
                       TrainConfig(epochs=epochs, patience=epochs, device="cpu", seed=seed,
                                   budget=None, invariance=0),
                       progress=False)
    save_checkpoint(store.model_path, model, facts)
    log(f"trained on {len(loaded.pixels)} sample images, {epochs} epochs, "
        f"{time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    encoder = TorchEncoder.from_path(store.model_path, "cpu")
    rng = np.random.default_rng(seed)
    with store.sessions() as session, session.begin():
        model_id = register_model(session, encoder).id
    batch = 500
    for start in range(0, n_images, batch):
        count = min(batch, n_images - start)
        base = loaded.pixels[rng.integers(0, len(loaded.pixels), count)]
        codes, errors = encoder.encode_with_error(jitter(base, rng))
        rows = []
        for j, (code, err) in enumerate(zip(codes, errors)):
            name = f"jitter-{start + j:05d}.png"
            digest = hashlib.sha256(name.encode()).hexdigest()
            rows.append(dict(path=f"/synthetic/{name}", sha256=digest,
                             size=1000, mtime=0.0, width=28, height=28, format="PNG",
                             model_id=model_id, code=code.astype(np.float32).tobytes(),
                             reconstruction_error=float(err)))
        with store.sessions() as session, session.begin():
            session.execute(insert(ImageRecord), rows)
    index = store.rebuild_index(encoder.dim, model_id)
    store.publish_index(index)  # save atomically, bump the generation readers watch
    log(f"catalog + index of {index.ntotal} synthetic images, "
        f"{time.perf_counter() - started:.1f} s")
    return {"images": index.ntotal, "index_type": index.faiss_class, "image_size": image_size,
            "latent_dim": latent_dim, "widths": list(encoder.checkpoint.model.config.widths)}


def describe(data_dir: Path) -> dict:
    """The facts ``build_data_dir`` reports, read back from a data dir it built."""
    from indexer.encoding import TorchEncoder
    from search.store import Store

    store = Store.open(data_dir)
    encoder = TorchEncoder.from_path(store.model_path, "cpu")
    index = store.load_index()
    config = encoder.checkpoint.model.config
    return {"images": index.ntotal, "index_type": index.faiss_class, "image_size": config.image_size,
            "latent_dim": config.latent_dim, "widths": list(config.widths)}


def multipart(data: bytes, k: int, reconstruction: bool) -> tuple[bytes, str]:
    """A browser-shaped form body; like browsers, a fresh random boundary each time."""
    boundary = "----LookalikeBench" + secrets.token_hex(8)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{k}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"reconstruction\"\r\n\r\n"
            f"{'true' if reconstruction else 'false'}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            "filename=\"q.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n")
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), boundary


class WaitressClient:
    """A waitress server on 127.0.0.1 in a thread, and one keep-alive connection to it."""

    def __init__(self, app, threads: int = 4):
        from waitress import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.server.effective_port)

    def search(self, form: tuple[bytes, str]) -> int:
        body, boundary = form
        self.conn.request("POST", "/api/search", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        # The server thread is a daemon and goes with the process; closing the
        # server under a live channel only makes waitress log a spurious error.
        self.conn.close()


def bare_wsgi(environ, start_response):
    """waitress's own share: a WSGI app that reads the body and answers ``{}``."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


def bare_flask():
    """Flask's share on top: one route that answers a small JSON object, nothing else."""
    from flask import Flask, jsonify

    app = Flask("bare")
    app.add_url_rule("/api/search", "search", lambda: jsonify(ok=True), methods=["POST"])
    return app


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def p90(samples: list[float]) -> float:
    return float(np.percentile(samples, 90)) * 1000.0


def run(args: argparse.Namespace) -> dict:
    import faiss
    import torch

    from indexer.encoding import TorchEncoder
    from indexer.images import load_image
    from search.store import Store
    from web.app import create_app

    log = (lambda msg: print(msg, file=sys.stderr)) if not args.quiet else (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        data_dir = Path(args.data_dir or tmp)
        if args.reuse and (data_dir / "index.faiss").exists():
            facts = describe(data_dir)
            log(f"reusing {data_dir} ({facts['images']} images)")
        else:
            facts = build_data_dir(data_dir, args.images, args.image_size, args.latent_dim,
                                   args.epochs, args.seed, log)
        if args.threads > 0:  # after the batch work, which gains from every core
            torch.set_num_threads(args.threads)
            faiss.omp_set_num_threads(args.threads)
        store = Store.open(data_dir)
        encoder = TorchEncoder.from_path(store.model_path, "cpu")
        index = store.load_index()
        app = create_app({"LOOKALIKE_DATA_DIR": str(data_dir),
                          "LOOKALIKE_INFERENCE_THREADS": args.threads, "LOOKALIKE_DEVICE": "cpu"})
        client = app.test_client()
        server = WaitressClient(app)
        bare_server, flask_server = WaitressClient(bare_wsgi), WaitressClient(bare_flask())
        files = sorted(SAMPLE.rglob("*.png"))
        queries = [files[i % len(files)].read_bytes() for i in range(args.queries)]

        t: dict[str, list[float]] = {name: [] for name in (
            "decode_file", "encode", "search", "decoder", "client", "client_lean",
            "waitress", "waitress_lean", "client_floor", "waitress_floor", "bare_wsgi",
            "bare_flask")}

        def timed(name: str, fn):
            started = time.perf_counter()
            result = fn()
            t[name].append(time.perf_counter() - started)
            return result

        def client_search(form: tuple[bytes, str]) -> int:
            body, boundary = form
            return client.post("/api/search", data=body,
                               content_type=f"multipart/form-data; boundary={boundary}").status_code

        plan = [(True, q) for q in queries[:args.warmup]] + [(False, q) for q in queries]
        for warm, data in plan:
            pixels = timed("decode_file", lambda: load_image(data, encoder.image_size))
            code = timed("encode", lambda: encoder.encode(pixels[None]))
            timed("search", lambda: index.search(code, args.k))
            timed("decoder", lambda: encoder.decode(code))
            statuses = [
                timed("client", lambda: client_search(multipart(data, args.k, True))),
                timed("client_lean", lambda: client_search(multipart(data, args.k, False))),
                timed("waitress", lambda: server.search(multipart(data, args.k, True))),
                timed("waitress_lean", lambda: server.search(multipart(data, args.k, False))),
            ]
            if set(statuses) != {200}:
                raise SystemExit(f"a search failed: {statuses}")
            # The floor: the same request with k=0, which the app refuses (400)
            # right after reading the form, before any image or model work.
            refused = [timed("client_floor", lambda: client_search(multipart(data, 0, False))),
                       timed("waitress_floor", lambda: server.search(multipart(data, 0, False)))]
            if set(refused) != {400}:
                raise SystemExit(f"k=0 was not refused: {refused}")
            bare = [timed("bare_wsgi", lambda: bare_server.search(multipart(data, 0, False))),
                    timed("bare_flask", lambda: flask_server.search(multipart(data, 0, False)))]
            if set(bare) != {200}:
                raise SystemExit(f"a bare server failed: {bare}")
            if warm:
                for samples in t.values():
                    samples.pop()
        for each in (server, bare_server, flask_server):
            each.close()
        app.extensions["lookalike"].close()

    baseline = p50(t["encode"]) + p50(t["search"])
    from_bytes = baseline + p50(t["decode_file"])
    with_decoder = baseline + p50(t["decoder"])
    return {
        **facts, "queries": args.queries, "k": args.k, "threads": args.threads,
        "torch": torch.__version__, "faiss": faiss.__version__,
        "p50_ms": {name: round(p50(samples), 3) for name, samples in t.items()},
        "p90_ms": {name: round(p90(samples), 3) for name, samples in t.items()},
        "baseline_ms": round(baseline, 3),
        "baseline_from_bytes_ms": round(from_bytes, 3),
        "baseline_with_decoder_ms": round(with_decoder, 3),
        "ratio": {
            "client": round(p50(t["client"]) / baseline, 2),
            "client_lean": round(p50(t["client_lean"]) / baseline, 2),
            "waitress": round(p50(t["waitress"]) / baseline, 2),
            "waitress_lean": round(p50(t["waitress_lean"]) / baseline, 2),
            "client_lean_vs_from_bytes": round(p50(t["client_lean"]) / from_bytes, 2),
            "waitress_lean_vs_from_bytes": round(p50(t["waitress_lean"]) / from_bytes, 2),
            "client_vs_with_decoder": round(p50(t["client"]) / with_decoder, 2),
            "waitress_vs_with_decoder": round(p50(t["waitress"]) / with_decoder, 2),
            "client_floor": round(p50(t["client_floor"]) / baseline, 2),
            "waitress_floor": round(p50(t["waitress_floor"]) / baseline, 2),
            "bare_wsgi": round(p50(t["bare_wsgi"]) / baseline, 2),
            "bare_flask": round(p50(t["bare_flask"]) / baseline, 2),
        },
    }


def report(r: dict) -> str:
    p, q, ratio = r["p50_ms"], r["p90_ms"], r["ratio"]
    lines = [
        f"Lookalike query benchmark: {r['images']:,} images ({r['index_type']}, cosine), model "
        f"{r['image_size']} px, widths {tuple(r['widths'])}, {r['latent_dim']}-d codes; "
        f"k={r['k']}; "
        f"{r['queries']} queries; {r['threads']} inference thread(s); torch {r['torch']}, "
        f"faiss {r['faiss']}",
        "",
        "| step | p50 ms | p90 ms | ratio to baseline |",
        "|---|---:|---:|---:|",
        f"| encode one image (TorchEncoder.encode) | {p['encode']:.3f} | {q['encode']:.3f} | |",
        f"| FAISS search, k={r['k']} | {p['search']:.3f} | {q['search']:.3f} | |",
        f"| **baseline: encode + search** | **{r['baseline_ms']:.3f}** | | 1.00 |",
        f"| (not in baseline) read the PNG upload (load_image) | {p['decode_file']:.3f} | "
        f"{q['decode_file']:.3f} | |",
        f"| (not in baseline) decode the code (reconstruction) | {p['decoder']:.3f} | "
        f"{q['decoder']:.3f} | |",
        f"| POST /api/search, test client, reconstruction=false | {p['client_lean']:.3f} | "
        f"{q['client_lean']:.3f} | {ratio['client_lean']:.2f} |",
        f"| POST /api/search, waitress 127.0.0.1, reconstruction=false | "
        f"{p['waitress_lean']:.3f} | "
        f"{q['waitress_lean']:.3f} | {ratio['waitress_lean']:.2f} |",
        f"| POST /api/search, test client, default (with reconstruction) | {p['client']:.3f} | "
        f"{q['client']:.3f} | {ratio['client']:.2f} |",
        f"| POST /api/search, waitress 127.0.0.1, default (with reconstruction) | "
        f"{p['waitress']:.3f} | {q['waitress']:.3f} | {ratio['waitress']:.2f} |",
        f"| floor: POST /api/search refused (k=0, 400) before reading the image, test client | "
        f"{p['client_floor']:.3f} | {q['client_floor']:.3f} | {ratio['client_floor']:.2f} |",
        f"| floor: same, waitress 127.0.0.1 | {p['waitress_floor']:.3f} | "
        f"{q['waitress_floor']:.3f} | {ratio['waitress_floor']:.2f} |",
        f"| waitress alone: same body to a WSGI app that answers {{}} | {p['bare_wsgi']:.3f} | "
        f"{q['bare_wsgi']:.3f} | {ratio['bare_wsgi']:.2f} |",
        f"| waitress + Flask: same body to a one-route Flask app | {p['bare_flask']:.3f} | "
        f"{q['bare_flask']:.3f} | {ratio['bare_flask']:.2f} |",
        "",
        f"waitress, reconstruction=false: {p['waitress_lean'] - r['baseline_ms']:.3f} ms over the "
        f"baseline, of which the floor (HTTP, waitress, Flask, form, JSON error) is "
        f"{p['waitress_floor']:.3f} ms and reading the upload {p['decode_file']:.3f} ms; the rest, "
        f"{p['waitress_lean'] - r['baseline_ms'] - p['waitress_floor'] - p['decode_file']:.3f} ms, "
        "is the catalog rows, the freshness check and the JSON answer",
        f"reconstruction=false vs read upload + encode + search "
        f"({r['baseline_from_bytes_ms']:.3f} ms): test client "
        f"{ratio['client_lean_vs_from_bytes']:.2f}, "
        f"waitress {ratio['waitress_lean_vs_from_bytes']:.2f}",
        f"default request vs encode + decode + search ({r['baseline_with_decoder_ms']:.3f} ms): "
        f"test client {ratio['client_vs_with_decoder']:.2f}, "
        f"waitress {ratio['waitress_vs_with_decoder']:.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.query", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--latent-dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch/FAISS intra-op threads, baseline and app alike "
                         "(0: library default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", help="build the data dir here instead of a temporary folder")
    ap.add_argument("--reuse", action="store_true",
                    help="with --data-dir: use the index already there instead of rebuilding")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
