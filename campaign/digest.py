"""The organizers' daily summary: what is new on their letters and what waits for them.

An organizer who asks for it (``Organizer.digest``) gets one mail a day about the
letters they may see (``auth.visible_campaigns``, the dashboard's rule): new signatures
since their last summary (or in the last 24 hours), the tally's figures, and what waits:
signers still to confirm, possible duplicates and suspicious-activity holds to review,
counted signatures nobody has verified. Every figure is one grouped query over indexed
columns or the tally counters, whatever a letter's size.

A letter with nothing new and nothing held for review is left out, and so is a letter
that is over (closed, or past its closing time) unless something is held. Counted
signatures still to verify are reported but do not by themselves make a letter worth a
mail: nearly every letter has some, and the summary would never fall silent.

The day is claimed by one conditional UPDATE of ``Organizer.digest_day`` in the
transaction that queues the mail, so two processes never both send it, and a crash
loses neither the mail nor the record of it. Composing the mail is the caller's
(``campaign.mail.summary``); this module never touches Flask.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from campaign import audit, auth, tally
from campaign.models import Campaign, Organizer, Signature

# A first summary (or one after a long pause) counts what is new in this window.
WINDOW = dt.timedelta(hours=24)
# Since the last summary, if it is more recent than this; else the last WINDOW only.
LONGEST_WINDOW = dt.timedelta(days=7)

# sent: queued now; nothing: nothing to say today (the day is done all the same);
# done: today's was already done (by another process, or an earlier run);
# not_wanted: the organizer did not ask for it; inactive: a deactivated organizer.
Outcome = Literal["sent", "nothing", "done", "not_wanted", "inactive"]


@dataclass(frozen=True)
class LetterSummary:
    """One letter's figures for the summary."""

    campaign_id: int
    slug: str
    title: str
    state: str
    # Closed, or past its closing time: no one can sign it any more.
    over: bool
    # Signatures made in the summary's period, whatever has become of them since.
    new: int
    # The tally's figures now.
    counted: int
    countries: int
    continents: int
    # Waiting for the signer's confirmation by mail.
    pending: int
    # Held as possible duplicates of another signature, and held from a burst.
    duplicates: int
    holds: int
    # Counted, but no organizer has marked them verified.
    unverified: int

    @property
    def to_review(self) -> int:
        """Held signatures an organizer must decide on."""
        return self.duplicates + self.holds

    @property
    def worth_saying(self) -> bool:
        """Whether the letter belongs in the summary."""
        if self.to_review:
            return True
        return self.new > 0 and not self.over


@dataclass(frozen=True)
class Summary:
    """One organizer's summary of one day: the letters worth a word, in dashboard order."""

    organizer_id: int
    email: str
    name: str
    since: dt.datetime
    until: dt.datetime
    letters: tuple[LetterSummary, ...]

    @property
    def new(self) -> int:
        """New signatures on the letters in the summary."""
        return sum(letter.new for letter in self.letters)

    @property
    def to_review(self) -> int:
        """Held signatures to decide on, on the letters in the summary."""
        return sum(letter.to_review for letter in self.letters)


def set_choice(db: Session, organizer: Organizer, wanted: bool, locale: str) -> bool:
    """Turn the daily summary on or off (audited as organizer.digest); whether it changed.

    The summary is written in locale, the language the choice was saved in, from then on;
    a new language alone is a change too (not audited: it is no one's access).
    """
    moved = organizer.locale != locale
    organizer.locale = locale
    if bool(organizer.digest) == wanted:
        return moved
    organizer.digest = wanted
    audit.record(
        db,
        organizer,
        "organizer.digest",
        before={"organizer": organizer.email, "digest": not wanted},
        after={"organizer": organizer.email, "digest": wanted},
    )
    return True


def window_start(organizer: Organizer, now: dt.datetime) -> dt.datetime:
    """Where the organizer's next summary starts counting: their last one, or a day ago."""
    last = organizer.digest_sent_at
    if last is not None and now - LONGEST_WINDOW <= last < now:
        return last
    return now - WINDOW


def is_over(campaign: Campaign, now: dt.datetime) -> bool:
    """Whether no one can sign the letter any more: closed, or past its closing time."""
    return campaign.state == "closed" or (
        campaign.closes_at is not None and campaign.closes_at <= now
    )


