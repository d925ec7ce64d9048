"""`campaign` commands: privacy (anonymize closed campaigns)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import click
from flask.cli import with_appcontext
from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session

from campaign import audit, mail, review, tally
from campaign.db import session_scope, utcnow
from campaign.models import AuditEntry, Campaign, Signature

# Audit fields that may name a signer; the same ones an organizer's erasure redacts.
PERSONAL_AUDIT_FIELDS = tuple(dict.fromkeys(("rejected_reason", *review.ERASED_VALUES)))
# Audit actions that set a campaign's state (its "after" names the new one).
STATE_ACTIONS = ("campaign.create", "campaign.update")


@dataclass(frozen=True)
class Anonymized:
    """What an anonymization touched (or would touch, on a dry run)."""

    campaigns: list[str]
    signatures: int


def closed_before(
    db: Session, cutoff: dt.datetime, now: dt.datetime | None = None
) -> list[Campaign]:
    """Campaigns no one can sign any more that closed before cutoff (see closed_at)."""
    now = now or utcnow()
    over = or_(
        Campaign.state == "closed",
        and_(Campaign.closes_at.is_not(None), Campaign.closes_at <= now),
    )
    candidates = list(db.scalars(select(Campaign).where(over).order_by(Campaign.slug)))
    moments = closed_at(db, candidates, now)
    return [c for c in candidates if moments[c.id] < cutoff]


def closed_at(db: Session, campaigns: list[Campaign], now: dt.datetime) -> dict[int, dt.datetime]:
    """When each of these campaigns (closed, or past closes_at) stopped taking signatures.

    The earlier of its closing date, once passed, and, for a campaign set to closed, the
    last time it was set so (its audit trail: created closed, or changed to closed), as the
    public page and the digest count a letter closed by either (campaigns.is_accepting). A
    campaign set to closed whose trail does not say when (closed before the trail recorded
    it) falls back to its last change, which is later: its data is kept longer, not shorter.
    Later edits of a closed letter do not restart the clock.
    """
    set_closed: dict[int, dt.datetime] = {}
    ids = [c.id for c in campaigns if c.state == "closed"]
    if ids:
        entries = db.execute(
            select(AuditEntry.campaign_id, AuditEntry.created_at, AuditEntry.after)
            .where(
                AuditEntry.campaign_id.in_(ids),
                AuditEntry.action.in_(STATE_ACTIONS),
                AuditEntry.after.contains('"state"'),
            )
            .order_by(AuditEntry.created_at, AuditEntry.id)
        )
        for campaign_id, created_at, after in entries:
            try:
                state = json.loads(after).get("state")
            except (ValueError, AttributeError):
                continue
            if state is None:
                continue
            assert campaign_id is not None
            if state == "closed":
                set_closed[campaign_id] = created_at
            else:
                set_closed.pop(campaign_id, None)
    moments: dict[int, dt.datetime] = {}
    for campaign in campaigns:
        candidates = []
        if campaign.closes_at is not None and campaign.closes_at <= now:
            candidates.append(campaign.closes_at)
        if campaign.state == "closed":
            candidates.append(set_closed.get(campaign.id, campaign.updated_at))
        moments[campaign.id] = min(candidates) if candidates else now
    return moments


def anonymize(db: Session, cutoff: dt.datetime, *, dry_run: bool = False) -> Anonymized:
    """Erase signers' personal data in campaigns closed before cutoff; counts stay. Flushes only.

    Status, counted, country and dates stay, so the tally and its counters do not move;
    what an organizer's erasure blanks is blanked here too (review.ERASED_VALUES), mail
    to those signers is deleted from the outbox, and audit entries lose what named them.
    Signatures already without an address (anonymized or erased before) are left alone.
    """
    campaigns = closed_before(db, cutoff)
    ids = [c.id for c in campaigns]
    pending = (Signature.campaign_id.in_(ids), Signature.email != "")
    count = int(db.scalar(select(func.count()).select_from(Signature).where(*pending)) or 0)
    if dry_run or not ids:
        return Anonymized([c.slug for c in campaigns], count)
    db.execute(
        update(Signature)
        .where(*pending)
        .values(
            **review.ERASED_VALUES,
            # Unique per campaign (the UNIQUE email key), as an erasure leaves it.
            email_key=literal("erased:") + cast(Signature.id, String),
        )
        .execution_options(synchronize_session=False)
    )
    # No one anonymized is listed any more (public is blanked): the listed counters follow,
    # rebuilt from the rows as `campaign recount` does (the counted ones do not move).
    for campaign in campaigns:
        tally.recount(db, campaign)
    mail.forget_signers(db, Signature.campaign_id.in_(ids))
    audited = db.scalars(
        select(AuditEntry.signature_id)
        .where(AuditEntry.campaign_id.in_(ids), AuditEntry.signature_id.is_not(None))
        .distinct()
    )
    for signature_id in list(audited):
        assert signature_id is not None
        audit.redact_signature(db, signature_id, PERSONAL_AUDIT_FIELDS)
    db.flush()
    return Anonymized([c.slug for c in campaigns], count)


class _BadDate(click.ClickException):
    exit_code = 2


def _parse_date(value: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise _BadDate(f"--closed-before: {value!r} is not a date like 2026-01-31") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@click.command("anonymize")
@click.option(
    "--closed-before",
    "closed_before_text",
    required=True,
    metavar="DATE",
    help=(
        "Anonymize campaigns closed before this day (YYYY-MM-DD, UTC): set to closed,"
        " or past their closing date."
    ),
)
@click.option("--dry-run", is_flag=True, help="Say what would be erased; change nothing.")
@with_appcontext
def anonymize_command(closed_before_text: str, dry_run: bool) -> None:
    """Erase signers' personal data of campaigns closed before DATE; their counts stay."""
    cutoff = _parse_date(closed_before_text)
    with session_scope() as db:
        result = anonymize(db, cutoff, dry_run=dry_run)
        if dry_run:
            db.rollback()
    verb = "would anonymize" if dry_run else "anonymized"
    where = ", ".join(result.campaigns) or "none"
    click.echo(
        f"{verb} {result.signatures} signatures in {len(result.campaigns)} "
        f"closed campaigns ({where})"
    )


commands: list[click.Command] = [anonymize_command]
