"""Hostile input, and what every answer to it must look like: a valid 200, or a 4xx JSON
error that leaks nothing. Shared by tests/web/test_fuzz.py, test_body_limits.py and
test_serve.py; their apps and clients are in tests/web/conftest.py.
"""
from __future__ import annotations

import base64
import json
import select
import socket
from typing import Any

import numpy as np
from PIL import Image

from ..synthetic import draw
from .conftest import upload as upload_image

SECRETS = (b"root:", b"[fonts]", b"PATH=")  # what a leaked file would contain


def check(response, image_ok: bool = False) -> dict[str, Any] | None:
    """A 200 (JSON results, or an image when *image_ok*) or a 4xx JSON error; else fail."""
    status = response.status_code
    data = response.get_data()
    assert status < 500, data[:500]
    assert not any(secret in data for secret in SECRETS)
    if status in (200, 304) and image_ok and response.mimetype.startswith("image/"):
        return None
    assert response.mimetype == "application/json", (status, response.mimetype, data[:200])
    body = json.loads(data)
    if status == 200:
        check_results(body)
        return body
    assert 400 <= status < 500, status
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def check_results(body: dict[str, Any]) -> None:
    """A search or similar answer: a k, a query, at most k well-formed hits."""
    if "results" not in body:  # GET /api/images/<id>
        assert isinstance(body["id"], int) and isinstance(body["name"], str)
        return
    assert set(body) == {"query", "k", "results"}
    assert isinstance(body["k"], int) and 1 <= body["k"] <= 100
    assert len(body["results"]) <= body["k"]
    for hit in body["results"]:
        assert isinstance(hit["id"], int) and isinstance(hit["name"], str)
        assert isinstance(hit["similarity"], float) and -1.001 <= hit["similarity"] <= 1.001


def error_code(response) -> str:
    body = check(response)
    assert body is not None and "error" in body, body
    return body["error"]["code"]


def upload(client, data: bytes, name: str = "query.png", mimetype: str | None = None,
           **fields):
    """A search by upload, without the reconstruction unless *fields* ask for it."""
    return upload_image(client, data, name, mimetype, **{"reconstruction": "false", **fields})


def post_json(client, body: Any, **kwargs):
    return client.post("/api/search", data=json.dumps(body), content_type="application/json",
                       **kwargs)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sample(kind: str = "circle", seed: int = 0, size: int = 48) -> Image.Image:
    return draw(kind, np.random.default_rng(seed), size)


# -- raw HTTP to a real server ---------------------------------------------------------------------

def stream(port: int, head: dict[str, str], chunks, chunked: bool,
           path: str = "/api/search") -> tuple[int, dict[str, str], bytes]:
    """POST *chunks* one at a time, stopping as soon as the server answers; its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in
                                                             head.items())]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered early
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed its side: read its answer
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-case headers, body) of the one answer on *sock*."""
    data = b""
    try:
        while (b"\r\n\r\n" not in data
               or len(data.partition(b"\r\n\r\n")[2]) < content_length(data)):
            block = sock.recv(65536)
            if not block:
                break
            data += block
    except OSError:
        pass  # a reset after the answer arrived
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def content_length(data: bytes) -> int:
    """The Content-Length an answer's head announces; 0 when none."""
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def multipart_head(total: int | None) -> tuple[dict[str, str], bytes, bytes]:
    """Headers, and the opening and closing of a multipart body around an 'image' part."""
    boundary = "fuzz-boundary"
    opening = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
               f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    closing = f"\r\n--{boundary}--\r\n".encode()
    head = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if total is not None:
        head["Content-Length"] = str(total)
    return head, opening, closing
