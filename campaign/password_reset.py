"""Forgot your password: one-time, short-lived links mailed to organizers.

A link carries the organizer's id and a keyed fingerprint of their password hash and
session epoch, signed and timestamped (itsdangerous). Setting a password changes the
hash and ends every session (a new epoch), so a link works once; logging out everywhere
or deactivation ends it too; and it expires after PASSWORD_RESET_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from campaign import auth, signing
from campaign.models import Organizer

SALT = "campaign.organizer.password-reset"
_FINGERPRINT_KEY = b"campaign.organizer.password-reset.fingerprint\0"


class BadResetToken(ValueError):
    """A reset link that is forged, mangled, used, or ended by a new session epoch."""


class ExpiredResetToken(BadResetToken):
    """A genuine reset link that is too old."""


@functools.lru_cache(maxsize=4)
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def _fingerprint(secret: str, organizer: Organizer) -> str:
    """A keyed digest of what a password change or an end of sessions changes."""
    state = f"{organizer.id}:{organizer.session_epoch}:{organizer.password_hash}".encode()
    # Keyed, so the token (readable base64) lets no one test guesses against the hash.
    return hmac.new(_FINGERPRINT_KEY + secret.encode(), state, hashlib.sha256).hexdigest()[:32]


def make_token(secret: str, organizer: Organizer) -> str:
    """A signed, timestamped reset token for the organizer's present password and sessions."""
    return _serializer(secret).dumps([organizer.id, _fingerprint(secret, organizer)])


def read_token(
    db: Session, secret: str, token: str, max_age: int, *, for_update: bool = False
) -> Organizer:
    """The active organizer a reset token is still good for; ExpiredResetToken, BadResetToken.

    for_update locks the row (PostgreSQL; SQLite transactions are IMMEDIATE), so two
    requests with one link cannot both use it.
    """
    # The shape signer links are checked against: itsdangerous would skip stray characters.
    if not signing.TOKEN_SHAPE.fullmatch(token):
        raise BadResetToken("this link is not valid")
    try:
        value = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredResetToken("this link has expired") from None
    except BadSignature:
        raise BadResetToken("this link is not valid") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
    ):
        raise BadResetToken("this link is not valid")
    stmt = select(Organizer).where(Organizer.id == value[0])
    if for_update:
        stmt = stmt.with_for_update()
    organizer = db.scalar(stmt.execution_options(populate_existing=True))
    if (
        organizer is None
        or not organizer.active
        or not hmac.compare_digest(value[1], _fingerprint(secret, organizer))
    ):
        raise BadResetToken("this link is no longer valid")
    return organizer


def claim_mail(
    db: Session, email: str, *, now: dt.datetime, interval_seconds: int
) -> Organizer | None:
    """The active organizer to mail a reset link to, or None (unknown, inactive, mailed lately).

    One conditional UPDATE claims the interval, so parallel requests queue one mail at most.
    """
    organizer = auth.find_organizer(db, email)
    if organizer is None or not organizer.active:
        return None
    claimed = db.scalar(
        update(Organizer)
        .where(
            Organizer.id == organizer.id,
            Organizer.active.is_(True),
            or_(
                Organizer.password_reset_sent_at.is_(None),
                Organizer.password_reset_sent_at <= now - dt.timedelta(seconds=interval_seconds),
            ),
        )
        .values(password_reset_sent_at=now)
        .returning(Organizer.id)
        .execution_options(synchronize_session=False)
    )
    db.expire(organizer)
    return organizer if claimed is not None else None
