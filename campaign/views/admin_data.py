"""Organizer pages that move data in and out: export, import, the letter for delivery."""

from __future__ import annotations

from campaign.views.admin import bp

__all__ = ["bp"]
