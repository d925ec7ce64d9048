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
        from campaign import create_app

        return create_app()


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
        }
    ).run()
