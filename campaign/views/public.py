"""The signer's and the public's pages."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("public", __name__)
