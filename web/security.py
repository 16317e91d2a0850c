"""Who may talk to the app: the Host allow-list, the optional read token, protective headers.

A server on 127.0.0.1 is still reachable from any web page the user
visits, through the browser: DNS rebinding points a foreign name at
127.0.0.1, and the browser treats the answers as that name's. The Host
header is what gives it away, so a request naming a host that is not on
the list gets 400 before any view runs. Beyond loopback, the read token
keeps the library private: every request needs it, as a bearer token
(scripts) or as the password of HTTP Basic auth (browsers ask once and
send it with every image and API call of the page).
"""
from __future__ import annotations

import base64
import binascii
import hmac

from urllib.parse import urlsplit

from flask import Flask, Response, request

from search.settings import LOOPBACK_HOSTS

from .backend import current_settings
from .errors import ApiError, error_response

# The page loads nothing from the network and runs no inline script, so a
# strict policy costs nothing and turns any injected markup inert.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'")
# Images and JSON opened directly in a tab get no scripting at all.
OTHER_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


def install(app: Flask) -> None:
    """Register the host and token checks and the response headers on *app*."""
    app.before_request(_check_host)
    app.before_request(_check_read_token)
    app.after_request(_security_headers)


def trusted_hosts_for(bound: str, configured: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The Host allow-list for a server bound to *bound*; None accepts any host.

    Configured hosts win. Bound to loopback: that address and the loopback
    names. Bound to one other address: that address. Bound to every address
    (0.0.0.0, ::) the names clients use are unknown, so there is no default
    list, and ``lookalike serve`` says so.
    """
    if configured:
        return tuple(configured)
    if bound in ("0.0.0.0", "::", ""):
        return None
    if bound in LOOPBACK_HOSTS or bound.startswith("127."):
        return tuple(sorted({bound, *LOOPBACK_HOSTS}))
    return (bound,)


def host_name(header: str) -> str | None:
    """The host part of a Host header, lower-case, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        rest = header[end + 1:] if end > 0 else "junk"
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return header[1:end]
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def _check_host():
    trusted = current_settings().trusted_hosts or LOOPBACK_HOSTS
    if trusted == ("*",):
        return None
    name = host_name(request.headers.get("Host", ""))
    if name is None or name not in {h.lower().strip("[]") for h in trusted}:
        return error_response(400, "bad_host", "this server does not answer for that host "
                              "name; the operator lists the names it answers to in "
                              "LOOKALIKE_TRUSTED_HOSTS")
    return None


def _check_read_token():
    settings = current_settings()
    if not settings.read_token:
        return None
    tokens = [t for t in (settings.read_token, settings.admin_token) if t]
    header = request.headers.get("Authorization", "")
    if any(token_matches(header, t) for t in tokens):
        return None
    response, status = error_response(401, "unauthorized", "this library needs its read "
                                      "token: 'Authorization: Bearer <token>', or the token "
                                      "as the password when the browser asks")
    response.headers["WWW-Authenticate"] = 'Basic realm="lookalike", charset="UTF-8"'
    return response, status


def token_matches(header: str, token: str, basic: bool = True) -> bool:
    """Whether an Authorization *header* carries *token* (Bearer, or Basic's password).

    Compared in constant time.

    As bytes: ``hmac.compare_digest`` raises TypeError for non-ASCII str,
    and a header is whatever a client sends. WSGI hands header values over
    decoded as latin-1, so encoding them back gives the bytes sent; the
    token is sent as UTF-8 (or as the raw bytes the environment held).
    """
    sent = _sent_secret(header, basic)
    if sent is None:
        return False
    return hmac.compare_digest(sent, token.encode("utf-8", "surrogateescape"))


def _sent_secret(header: str, basic: bool) -> bytes | None:
    scheme, _, given = header.strip().partition(" ")
    try:
        raw = given.strip().encode("latin-1")
    except UnicodeEncodeError:  # not from a WSGI server: cannot be what was sent
        return None
    if scheme.lower() == "bearer":
        return raw
    if basic and scheme.lower() == "basic":
        try:
            return base64.b64decode(raw, validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return None
    return None


def _security_headers(response: Response) -> Response:
    html = response.mimetype == "text/html"
    response.headers.setdefault("Content-Security-Policy", PAGE_POLICY if html else OTHER_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # Another site may not embed the library's images or read its JSON.
    response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    return response


def admin_refusal() -> tuple[Response, int] | None:
    """Why a request may not use an endpoint that changes the collection (403 while the
    operator has set no ``LOOKALIKE_ADMIN_TOKEN``, 401 without it); None when it may.

    The token travels as ``Authorization: Bearer``, a header no browser adds on its
    own, so no cross-site form can send it.
    """
    token = current_settings().admin_token
    if not token:
        return error_response(403, "admin_disabled", "the admin endpoints are disabled; the "
                              "operator enables them by setting LOOKALIKE_ADMIN_TOKEN")
    if not token_matches(request.headers.get("Authorization", ""), token, basic=False):
        response, status = error_response(401, "unauthorized", "send the admin token as "
                                          "'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="lookalike admin"'
        return response, status
    return None


def refuse_cross_site(what: str) -> None:
    """403 (an ApiError) for a write another site's page made: *what* is taken only from
    this library's own pages, or from scripts (which send no such headers)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("Origin")
    fetched_from = request.headers.get("Sec-Fetch-Site", "same-origin")
    if fetched_from not in ("same-origin", "none") or (
            origin is not None and urlsplit(origin).netloc != request.host):
        raise ApiError(403, "cross_site", f"{what} only from this library's own pages or "
                       "from scripts, not from another site's page")
