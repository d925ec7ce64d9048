"""Organizer accounts: password hashing, login state and access to campaigns."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response

from campaign import audit
from campaign.db import READ_METHODS, WRITING_GET_ENDPOINTS, get_engine, get_session, utcnow
from campaign.models import Campaign, CampaignOrganizer, LoginSession, Organizer

MIN_PASSWORD_LENGTH = 12
# argon2id with OWASP's recommended m = 46 MiB, t = 1, p = 1: memory-hard, so a stolen
# table costs an attacker 46 MiB per guess in flight, not only time.
_hasher = PasswordHasher(time_cost=1, memory_cost=47104, parallelism=1)

# A page view moves its session's last_seen_at on at most this often, so that most of the
# dashboard's requests write nothing.
SEEN_EVERY_SECONDS = 60
# What the account page names a session's device by: (marker in the User-Agent, name), the
# first marker found wins. Edge and Opera also say "Chrome", Chrome also says "Safari",
# iPhones and iPads say "like Mac OS X", Android says "Linux": those come first.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)

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
    """End every session of the organizer: their rows go, and the epoch moves on.

    The epoch also ends a session whose login was under way meanwhile (its row added after
    these were deleted, its cookie carrying the old epoch), and it changes every reset link
    mailed before (campaign.password_reset).
    """
    # Raised in SQL, so two concurrent ends both count and neither reissues the other's epoch.
    organizer.session_epoch = Organizer.session_epoch + 1
    db.flush()
    db.execute(delete(LoginSession).where(LoginSession.organizer_id == organizer.id))


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
    _audit_ending(db, organizer, "organizer.logout_everywhere", ended="sessions_ended")


def _audit_ending(
    db: Session, organizer: Organizer, action: str, *, ended: str = "session_ended", **before: Any
) -> None:
    """The audit entry of an organizer ending one of their sessions, or all (ended)."""
    audit.record(
        db,
        organizer,
        action,
        before={"organizer": organizer.email, **before},
        after={"organizer": organizer.email, ended: True},
    )


def describe_device(user_agent: str) -> tuple[str, str]:
    """The browser and the system a User-Agent header names, each "" when it names none known.

    Only names from the lists above come out, never a part of the header itself.
    """
    header = user_agent[:512]
    browser = next((name for marker, name in _BROWSERS if marker in header), "")
    system = next((name for marker, name in _SYSTEMS if marker in header), "")
    return browser, system


def _digest(secret: str) -> str:
    """What the table keeps of a session's secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def start_session(db: Session, organizer: Organizer, user_agent: str) -> tuple[LoginSession, str]:
    """A new session row for the organizer, and the secret for its cookie (the caller commits).

    Sessions past their lifetime, anyone's, are deleted here: logins are what adds rows.
    """
    now = utcnow()
    db.execute(
        delete(LoginSession).where(
            LoginSession.created_at <= now - current_app.permanent_session_lifetime
        )
    )
    secret = secrets.token_urlsafe(32)
    browser, system = describe_device(user_agent)
    row = LoginSession(
        secret_hash=_digest(secret),
        organizer_id=organizer.id,
        created_at=now,
        last_seen_at=now,
        browser=browser,
        system=system,
    )
    db.add(row)
    db.flush()
    return row, secret


def login(db: Session, organizer: Organizer) -> None:
    """Start a fresh session for the organizer (nothing from before login survives).

    The caller commits: until then the session's row is not there and the cookie logs no
    one in.
    """
    row, secret = start_session(db, organizer, request.headers.get("User-Agent", ""))
    session.clear()
    session["organizer_id"] = organizer.id
    session["epoch"] = organizer.session_epoch
    session["login"] = secret
    session.permanent = True
    g.organizer = organizer
    g.login_session = row
    audit.record(
        db,
        organizer,
        "organizer.login",
        before={"organizer": organizer.email},
        after={"organizer": organizer.email, "browser": row.browser, "system": row.system},
    )


def logout(db: Session) -> None:
    """End this browser's session: its row goes, so no copy of its cookie logs in again.

    Audited as organizer.logout when it ended a session (not after log_out_everywhere,
    which ended it and audited that). The caller commits.
    """
    secret = session.get("login")
    organizer = current_organizer()
    if isinstance(secret, str):
        ended = db.scalar(
            delete(LoginSession)
            .where(LoginSession.secret_hash == _digest(secret))
            .returning(LoginSession.id)
        )
        if ended is not None and organizer is not None:
            _audit_ending(db, organizer, "organizer.logout")
    session.clear()
    g.organizer = None
    g.login_session = None


