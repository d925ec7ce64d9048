"""Running the app under gunicorn for `campaign serve`."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


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


def run_gunicorn(*, host: str, port: int, workers: int, threads: int) -> None:
    """Serve on host:port with the given workers and threads until stopped."""
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-",
            "timeout": 30,
            "graceful_timeout": 10,
            # gunicorn's control socket (for its gunicornc tool) has one default path per
            # user, ~/.gunicorn/gunicorn.ctl: several `campaign serve` of one user (a cluster
            # on one machine) would take it from each other, and stopping one removes the
            # others'. Nothing here uses it; stop, restart and reload go by signals.
            "control_socket_disable": True,
        }
    ).run()
