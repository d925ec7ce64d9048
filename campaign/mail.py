"""Composing mail into the outbox and delivering it."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Set up mail delivery for the app."""
