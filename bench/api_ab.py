"""Old app against new: the same random requests to both, the same answers expected (#25).

Builds one small library (the tests' tiny model over 36 synthetic images),
then makes N seeded random requests over every operation of the OLD app's
OpenAPI document: each parameter's values drawn from good ones, edges,
out-of-range and oversize numbers, wrong types, empty values, JSON strings
where numbers belong, nulls; sent in the query string, a multipart or
urlencoded form, or a JSON body (with the same parameter in two places now
and then); images valid, corrupt, empty, missing or badly encoded; path ids
in and out of range. Each app (the old commit's tree on PYTHONPATH, or
this one) runs in a subprocess of its own on its own copy of the library,
and answers the requests in the same order through Flask's test client
(a re-index is waited for, so writes leave both data dirs alike); each
twice, old-new-new-old. Then, per request: status code, the error
``code``, the content type and, for a JSON answer, its keys in order and
their values' types (recursively) must agree. Last, the two OpenAPI
documents are compared.

Run: ``python -m bench.api_ab --old /tmp/ab-old`` where /tmp/ab-old is
``git worktree add /tmp/ab-old 4c4362a`` (about two minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

import web
from search.catalog import ImageRecord
from search.store import Store
from tests.synthetic import draw, png_bytes
from tests.web.conftest import build_library
from web.admin import app_jobs

if hasattr(web, "create_app"):  # the old tree (--old): the factory was in web/__init__
    create_app, openapi_document = web.create_app, web.openapi_document
else:  # its home since #25 (asked for only here: the old tree has no web.app of its own)
    from web.app import create_app, openapi_document

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ab-token"
DELETABLE = 6  # of the 36 images
INT_EDGES = ["", " ", "abc", "5.0", "5.5", "+3", "-1", "0", "1e3", "10" * 15, "9" * 25, " 7 ",
             "0x10", "٣"]
FLAGS = ["true", "false", "1", "0", "yes", "no", "on", "off", "TRUE", " On ", "maybe", "", "2"]
JSON_ODD = [None, "5", "", True, False, [1], {"a": 1}, 5.0, 5.5, -1, 10**25, "true", 0]


# -- the requests ---------------------------------------------------------------------------------

def text_value(rng: random.Random, schema: dict[str, Any]) -> str:
    """A value as text for a parameter with this JSON Schema: often good, often not."""
    kind = schema.get("type")
    if rng.random() < 0.25:
        return rng.choice(INT_EDGES + FLAGS + ["2024-02-30", "x" * 5000, "1,2,3,4", "a,b,c,d"])
    if kind == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", 10**6)
        return str(rng.choice([low, high, low - 1, high + 1, rng.randint(low, min(high, low + 50)),
                               2**63, 2**64, -(2**63) - 1]))
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 2.0)
        return rng.choice([str(low), str(high), str(low - 0.01), str(high + 0.5), "nan", "inf",
                           "1e400", "-0.0", ".5", "5.", f"{rng.uniform(low, high):.4f}"])
    if kind == "boolean":
        return rng.choice(FLAGS)
    if "enum" in schema:
        good = rng.choice(schema["enum"])
        return rng.choice([good, good.upper(), f" {good} ", "bogus", ""])
    if schema.get("format") == "date":
        return rng.choice(["2024-01-31", "1970-01-01", "9999-12-31", "0001-01-01", "2024-13-01",
                           "yesterday", "2024-1-5", ""])
    if "pattern" in schema:  # the search box
        return rng.choice(["0,0,10,10", "10,10,0,0", "5,5,5,5", "0,0,1,1", "1,2,3",
                           "99999,99999,100000,100000", "0,0,999999999,999999999", ""])
    return rng.choice(["/", "/nowhere", "", "x" * 4097, "collection", "%2F"])


def json_value(rng: random.Random, schema: dict[str, Any]) -> Any:
    """A JSON value for a parameter with this JSON Schema (of a body's anyOf)."""
    inner = schema.get("anyOf", [schema])[0]
    if rng.random() < 0.3:
        return rng.choice(JSON_ODD)
    kind = inner.get("type")
    if kind == "integer":
        low, high = inner.get("minimum", 0), inner.get("maximum", 10**6)
        return rng.choice([low, high, low - 1, high + 1, float(low), low + 0.5, str(low),
                           rng.randint(low, min(high, low + 50))])
    if kind == "number":
        low, high = inner.get("minimum", 0.0), inner.get("maximum", 2.0)
        return rng.choice([low, high, high + 1, int(low), str(high), rng.uniform(low, high)])
    if kind == "boolean":
        return rng.choice([True, False, "true", 1, None])
    text = text_value(rng, inner)
    return rng.choice([text, text, 5, None])


def good_value(rng: random.Random, schema: dict[str, Any], as_json: bool) -> Any:
    """A value the parameter takes, as text or as JSON."""
    kind = schema.get("type")
    if kind == "integer":
        value: Any = rng.randint(schema.get("minimum", 0), min(schema.get("maximum", 50),
                                                                schema.get("minimum", 0) + 50))
    elif kind == "number":
        value = rng.uniform(schema.get("minimum", 0.0), schema.get("maximum", 1.0))
    elif kind == "boolean":
        value = rng.choice([True, False])
    elif "enum" in schema:
        value = rng.choice(schema["enum"])
    elif schema.get("format") == "date":
        value = rng.choice(["1970-01-01", "2030-12-31"])
    elif "pattern" in schema:
        value = rng.choice(["0,0,20,20", "40,40,8,8", "10,0,11,48"])
    else:
        value = "/"
    return value if as_json else str(value).lower()


def image_bytes(rng: random.Random, images: dict[str, bytes]) -> bytes:
    return images[rng.choice(["png", "png", "png", "jpeg", "corrupt", "empty", "text", "gif"])]


def upload_request(rng: random.Random, method: str, path: str, op: dict[str, Any],
                   doc: dict[str, Any], images: dict[str, bytes]) -> dict[str, Any]:
    """A request to an operation that takes an image: multipart, JSON or something else."""
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form_props = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
    params = {n: p for n, p in form_props.items() if n != "image"}
    if rng.random() < 0.3:  # a request the endpoint takes: its answer's shape is compared
        return good_upload(rng, method, path, params, images)
    query = {n: text_value(rng, p["anyOf"][0]) for n, p in params.items() if rng.random() < 0.3}
    chosen = [n for n in params if rng.random() < 0.4]
    data = image_bytes(rng, images)
    how = rng.choices(["multipart", "json", "urlencoded", "text", "none"], [45, 40, 5, 5, 5])[0]
    request: dict[str, Any] = {"method": method, "path": path, "query": query}
    if how == "multipart":
        fields = {n: text_value(rng, params[n]["anyOf"][0]) for n in chosen}
        name = rng.choices(["image", "file", "k"], [90, 5, 5])[0] if rng.random() < 0.95 else None
        request["form"] = fields
        if name is not None:
            request["file"] = [name, base64.b64encode(data).decode()]
    elif how == "json":
        body: Any = {n: json_value(rng, params[n]) for n in chosen}
        encoded = base64.b64encode(data).decode()
        body["image_base64"] = rng.choices(
            [encoded, "data:image/png;base64," + encoded, encoded.rstrip("="), "!!notbase64",
             "data:image/png,xyz", 12, None, ""], [60, 8, 8, 6, 4, 4, 5, 5])[0]
        if rng.random() < 0.03:
            body = rng.choice([[body], "text", None, 5])
        request["json"] = body
        if rng.random() < 0.03:
            request["raw"], request["content_type"] = "{not json", "application/json"
            del request["json"]
    elif how == "urlencoded":
        request["form"] = {n: text_value(rng, params[n]["anyOf"][0]) for n in chosen}
    elif how == "text":
        request["raw"], request["content_type"] = "hello", "text/plain"
    return request


def good_upload(rng: random.Random, method: str, path: str, params: dict[str, Any],
                images: dict[str, bytes]) -> dict[str, Any]:
    data = images[rng.choice(["png", "jpeg", "gif"])]
    where = {n: rng.choice(["query", "body", "both"]) for n in params if rng.random() < 0.6}
    query = {n: good_value(rng, params[n]["anyOf"][0], False) for n, w in where.items()
             if w != "body"}
    request: dict[str, Any] = {"method": method, "path": path, "query": query}
    as_json = rng.random() < 0.5
    body = {n: good_value(rng, params[n]["anyOf"][0], as_json) for n, w in where.items()
            if w != "query"}
    if as_json:
        request["json"] = {**body, "image_base64": base64.b64encode(data).decode()}
    else:
        request["form"], request["file"] = body, ["image", base64.b64encode(data).decode()]
    return request


def decision_body(rng: random.Random, ids: list[int]) -> Any:
    kind = rng.choice(["not_duplicates", "not_duplicates", "keep", "keep", "bogus", None, 5])
    images = rng.choice([rng.sample(ids, 2), rng.sample(ids, 2), rng.sample(ids, 3),
                         [ids[0], ids[0]], [ids[0]], [], [ids[0], "2"], [ids[0], 2.0],
                         [ids[0], 10**20], [-1, ids[1]], "1,2", [ids[0], 99999]])
    body: Any = {"kind": kind, "images": images}
    if kind == "keep" or rng.random() < 0.2:
        body["keep"] = rng.choice([images[0] if isinstance(images, list) and images else 1,
                                   ids[5], "3", None, -2, 99999])
    if rng.random() < 0.1:
        body["extra"] = 1
    if rng.random() < 0.05:
        body = rng.choice([[body], "x", None])
    return body


def path_value(rng: random.Random, param: dict[str, Any], ids: list[int]) -> str:
    if param["schema"].get("type") == "integer":
        return str(rng.choice(ids + ids + [0, 1, 10**6, 2**63 - 1, 2**63, 2**64, -1, "abc"]))
    return rng.choice(["deadbeefdeadbeef", "x", "..", "%2e%2e"])


def make_requests(doc: dict[str, Any], n: int, seed: int, ids: list[int], code: str,
                  images: dict[str, bytes]) -> list[dict[str, Any]]:
    """*n* requests, every operation in turn and then at random, from the old document."""
    rng = random.Random(seed)
    # The admin deletes only the last few images, so that the others stay for the rest.
    kept, deletable = ids[:-DELETABLE], ids[-DELETABLE:]
    operations = [(m.upper(), p, op) for p, ops in doc["paths"].items() for m, op in ops.items()
                  if p != "/api/admin/reindex"]  # re-indexing: a few, at the end
    made = []
    for i in range(n):
        method, template, op = operations[i] if i < len(operations) else rng.choice(operations)
        path = template
        for param in op.get("parameters", []):
            if param["in"] == "path":
                path = path.replace("{" + param["name"] + "}", path_value(
                    rng, param, deletable if template == "/api/admin/images/{image_id}" else kept))
        body = op.get("requestBody", {}).get("content", {})
        if "multipart/form-data" in body:
            request = upload_request(rng, method, path, op, doc, images)
        else:
            # A required parameter is a catalog id: mostly one of the library's, else
            # anything, so that an operation with three of them still answers 200 at times.
            query = {p["name"]: rng.choice(list(map(str, kept)))
                     if p["required"] and rng.random() < 0.8 else text_value(rng, p["schema"])
                     for p in op.get("parameters", []) if p["in"] == "query"
                     and (p["required"] and rng.random() < 0.95 or rng.random() < 0.5)}
            request = {"method": method, "path": path, "query": query}
            if template == "/api/duplicates/decisions":
                request["json"] = decision_body(rng, kept)
                if rng.random() < 0.1:
                    request["raw"], request["content_type"] = "kind=keep", "text/plain"
                    del request["json"]
            elif template == "/api/decompress":
                way = rng.choice(["json", "json", "raw", "raw", "multipart", "bad"])
                blob = rng.choice([code, code, code[:20], base64.b64encode(b"junk").decode(), ""])
                if way == "json":
                    request["json"] = rng.choice([{"code_base64": blob}, {"code_base64": blob},
                                                  {"code": blob}, [blob], {"code_base64": 5}])
                elif way == "raw":
                    request["raw_b64"] = blob
                    request["content_type"] = "application/octet-stream"
                elif way == "multipart":
                    request["file"] = ["code", blob]
                else:
                    request["raw"], request["content_type"] = "{oops", "application/json"
            elif rng.random() < 0.05 and method != "GET":
                request["json"] = {"folders": ["/etc"]}
        request["auth"] = rng.random() < 0.9
        other = rng.random()  # now and then a HEAD, an OPTIONS or a method no route takes
        if other < 0.02 and method == "GET":
            request["method"] = "HEAD"
        elif other < 0.04:
            request["method"] = rng.choice(["OPTIONS", "PUT", "PATCH"])
        made.append(request)
    made += [{"method": "POST", "path": "/api/admin/reindex", "query": {}, "auth": True}
             for _ in range(3)]
    return made


# -- one side: an app answering them ------------------------------------------------------------

def shape(value: Any) -> Any:
    """The keys of a JSON value in order and its values' types, recursively (lists: the
    shape of each item)."""
    if isinstance(value, dict):
        return [[k, shape(v)] for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def unbase64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def answer_all(data_dir: str, requests_file: str, out: str) -> None:
    """Run in a subprocess with one side's tree first on sys.path (so ``web`` is its)."""
    print(f"answering with {web.__file__}", flush=True)
    app = create_app({"TESTING": True, "LOOKALIKE_DATA_DIR": data_dir,
                      "LOOKALIKE_ADMIN_TOKEN": TOKEN, "LOOKALIKE_INFERENCE_THREADS": 0})
    client = app.test_client()
    results = []
    for request in json.loads(Path(requests_file).read_text()):
        kwargs: dict[str, Any] = {"query_string": request["query"],
                                  "headers": {"Authorization": f"Bearer {TOKEN}"}
                                  if request["auth"] else {}}
        if "json" in request:
            kwargs["json"] = request["json"]
        elif "raw" in request:
            kwargs["data"], kwargs["content_type"] = request["raw"], request["content_type"]
        elif "raw_b64" in request:
            kwargs["data"] = unbase64(request["raw_b64"])
            kwargs["content_type"] = request["content_type"]
        elif "file" in request or "form" in request:
            data = dict(request.get("form", {}))
            if "file" in request:
                name, blob = request["file"]
                data[name] = (io.BytesIO(unbase64(blob)), "upload.bin")
                kwargs["content_type"] = "multipart/form-data"
            kwargs["data"] = data
        started = time.perf_counter()
        response = client.open(request["path"], method=request["method"], **kwargs)
        ms = (time.perf_counter() - started) * 1000
        body = response.get_json(silent=True) if response.is_json else None
        error = body.get("error") if isinstance(body, dict) else None
        results.append({"status": response.status_code,
                        "code": error.get("code") if isinstance(error, dict) else None,
                        "type": response.mimetype,
                        "shape": shape(body) if response.status_code < 300
                        and request["path"] != "/api/openapi.json" else None,  # document_diff
                        "ms": ms})
        for job in app_jobs(app).all():
            job.done.wait(300)
    app.extensions["lookalike"].close()
    Path(out).write_text(json.dumps(results))


# -- both ----------------------------------------------------------------------------------------

def build(root: Path) -> tuple[Path, list[int], str, dict[str, bytes]]:
    """The library, its ids, a code file the model wrote, and the images to upload."""
    library = build_library(root, per_class=12)
    store = Store.open(library.data_dir)
    with store.sessions() as s:
        ids = sorted(s.scalars(select(ImageRecord.id)))
    store.close()
    picture = draw("circle", np.random.default_rng(0), 48)
    images = {"png": png_bytes(picture, "PNG"), "jpeg": png_bytes(picture, "JPEG"),
              "gif": png_bytes(picture, "GIF"), "corrupt": png_bytes(picture, "PNG")[:60],
              "empty": b"", "text": b"just some text, not an image"}
    client = create_app({"TESTING": True, "LOOKALIKE_DATA_DIR": str(library.data_dir)}
                        ).test_client()
    made = client.post("/api/compress", json={"image_base64": base64.b64encode(
        images["png"]).decode()})
    return library.data_dir, ids, made.get_json()["code_base64"], images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="/tmp/ab-old", help="the old commit's worktree")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--side", nargs=3, metavar=("DATA_DIR", "REQUESTS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return answer_all(*args.side)
    with tempfile.TemporaryDirectory(prefix="api-ab-") as tmp:
        work = Path(tmp)
        data_dir, ids, code, images = build(work / "library")
        doc = json.loads(subprocess.run(
            [sys.executable, "-c", "import json, web; print(json.dumps(web.openapi_document()))"],
            env={**os.environ, "PYTHONPATH": args.old}, cwd=args.old, check=True,
            capture_output=True, text=True).stdout)
        requests = make_requests(doc, args.requests, args.seed, ids, code, images)
        (work / "requests.json").write_text(json.dumps(requests))
        # Each app twice, old-new-new-old, so that neither has the quieter half of the box's
        # time to itself: a side's two runs must answer alike; a request's time is the
        # faster of its side's two.
        trees = {"old": Path(args.old), "new": ROOT}
        runs: dict[str, list] = {"old": [], "new": []}
        for i, side in enumerate(("old", "new", "new", "old")):
            runs[side].append(answer_on(trees[side], data_dir, requests, work / f"run{i}"))
        timings = {side: [min(a.pop("ms"), b.pop("ms")) for a, b in zip(*found)]
                   for side, found in runs.items()}
        for side, (first, second) in runs.items():
            print(f"{side}: its two runs agree on {sum(a == b for a, b in zip(first, second))} "
                  f"of {len(requests)}")
        answers = {side: found[0] for side, found in runs.items()}
        report(requests, answers["old"], answers["new"])
        print_timings(requests, answers["old"], timings)
        new_doc = json.loads(json.dumps(openapi_document()))
        print("the document, old → new:", *document_diff(doc, new_doc) or ["the same"],
              sep="\n  ")


def answer_on(tree: Path, data_dir: Path, requests: list[dict], work: Path) -> list[dict]:
    """The answers of the app in *tree* to *requests*, on a copy of *data_dir*."""
    work.mkdir()
    shutil.copytree(data_dir, work / "data")
    (work / "requests.json").write_text(json.dumps(requests))
    subprocess.run([sys.executable, __file__, "--side", str(work / "data"),
                    str(work / "requests.json"), str(work / "answers.json")],
                   env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True)
    return json.loads((work / "answers.json").read_text())


def document_diff(old: Any, new: Any, where: str = "") -> list[str]:
    """Where two OpenAPI documents differ (key order aside)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in dict.fromkeys([*old, *new]) for line in (
            [f"+ {where}/{key}"] if key not in old else [f"- {where}/{key}"] if key not in new
            else document_diff(old[key], new[key], f"{where}/{key}"))]
    return [] if old == new else [f"~ {where}: {json.dumps(old)[:80]} → {json.dumps(new)[:80]}"]


def report(requests: list[dict], old: list[dict], new: list[dict]) -> list[tuple]:
    """Print the counts and each difference; the differences."""
    per_op: Counter = Counter()
    answered: Counter = Counter()  # 2xx, by the old app: their JSON shapes are compared
    agree: Counter = Counter()
    statuses: Counter = Counter()
    differences = []
    for request, a, b in zip(requests, old, new):
        op = label(request)
        per_op[op] += 1
        answered[op] += a["status"] < 300
        statuses[(a["status"], a["code"])] += 1
        if a == b:
            agree[op] += 1
        else:
            differences.append((request, a, b))
    print(f"{len(requests)} requests, {sum(agree.values())} agree, {len(differences)} differ")
    print(f"{'operation':50} {'sent':>5} {'2xx':>5} {'agree':>5}")
    for op, count in sorted(per_op.items()):
        print(f"{op:50} {count:5} {answered[op]:5} {agree[op]:5}")
    print("old answers by (status, code):",
          ", ".join(f"{s} {c or ''}: {n}".replace(" :", ":") for (s, c), n in sorted(
              statuses.items(), key=lambda x: (x[0][0], x[0][1] or ""))))
    for request, a, b in differences:
        shown = {k: v for k, v in request.items() if k not in ("file", "raw_b64")}
        print("DIFF", json.dumps(shown)[:400], "\n  old", json.dumps(a)[:300],
              "\n  new", json.dumps(b)[:300])
    return differences


def print_timings(requests: list[dict], old: list[dict], timings: dict[str, list]) -> None:
    """Median ms a request by operation, of the requests the old app answered 200 (so both
    did the work), old and new one after the other on the same box: noisy, but a 2x would
    show."""
    by_op: dict[str, dict[str, list]] = {}
    for i, (request, a) in enumerate(zip(requests, old)):
        if a["status"] == 200 and request["method"] in ("GET", "POST", "DELETE"):
            op = by_op.setdefault(label(request), {"old": [], "new": []})
            for side in op:
                op[side].append(timings[side][i])
    print(f"{'median ms of 200 answers':50} {'old':>7} {'new':>7}")
    for op, found in sorted(by_op.items()):
        print(f"{op:50} {statistics.median(found['old']):7.2f} "
              f"{statistics.median(found['new']):7.2f}")


def label(request: dict) -> str:
    """The operation a request is counted under; other methods, one line each."""
    method = request["method"]
    if method in ("GET", "POST", "DELETE"):
        return f"{method} {operation_of(request['path'])}"
    return {"HEAD": "HEAD (any GET route)", "OPTIONS": "OPTIONS (any route)"}.get(
        method, "PUT, PATCH (no route takes them)")


def operation_of(path: str) -> str:
    parts = ["{id}" if part.lstrip("-").isdigit() or part in ("abc",) else part
             for part in path.split("/")]
    if len(parts) > 4 and parts[3] == "jobs":
        parts[4] = "{job_id}"
    return "/".join(parts)


if __name__ == "__main__":
    main()
