"""Organizer accounts: password hashing, login state and access to campaigns."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaign.db import get_session
from campaign.models import Campaign, CampaignOrganizer, Organizer

MIN_PASSWORD_LENGTH = 12
# argon2id with OWASP's recommended m = 46 MiB, t = 1, p = 1: memory-hard, so a stolen
# table costs an attacker 46 MiB per guess in flight, not only time.
_hasher = PasswordHasher(time_cost=1, memory_cost=47104, parallelism=1)

P = ParamSpec("P")
R = TypeVar("R")


class AccountError(ValueError):
    """An organizer account could not be created or changed; the message says why."""


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str) -> None:
    """Refuse passwords shorter than the minimum."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def normalize_email(email: str) -> str:
    """Organizer logins compare addresses case-insensitively."""
    return email.strip().casefold()


def create_organizer(
    db: Session, email: str, password: str, *, name: str = "", is_admin: bool = False
) -> Organizer:
    """Create an organizer; AccountError for a weak password or a taken address."""
    check_password_strength(password)
    organizer = Organizer(
        email=normalize_email(email),
        name=name,
        password_hash=hash_password(password),
        is_admin=is_admin,
    )
    db.add(organizer)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise AccountError(f"an organizer with the address {email} already exists") from None
    return organizer


def add_to_campaign(db: Session, organizer: Organizer, campaign: Campaign) -> None:
    """Let an organizer run a campaign (no-op if they already do)."""
    if db.get(CampaignOrganizer, (campaign.id, organizer.id)) is None:
        db.add(CampaignOrganizer(campaign_id=campaign.id, organizer_id=organizer.id))
        db.flush()


def current_organizer() -> Organizer | None:
    """The organizer logged in on this request, if any."""
    if "organizer" not in g:
        organizer_id = session.get("organizer_id")
        organizer = get_session().get(Organizer, organizer_id) if organizer_id else None
        g.organizer = organizer if organizer is not None and organizer.active else None
    result: Organizer | None = g.organizer
    return result


def login_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Send anonymous visitors to the login page, coming back here afterwards."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if current_organizer() is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def can_access(db: Session, organizer: Organizer, campaign: Campaign) -> bool:
    """Admins reach every campaign; organizers only those they belong to."""
    if organizer.is_admin:
        return True
    return db.get(CampaignOrganizer, (campaign.id, organizer.id)) is not None


def campaign_or_404(slug: str) -> Campaign:
    """The campaign the current organizer may run, else 404 (never 403: no existence leak)."""
    db = get_session()
    organizer = current_organizer()
    found = db.scalar(select(Campaign).where(Campaign.slug == slug))
    if found is None or organizer is None or not can_access(db, organizer, found):
        abort(404)
    return found
