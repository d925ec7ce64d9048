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
from urllib.parse import urlsplit

from flask import current_app, has_request_context, request, url_for

# Where `make run` serves; the command line's links use it too when BASE_URL is unset.
DEVELOPMENT_ROOT = "http://127.0.0.1:5000"

_warned = False
_warned_lock = threading.Lock()


def canonical_base_url(value: str) -> str:
    """BASE_URL as every link starts with it: scheme and host in lower case (HTTPS://Example.ORG
    is https://example.org, so the cookie is Secure and the canonical links say https), port and
    path as given, no trailing slash. ValueError completing "BASE_URL must ..." otherwise; a
    user name or password in it is never repeated.
    """
    wanted = "be the site's public address like https://letters.example.org"
    authority = value.partition("://")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    if "@" in authority:
        raise ValueError(
            f"{wanted}, without a user name or password (user:password@):"
            " every link in mail would carry them"
        )
    shown = repr(value)
    try:
        parts = urlsplit(value)
    except ValueError:  # a [ with no ]
        parts = None
    try:
        port = parts.port if parts is not None else None
    except ValueError:  # not a number, or past 65535
        port = 0
    if port == 0:
        raise ValueError(f"{wanted}: its port must be a number from 1 to 65535, not {shown}")
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(char.isspace() or not char.isprintable() for char in value)
    ):
        raise ValueError(
            f"{wanted} (http or https, a host, then a port and a path if need be;"
            f" no query, no fragment), not {shown}"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None:
        host += f":{port}"
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"


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
