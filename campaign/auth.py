"""Organizer accounts: password hashing, login state and access to campaigns."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaign import audit
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


class WrongPassword(AccountError):
    """The password given to confirm a change is not the organizer's."""


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
    """Refuse passwords shorter than the minimum, of only spaces, or that are not text."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise AccountError("password must not be only spaces")
    try:
        password.encode("utf-8")  # what hashing it does: surrogates (bytes not UTF-8) fail
    except UnicodeEncodeError:
        raise AccountError("password is not UTF-8 text") from None


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
        raise AccountError(
            f"an organizer with the address {organizer.email} already exists"
        ) from None
    return organizer


def find_organizer(db: Session, email: str) -> Organizer | None:
    """The organizer with this address (in any case), if there is one."""
    return db.scalar(select(Organizer).where(Organizer.email == normalize_email(email)))


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown addresses against, so the answer takes as long as for a real one."""
    return _hasher.hash("no organizer has this password")


def authenticate(
    db: Session,
    email: str,
    password: str,
    *,
    now: dt.datetime,
    max_failures: int,
    lockout_seconds: int,
) -> Organizer | None:
    """The active organizer these credentials belong to, else None (counting the failure).

    Every call verifies one hash, whether the address exists or not, so response time does
    not reveal which addresses have accounts. After max_failures failures in a row the
    account is locked for lockout_seconds, even against the right password.
    """
    organizer = find_organizer(db, email)
    if organizer is None:
        verify_password(_dummy_hash(), password)
        return None
    matches = verify_password(organizer.password_hash, password)
    if organizer.locked_until is not None and organizer.locked_until > now:
        # Failures during a lockout are not counted: they would only lengthen it for the owner.
        return None
    if matches and organizer.active:
        organizer.failed_logins = 0
        organizer.locked_until = None
        organizer.last_login_at = now
        if _hasher.check_needs_rehash(organizer.password_hash):
            organizer.password_hash = hash_password(password)
        db.flush()
        return organizer
    _count_failure(
        db, organizer, now=now, max_failures=max_failures, lockout_seconds=lockout_seconds
    )
    return None


def _count_failure(
    db: Session, organizer: Organizer, *, now: dt.datetime, max_failures: int, lockout_seconds: int
) -> None:
    # One atomic increment, so parallel guesses cannot slip past the limit on a stale count.
    failures = db.scalar(
        update(Organizer)
        .where(Organizer.id == organizer.id)
        .values(failed_logins=Organizer.failed_logins + 1)
        .returning(Organizer.failed_logins)
        .execution_options(synchronize_session=False)
    )
    if failures is not None and failures >= max_failures:
        db.execute(
            update(Organizer)
            .where(Organizer.id == organizer.id)
            .values(failed_logins=0, locked_until=now + dt.timedelta(seconds=lockout_seconds))
            .execution_options(synchronize_session=False)
        )
    db.expire(organizer)


def end_sessions(db: Session, organizer: Organizer) -> None:
    """End every session of the organizer: cookies of an older epoch no longer log anyone in."""
    # Raised in SQL, so two concurrent ends both count and neither reissues the other's epoch.
    organizer.session_epoch = Organizer.session_epoch + 1
    db.flush()


def _replace_password(
    db: Session, actor: Organizer | None, organizer: Organizer, password: str, **how: str
) -> None:
    """Store a new password, end every session the old one opened, lift a login lockout.

    The failures counted were guesses at the old password: a locked-out organizer given a
    new one by an admin (or the CLI) logs in with it at once. Audited as
    organizer.password by actor (None: the CLI), with `how` (never the password).
    """
    check_password_strength(password)
    organizer.password_hash = hash_password(password)
    organizer.failed_logins = 0
    organizer.locked_until = None
    end_sessions(db, organizer)
    audit.record(
        db,
        actor,
        "organizer.password",
        before={"organizer": organizer.email},
        after={"organizer": organizer.email, "sessions_ended": True} | how,
    )


def change_password(db: Session, organizer: Organizer, current: str, new: str) -> None:
    """An organizer's own new password, given the current one; ends all their sessions.

    WrongPassword when `current` is not the password; AccountError for a weak new one.
    The caller starts this session again (login) to keep it.
    """
    if not verify_password(organizer.password_hash, current):
        raise WrongPassword("the current password is wrong")
    _replace_password(db, organizer, organizer, new)


def set_password(db: Session, actor: Organizer | None, organizer: Organizer, password: str) -> None:
    """A new password given by an admin (actor) or the CLI (None); ends the organizer's sessions.

    An admin cannot set their own this way: change_password asks for the current one.
    """
    if actor is not None and actor.id == organizer.id:
        raise AccountError("change your own password with your current one")
    if actor is None:
        _replace_password(db, None, organizer, password, via="cli")
    else:
        _replace_password(db, actor, organizer, password)


def reset_password(db: Session, organizer: Organizer, password: str) -> None:
    """A new password chosen through a mailed reset link; ends every session, lifts a lockout.

    The caller has checked the link (campaign.password_reset.read_token).
    """
    _replace_password(db, organizer, organizer, password, via="reset")


