"""Organizer pages about suspicious activity: bursts by address hash and email domain."""

from __future__ import annotations

from campaign.views.admin import bp

__all__ = ["bp"]
