"""What test apps are built from; importable by any test (a `conftest` import is ambiguous,
since tests/browser has its own)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event

AppFactory = Callable[..., Flask]


def base_config(instance: Path, url: str) -> dict[str, Any]:
    """The configuration every test app starts from."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": url,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "MAIL_SENDER": False,
        "BASE_URL": "http://campaign.test",
        "SERVER_NAME": None,
    }


@contextmanager
def sqlite_statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app sends to SQLite meanwhile, in order, as SQLite runs them.

    Read by sqlite3's trace callback, not SQLAlchemy's cursor events: the signer's statements
    and BEGIN IMMEDIATE run past SQLAlchemy's execution (db.Direct), which fires none.
    """
    sent: list[str] = []

    def trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    engine = app.extensions["engine"]
    engine.dispose()  # every connection taken meanwhile is a new one, traced
    event.listen(engine, "connect", trace)
    try:
        yield sent
    finally:
        event.remove(engine, "connect", trace)
        engine.dispose()
