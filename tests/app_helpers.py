"""What test apps are built from; importable by any test (a `conftest` import is ambiguous,
since tests/browser has its own)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

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
