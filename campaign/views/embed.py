"""What other sites embed: the widget, the badge."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("embed", __name__)
