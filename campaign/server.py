"""Running the app under gunicorn for `campaign serve`."""

from __future__ import annotations

import re
import socket
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

# The paths whose last part is a secret mailed to one person: confirming or withdrawing a
# signature, stopping updates, resetting a password. Whoever reads the access log could
# otherwise act as that person; the log keeps the path, not the secret.
_SECRET_PATH = re.compile(
    r"(/c/[^/?#\s]+/(?:confirm|withdraw|updates/stop)/|/admin/password-reset/)[^/?#\s]+"
)
REDACTED = "[token]"


def redact(text: str) -> str:
    """text (a request line, path or URL) with any mailed secret in it replaced."""
    return _SECRET_PATH.sub(lambda m: m.group(1) + REDACTED, text)


class AccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing no mailed secret into the access log.

    The request line, the path and the Referer (a page of this site sends its own address,
    token included, to the next one: Referrer-Policy keeps same-origin referers whole) are
    redacted; every other atom is gunicorn's.
    """

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f", "{referer}i", "{raw_uri}e", "{path_info}e"):
            value = atoms.get(key)
            if isinstance(value, str):
                atoms[key] = redact(value)
        return atoms


class _Server(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving create_app() in each worker."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from campaign import create_app, mail

        app = create_app()
        # Start the outbox sender as the worker boots, not on its first request, so mail
        # queued before a restart goes out even while no one visits the site.
        if app.config.get("MAIL_SENDER"):
            mail.start_sender(app)
        return app


def options(*, host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    """gunicorn's settings for `campaign serve`."""
    return {
        "bind": bind_address(host, port),
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-",
        "logger_class": AccessLogger,
        "timeout": 30,
        "graceful_timeout": 10,
        # gunicorn's control socket (for its gunicornc tool) has one default path per
        # user, ~/.gunicorn/gunicorn.ctl: several `campaign serve` of one user (a cluster
        # on one machine) would take it from each other, and stopping one removes the
        # others'. Nothing here uses it; stop, restart and reload go by signals.
        "control_socket_disable": True,
    }


def _bare_host(host: str) -> str:
    """The host without the brackets an IPv6 address may be written in ("[::1]" -> "::1")."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def bind_address(host: str, port: int) -> str:
    """gunicorn's bind setting: an IPv6 address in brackets ("[::1]:8000")."""
    bare = _bare_host(host)
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def cannot_listen(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on (taken, not this machine's, not allowed), or None.

    gunicorn would try five times, a second apart, logging two lines each; this asks once,
    the way gunicorn binds (SO_REUSEADDR), and lets the socket go at once.
    """
    try:
        found = socket.getaddrinfo(
            _bare_host(host), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError):
        return f"cannot listen on {host}:{port}: no such address"
    family, kind, proto, _, address = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            return f"cannot listen on {host}:{port}: {reason}"
    return None


def run_gunicorn(*, host: str, port: int, workers: int, threads: int) -> None:
    """Serve on host:port with the given workers and threads until stopped."""
    _Server(options(host=host, port=port, workers=workers, threads=threads)).run()