def log_out_everywhere(db: Session, organizer: Organizer) -> None:
    """End every session of the organizer, this one included, and audit it."""
    end_sessions(db, organizer)
    audit.record(
        db,
        organizer,
        "organizer.logout_everywhere",
        before={"organizer": organizer.email},
        after={"organizer": organizer.email, "sessions_ended": True},
    )


def login(organizer: Organizer) -> None:
    """Start a fresh session for the organizer (nothing from before login survives)."""
    session.clear()
    session["organizer_id"] = organizer.id
    session["epoch"] = organizer.session_epoch
    # When it began: the session ends PERMANENT_SESSION_LIFETIME later, though Flask renews
    # the cookie (and its expiry) on every request.
    session["since"] = int(time.time())
    session.permanent = True
    g.organizer = organizer


def logout() -> None:
    """End the organizer's session."""
    session.clear()
    g.organizer = None


def is_safe_next(target: str | None) -> bool:
    """Whether a `next` target is a path on this site (never //host, a scheme or a backslash)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    # Browsers read a backslash as "/" and drop tabs and newlines inside URLs, so either
    # could turn "/x" into "//evil.example": refuse them and every other control character.
    return not any(ch == "\\" or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target)


def update_organizer(
    db: Session,
    actor: Organizer,
    organizer: Organizer,
    *,
    name: str,
    is_admin: bool,
    active: bool,
    campaigns: Iterable[Campaign],
) -> None:
    """Change an organizer's name, role, state and campaigns, auditing each change.

    Deactivating ends the organizer's sessions, so reactivating them later revives none.
    """
    if organizer.id == actor.id and (not is_admin or not active):
        raise AccountError("you cannot remove your own admin role or deactivate yourself")
    before = {"name": organizer.name, "is_admin": organizer.is_admin, "active": organizer.active}
    after = {"name": name, "is_admin": is_admin, "active": active}
    changed = [key for key in after if before[key] != after[key]]
    if changed:
        organizer.name, organizer.is_admin, organizer.active = name, is_admin, active
        db.flush()
        if before["active"] and not active:
            end_sessions(db, organizer)
        audit.record(
            db,
            actor,
            "organizer.update",
            before={"organizer": organizer.email} | {key: before[key] for key in changed},
            after={"organizer": organizer.email} | {key: after[key] for key in changed},
        )
    wanted = {campaign.id: campaign for campaign in campaigns}
    current = set(
        db.scalars(
            select(CampaignOrganizer.campaign_id).where(
                CampaignOrganizer.organizer_id == organizer.id
            )
        )
    )
    for campaign_id in sorted(current - wanted.keys()):
        link = db.get(CampaignOrganizer, (campaign_id, organizer.id))
        if link is not None:
            db.delete(link)
            db.flush()
            audit.record(
                db,
                actor,
                "organizer.unassign",
                campaign=db.get(Campaign, campaign_id),
                before={"organizer": organizer.email},
            )
    for campaign_id in sorted(wanted.keys() - current):
        add_to_campaign(db, organizer, wanted[campaign_id])
        audit.record(
            db,
            actor,
            "organizer.assign",
            campaign=wanted[campaign_id],
            after={"organizer": organizer.email},
        )


def add_to_campaign(db: Session, organizer: Organizer, campaign: Campaign) -> None:
    """Let an organizer run a campaign (no-op if they already do)."""
    if db.get(CampaignOrganizer, (campaign.id, organizer.id)) is None:
        db.add(CampaignOrganizer(campaign_id=campaign.id, organizer_id=organizer.id))
        db.flush()


def current_organizer() -> Organizer | None:
    """The organizer logged in on this request, if any (active, and the session not ended)."""
    if "organizer" not in g:
        organizer_id = session.get("organizer_id")
        organizer = get_session().get(Organizer, organizer_id) if organizer_id else None
        if organizer is not None and (
            not organizer.active
            or session.get("epoch") != organizer.session_epoch
            or not _session_is_young()
        ):
            organizer = None
        g.organizer = organizer
    result: Organizer | None = g.organizer
    return result


def _session_is_young() -> bool:
    """Whether this session began (login) less than PERMANENT_SESSION_LIFETIME ago."""
    since = session.get("since")
    if not isinstance(since, int) or isinstance(since, bool):
        return False  # a cookie from before login times were kept
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    # Signed, so only our login wrote it; another server's clock may run a little ahead.
    return time.time() - since < lifetime


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


def visible_campaigns(db: Session, organizer: Organizer) -> list[Campaign]:
    """The campaigns an organizer may see, newest first (all of them for an admin)."""
    stmt = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
    if not organizer.is_admin:
        stmt = stmt.join(CampaignOrganizer, CampaignOrganizer.campaign_id == Campaign.id).where(
            CampaignOrganizer.organizer_id == organizer.id
        )
    return list(db.scalars(stmt))


def admin_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Like login_required, and a 404 for organizers who are not admins."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        organizer = current_organizer()
        if organizer is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        if not organizer.is_admin:
            abort(404)
        return view(*args, **kwargs)

    return wrapped
