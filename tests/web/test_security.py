"""Network exposure: the Host allow-list, the read token, protective headers, connection caps."""
from __future__ import annotations

import base64
import os
import subprocess

import pytest

from web.server import server_limits
from web.security import host_name, trusted_hosts_for

from ..conftest import LOOKALIKE
from .conftest import Library, build_library, make_app

TOKEN = "read-sesame"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("security"), per_class=4)


def client_for(library: Library, **settings):
    """A client of an app that is not in testing mode: errors are answered as in production."""
    return make_app(library.data_dir, TESTING=False, **settings).test_client()


@pytest.mark.parametrize("host", ["rebind.example", "rebind.example:5000", "evil.localhost",
                                  "127.0.0.2", "", "localhost:notaport", "[::1]junk"])
def test_a_foreign_host_gets_400(library, host):
    response = client_for(library).get("/api/stats", headers={"Host": host})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_host"
    assert str(library.data_dir) not in response.get_data(as_text=True)


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8080", "[::1]:5000",
                                  "LOCALHOST"])
def test_loopback_names_are_answered(library, host):
    assert client_for(library).get("/api/stats", headers={"Host": host}).status_code == 200


def test_configured_hosts_replace_the_default(library):
    client = client_for(library, LOOKALIKE_TRUSTED_HOSTS=["photos.lan"])
    assert client.get("/healthz", headers={"Host": "photos.lan:5000"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "localhost"}).status_code == 400


def test_trusted_hosts_for_the_bound_address():
    assert set(trusted_hosts_for("127.0.0.1", None)) == {"127.0.0.1", "localhost", "::1"}
    assert trusted_hosts_for("192.0.2.7", None) == ("192.0.2.7",)
    assert trusted_hosts_for("0.0.0.0", None) is None
    assert trusted_hosts_for("0.0.0.0", ("photos.lan",)) == ("photos.lan",)
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM:1") == "example.com"


def test_images_may_not_be_embedded_elsewhere(library):
    client = client_for(library)
    for path in ("/images/1/thumbnail", "/images/1/original", "/api/stats", "/search"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_read_token_guards_everything(library):
    client = client_for(library, LOOKALIKE_READ_TOKEN=TOKEN, LOOKALIKE_ADMIN_TOKEN="adm")
    for path in ("/", "/api/stats", "/images/1/thumbnail", "/healthz", "/static/app.js"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    for header in (f"Bearer {TOKEN}", f"Basic {basic}", "Bearer adm"):
        assert client.get("/images/1/thumbnail",
                          headers={"Authorization": header}).status_code == 200, header
    for header in ("Bearer wrong", "Basic !!!", f"Basic {base64.b64encode(b'x').decode()}"):
        assert client.get("/api/stats", headers={"Authorization": header}).status_code == 401


def test_connection_cap_keeps_uploads_within_the_memory_budget():
    limits = server_limits(20 * 2**20, 1024 * 2**20, threads=4)
    assert limits["connection_limit"] * limits["inbuf_overflow"] <= 1024 * 2**20
    assert server_limits(20 * 2**20, 10 * 2**20, threads=4)["connection_limit"] == 10


@pytest.mark.sqlite_only  # the serve process, not the catalog
def test_serving_the_network_without_a_token_warns(library, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    process = subprocess.Popen([str(LOOKALIKE), "--data-dir", str(library.data_dir), "serve",
                                "--host", "0.0.0.0", "--port", "0"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in process.stdout.readline()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "without LOOKALIKE_READ_TOKEN" in err and "LOOKALIKE_TRUSTED_HOSTS" in err
