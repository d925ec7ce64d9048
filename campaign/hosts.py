"""Where absolute links point: the one rule every link that leaves the site follows.

Links in mail (a signer's confirm and withdraw links, an organizer's password-reset link),
the letter's canonical and og:url, the share and embed snippets all start at BASE_URL.
Without it (`campaign run`, tests) a request's Host header cannot be trusted: anyone may
send ``Host: evil.example`` and have the site mail a genuine link, with a valid token, to
that host. So the request's own host is used only when it is a loopback one (the
developer's browser); any other host gets the development address, and a warning once.
`campaign serve` refuses to start without BASE_URL (campaign/cli/__init__.py).
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from flask import current_app, has_request_context, request, url_for

# Where `make run` serves; the command line's links use it too when BASE_URL is unset.
DEVELOPMENT_ROOT = "http://127.0.0.1:5000"

_warned = False
_warned_lock = threading.Lock()


def is_loopback_host(host: str) -> bool:
    """Whether a Host header names this machine: localhost, 127.0.0.1, ::1, with any port."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1] or [::1]:5000
        name, bracket, port = host[1:].partition("]")
        if not bracket:
            return False
    elif host.count(":") > 1:  # ::1 without brackets, so without a port
        name, port = host, ""
    else:
        name, colon, port = host.partition(":")
        port = colon + port
    if port and not (port.startswith(":") and port[1:].isdigit()):
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _warn_once(host: str) -> None:
    global _warned
    with _warned_lock:
        if _warned:
            return
        _warned = True
    current_app.logger.warning(
        "CAMPAIGN_BASE_URL is unset and a request came for host %r, not a loopback one:"
        " links use %s instead; set CAMPAIGN_BASE_URL to the site's public address",
        host,
        DEVELOPMENT_ROOT,
    )


def _origin() -> str | None:
    """The scheme and host links start with; None: url_for's own (request or SERVER_NAME)."""
    base = current_app.config.get("BASE_URL")
    if base:
        return str(base).rstrip("/")
    if not has_request_context() or current_app.config.get("SERVER_NAME"):
        # Outside a request url_for needs SERVER_NAME; inside one it prefers it to the Host
        # header. Either way the address is the operator's, not the client's.
        return None
    if is_loopback_host(request.host):
        return None
    _warn_once(request.host)
    return DEVELOPMENT_ROOT


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for a link that leaves the site (a page, mail, another site)."""
    origin = _origin()
    if origin is None:
        return url_for(endpoint, _external=True, **values)
    return origin + url_for(endpoint, **values)


def site_root() -> str:
    """The site's root (script root included) that links in mail start with.

    Outside a request (the command line) there is no script root: BASE_URL, else
    SERVER_NAME; with neither, RuntimeError (url_for's own).
    """
    base = current_app.config.get("BASE_URL")
    if base and not has_request_context():
        return str(base).rstrip("/")
    return external_url("public.index").rstrip("/")
