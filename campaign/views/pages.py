"""Site-wide pages that belong to no campaign (privacy)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__)