def open_sessions(db: Session, organizer: Organizer) -> list[LoginSession]:
    """The organizer's sessions that have not ended, the most recently seen first."""
    cutoff = utcnow() - current_app.permanent_session_lifetime
    return list(
        db.scalars(
            select(LoginSession)
            .where(LoginSession.organizer_id == organizer.id, LoginSession.created_at > cutoff)
            .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())
        )
    )


def end_session(db: Session, organizer: Organizer, session_id: int) -> LoginSession | None:
    """End one session of the organizer's, audited; None when they have no such session.

    Another organizer's session is never found: the answer is None, as for one that ended.
    """
    # One DELETE, so that of two requests ending it at once only one finds it.
    row: LoginSession | None = db.scalar(
        delete(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.organizer_id == organizer.id)
        .returning(LoginSession)
    )
    if row is None:
        return None
    _audit_ending(
        db,
        organizer,
        "organizer.session_end",
        browser=row.browser,
        system=row.system,
        started=row.created_at,
    )
    return row


def is_safe_next(target: str | None) -> bool:
    """Whether a `next` target is a path on this site (never //host, a scheme or a backslash)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    # Browsers read a backslash as "/" and drop tabs and newlines inside URLs, so either
    # could turn "/x" into "//evil.example": refuse them and every other control character.
    if any(ch == "\\" or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return False
    # A page a browser can open: not an action only a form posts to (/admin/logout), whose
    # address a crafted link could pass, nor an address with no page.
    path = urlsplit(target).path
    root = request.script_root
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    try:
        current_app.url_map.bind("localhost").match(path, method="GET")
    except RequestRedirect:
        return True
    except HTTPException:
        return False
    return True


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
        g.organizer, g.login_session = _logged_in()
    result: Organizer | None = g.organizer
    return result


def current_login_session() -> LoginSession | None:
    """The session row of this request's login, if someone is logged in."""
    current_organizer()
    result: LoginSession | None = g.login_session
    return result


def _logged_in() -> tuple[Organizer | None, LoginSession | None]:
    """The organizer and session row of the cookie, if its session stands.

    It stands while its row exists (login made it; logging out, ending it from the account
    page or every session ending deletes it), the organizer is active and of the cookie's
    epoch, and less than PERMANENT_SESSION_LIFETIME has passed since login, however busy
    the session (Flask renews the cookie and its expiry on every request).
    """
    secret = session.get("login")
    if not isinstance(secret, str):
        return None, None  # logged out, or a cookie from before revision 0018
    found = (
        get_session()
        .execute(
            select(LoginSession, Organizer)
            .join(Organizer, Organizer.id == LoginSession.organizer_id)
            .where(LoginSession.secret_hash == _digest(secret))
        )
        .first()
    )
    if found is None:
        return None, None
    row, organizer = found
    now = utcnow()
    if (
        organizer.id != session.get("organizer_id")
        or not organizer.active
        or session.get("epoch") != organizer.session_epoch
        or now - row.created_at >= current_app.permanent_session_lifetime
    ):
        return None, None
    _note_seen(row, now)
    return organizer, row


def _note_seen(row: LoginSession, now: dt.datetime) -> None:
    """Move the session's last_seen_at on, once a minute at most, when a page is read.

    Only requests that read write it, on a connection of its own: the request's own
    transaction stays read-only (on SQLite, a read-only transaction that then wrote could
    fail when another writer went first). A writing request may hold the database's write
    lock already, so it leaves it to the page the browser reads after it. A failure here
    is logged and the page goes on: it is a note, not the session.
    """
    if now - row.last_seen_at < dt.timedelta(seconds=SEEN_EVERY_SECONDS):
        return
    if request.method not in READ_METHODS or request.endpoint in WRITING_GET_ENDPOINTS:
        return
    try:
        # A transaction whose first statement writes: on SQLite it waits for the write
        # lock (the busy timeout) instead of failing on a snapshot older than the last write.
        with get_engine().begin() as conn:
            conn.execute(
                update(LoginSession)
                .where(
                    LoginSession.id == row.id,
                    LoginSession.last_seen_at < now - dt.timedelta(seconds=SEEN_EVERY_SECONDS),
                )
                .values(last_seen_at=now)
            )
    except OperationalError:
        current_app.logger.warning("a session's last page view was not noted", exc_info=True)
        return
    # As stored, without making the request's own transaction write it again.
    set_committed_value(row, "last_seen_at", now)


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


def may_see(db: Session, campaign: Campaign) -> bool:
    """Whether this request's visitor may see the letter's public pages: anyone, or for a
    draft only the organizers who run it (and admins), previewing it."""
    if campaign.state != "draft":
        return True
    organizer = current_organizer()
    return organizer is not None and can_access(db, organizer, campaign)


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