def _per_campaign(db: Session, ids: Sequence[int], *where: object) -> dict[int, int]:
    """Signatures per campaign among ids matching where (indexed on campaign and status)."""
    rows = db.execute(
        select(Signature.campaign_id, func.count())
        .where(Signature.campaign_id.in_(ids), *where)  # type: ignore[arg-type]
        .group_by(Signature.campaign_id)
    )
    return {campaign_id: int(count) for campaign_id, count in rows}


def letters(
    db: Session, campaigns: Sequence[Campaign], since: dt.datetime, until: dt.datetime
) -> list[LetterSummary]:
    """Each campaign's figures: new in [since, until), the tally now, what waits now."""
    ids = [campaign.id for campaign in campaigns]
    if not ids:
        return []
    new = _per_campaign(db, ids, Signature.signed_at >= since, Signature.signed_at < until)
    pending = _per_campaign(db, ids, Signature.status == "pending")
    # Verified ones are few: the counted total comes from the counters, not the rows.
    verified = _per_campaign(
        db, ids, Signature.status == "confirmed", Signature.verified_at.is_not(None)
    )
    held = {
        campaign_id: (int(total), int(resembling))
        for campaign_id, total, resembling in db.execute(
            select(Signature.campaign_id, func.count(), func.count(Signature.duplicate_of_id))
            .where(Signature.campaign_id.in_(ids), Signature.status == "held")
            .group_by(Signature.campaign_id)
        )
    }
    found = []
    for campaign in campaigns:
        counts = tally.tally(db, campaign)
        held_total, resembling = held.get(campaign.id, (0, 0))
        found.append(
            LetterSummary(
                campaign_id=campaign.id,
                slug=campaign.slug,
                title=campaign.title,
                state=campaign.state,
                over=is_over(campaign, until),
                new=new.get(campaign.id, 0),
                counted=counts.signatures,
                countries=counts.countries,
                continents=counts.continents,
                pending=pending.get(campaign.id, 0),
                # A hold from the suspicious-activity page resembles no other signature.
                duplicates=resembling,
                holds=held_total - resembling,
                unverified=max(counts.signatures - verified.get(campaign.id, 0), 0),
            )
        )
    return found


def summarize(db: Session, organizer: Organizer, now: dt.datetime) -> Summary:
    """The organizer's summary as of now, the letters left out that have nothing to say."""
    since = window_start(organizer, now)
    visible = auth.visible_campaigns(db, organizer)
    return Summary(
        organizer_id=organizer.id,
        email=organizer.email,
        name=organizer.name,
        since=since,
        until=now,
        letters=tuple(letter for letter in letters(db, visible, since, now) if letter.worth_saying),
    )


def _due_on(today: dt.date) -> ColumnElement[bool]:
    """SQL: an active organizer who wants the summary and has not had today's."""
    return and_(
        Organizer.digest.is_(True),
        Organizer.active.is_(True),
        or_(Organizer.digest_day.is_(None), Organizer.digest_day < today),
    )


def due(db: Session, today: dt.date) -> list[Organizer]:
    """Active organizers who want the summary and have not had today's, in id order."""
    return list(db.scalars(select(Organizer).where(_due_on(today)).order_by(Organizer.id)))


def outcome_before(organizer: Organizer, today: dt.date) -> Outcome | None:
    """Why the organizer gets no summary today whatever their letters say, or None."""
    if not organizer.active:
        return "inactive"
    if not organizer.digest:
        return "not_wanted"
    if organizer.digest_day is not None and organizer.digest_day >= today:
        return "done"
    return None


def record(
    db: Session,
    organizer_id: int,
    summary: Summary | None,
    today: dt.date,
    post: Callable[[Summary], object],
) -> Outcome:
    """Claim the organizer's day and, if the summary says anything, post it (queue the mail).

    One conditional UPDATE claims the day (SQLite's IMMEDIATE transaction and PostgreSQL's
    row lock serialise two claimers: the second finds the day taken), in the caller's
    transaction with the mail, so the two commit together or not at all. Flushes only.
    """
    saying = summary is not None and bool(summary.letters)
    values: dict[str, object] = {"digest_day": today}
    if saying:
        assert summary is not None
        values["digest_sent_at"] = summary.until
    claimed = db.scalar(
        update(Organizer)
        .where(Organizer.id == organizer_id, _due_on(today))
        .values(values)
        .returning(Organizer.id)
        .execution_options(synchronize_session=False)
    )
    if claimed is None:
        return "done"
    if not saying:
        return "nothing"
    assert summary is not None
    post(summary)
    return "sent"
