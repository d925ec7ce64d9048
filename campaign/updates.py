"""Updates to a letter's signers: an organizer's message mailed to every signature that counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy import update as update_rows
from sqlalchemy.orm import Session, joinedload

from campaign import audit, mail, tally
from campaign.db import utcnow
from campaign.mail.message import Composed
from campaign.models import Campaign, LetterUpdate, Organizer, OutboxMessage, Signature

SUBJECT_MAX = 150
BODY_MAX = 10_000
# The same subject and text sent again on one letter this soon is a double click, not news.
REPEAT_WINDOW = dt.timedelta(minutes=10)


class UpdateError(Exception):
    """An update that cannot be sent; `code` says why."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NobodyToSend(UpdateError):
    """No signature of the letter counts: nobody would get the update."""

    def __init__(self) -> None:
        super().__init__("nobody")


class AlreadySent(UpdateError):
    """The same update went to this letter's signers a moment ago."""

    def __init__(self, sent: LetterUpdate) -> None:
        super().__init__("repeat")
        self.sent = sent


@dataclass(frozen=True)
class SentUpdate:
    """An update as the organizers' list shows it: the row, and how many mails left so far."""

    update: LetterUpdate
    delivered: int


def normalize(text: str) -> str:
    """The text as stored: Unix line ends, no trailing spaces on a line, no outer blank lines."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def recipients(campaign: Campaign) -> ColumnElement[bool]:
    """The condition on Signature of who gets the letter's updates.

    Every counted signature whose signer did not ask for no updates.
    """
    return and_(
        Signature.campaign_id == campaign.id,
        Signature.counted.is_(True),
        Signature.erased_at.is_(None),
        Signature.updates_declined_at.is_(None),
    )


def declined(db: Session, campaign: Campaign) -> int:
    """How many counted signers asked for no updates (a partial index holds the few)."""
    return int(
        db.scalar(
            select(func.count())
            .select_from(Signature)
            .where(
                Signature.campaign_id == campaign.id,
                Signature.updates_declined_at.is_not(None),
                Signature.status == "confirmed",
                Signature.counted.is_(True),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class Reach:
    """Who an update sent now reaches: the counted signatures, less those that declined."""

    audience: int
    declined: int


def reach(db: Session, campaign: Campaign) -> Reach:
    """How many signatures an update sent now would reach, and how many declined updates."""
    refused = declined(db, campaign)
    return Reach(max(tally.total(db, campaign) - refused, 0), refused)


def decline(db: Session, signature_id: int, now: dt.datetime | None = None) -> None:
    """Record that the signer wants no more updates (idempotent: the first time is kept).

    The signer's own act, like withdrawing: the signature's page shows it, no audit entry.
    """
    db.execute(
        update_rows(Signature)
        .where(Signature.id == signature_id, Signature.updates_declined_at.is_(None))
        .values(updates_declined_at=now or utcnow())
    )


def send(
    db: Session,
    organizer: Organizer,
    campaign: Campaign,
    *,
    subject: str,
    body: str,
    publish: bool,
    now: dt.datetime | None = None,
) -> LetterUpdate:
    """Store the update and queue its mail to every counted signature, in the caller's transaction.

    AlreadySent when the same subject and text went to this letter within REPEAT_WINDOW;
    NobodyToSend when no signature counts. The caller commits (or rolls back on either).
    """
    now = now or utcnow()
    body = normalize(body)
    subject = subject.strip()
    # One sender per letter at a time (PostgreSQL; SQLite's writers are one at a time
    # anyway): a double click's second request waits here, then finds the first's row.
    # NO KEY UPDATE: signers inserting rows that reference the letter do not wait for it.
    db.execute(
        select(Campaign.id).where(Campaign.id == campaign.id).with_for_update(key_share=True)
    )
    repeated = db.scalar(
        select(LetterUpdate)
        .where(
            LetterUpdate.campaign_id == campaign.id,
            LetterUpdate.subject == subject,
            LetterUpdate.body == body,
            LetterUpdate.created_at >= now - REPEAT_WINDOW,
        )
        .limit(1)
    )
    if repeated is not None:
        raise AlreadySent(repeated)
    update = LetterUpdate(
        campaign_id=campaign.id,
        subject=subject,
        body=body,
        published=publish,
        created_by_id=organizer.id,
        created_at=now,
        recipients=0,
    )
    db.add(update)
    db.flush()
    update.recipients = mail.queue_update(db, update, recipients(campaign))
    if not update.recipients:
        raise NobodyToSend()
    audit.record(
        db,
        organizer,
        "update.send",
        campaign=campaign,
        after={
            "subject": subject,
            "recipients": update.recipients,
            "published": publish,
        },
    )
    return update


def send_test(db: Session, organizer: Organizer, campaign: Campaign, composed: Composed) -> None:
    """Queue the update's mail (composed for a sample signer) to the organizer alone; audited."""
    mail.queue(
        db,
        to=organizer.email,
        subject=composed.subject,
        text=composed.text,
        html=composed.html,
    )
    audit.record(
        db,
        organizer,
        "update.test",
        campaign=campaign,
        after={"subject": composed.subject, "to": organizer.email},
    )


def sent(db: Session, campaign: Campaign) -> list[SentUpdate]:
    """The letter's updates, newest first, each with the number of its mails sent so far."""
    updates = list(
        db.scalars(
            select(LetterUpdate)
            .where(LetterUpdate.campaign_id == campaign.id)
            .options(joinedload(LetterUpdate.created_by))
            .order_by(LetterUpdate.created_at.desc(), LetterUpdate.id.desc())
        )
    )
    delivered = _delivered(db, [update.id for update in updates])
    return [SentUpdate(update, delivered.get(update.id, 0)) for update in updates]


def _delivered(db: Session, update_ids: Sequence[int]) -> dict[int, int]:
    """Mails sent so far per update."""
    if not update_ids:
        return {}
    rows = db.execute(
        select(OutboxMessage.update_id, func.count())
        .where(OutboxMessage.update_id.in_(update_ids), OutboxMessage.sent_at.is_not(None))
        .group_by(OutboxMessage.update_id)
    )
    return {int(update_id or 0): int(count) for update_id, count in rows}


def published(db: Session, campaign: Campaign) -> list[LetterUpdate]:
    """The updates shown on the letter's public page, newest first."""
    return list(
        db.scalars(
            select(LetterUpdate)
            .where(LetterUpdate.campaign_id == campaign.id, LetterUpdate.published.is_(True))
            .order_by(LetterUpdate.created_at.desc(), LetterUpdate.id.desc())
        )
    )
