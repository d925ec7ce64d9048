"""Suspicious activity: bursts by address hash and by domain, and holding or rejecting them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaign import abuse, campaigns, review, signing, tally
from campaign.db import new_session
from campaign.models import AuditEntry, Campaign, Organizer, Signature

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
BOT = "b" * 64
OFFICE = "0" * 64


def hour(n: int, minute: int = 0) -> dt.datetime:
    """n hours (and some minutes) after T0."""
    return T0 + dt.timedelta(hours=n, minutes=minute)


def add(db: Session, campaign: Campaign, n: int, at: dt.datetime, client: str, email: str) -> int:
    """A confirmed signature signed at a given time from a given source."""
    entry = signing.SignatureEntry(
        name=f"Signer{n} Example",
        title="MP",
        parliament="Parliament",
        party="",
        country_code=["KH", "FR", "BR", "JP"][n % 4],
        email=email,
        client_hash=client,
    )
    signature = signing.sign(db, campaign, entry, confirmed=True).signature
    signature.signed_at = at
    db.flush()
    return signature.id


@pytest.fixture
def db(any_app: Flask) -> Iterator[Session]:
    """A session on each backend, inside an app context."""
    with any_app.app_context():
        session = new_session(any_app)
        yield session
        session.close()


@pytest.fixture
def campaign(db: Session) -> Campaign:
    """A letter signed by 30 ordinary members over ten hours, an office of 6 and a bot of 25."""
    letter = campaigns.create_campaign(db, slug="letter", title="Free them", state="open")
    for n in range(30):
        add(db, letter, n, hour(n // 3, n), f"{n:064x}", f"member{n}@parl-{n}.example")
    for n in range(30, 36):
        add(db, letter, n, hour(2, n), OFFICE, f"member{n}@parliament.example")
    for n in range(36, 61):
        add(db, letter, n, hour(5, n - 30), BOT, f"x{n}@spam.example")
    add(db, letter, 99, T0 - dt.timedelta(days=2), BOT, "early@spam.example")
    db.commit()
    return letter


@pytest.fixture
def organizer(db: Session) -> Organizer:
    """An organizer to act on signatures."""
    person = Organizer(email="org@example.org", password_hash="x")
    db.add(person)
    db.flush()
    return person


def group(activity: abuse.Activity, kind: abuse.Kind, key: str) -> abuse.Group:
    """The group of that kind and key."""
    return next(g for g in activity.groups[kind] if g.key == key)


def test_a_burst_from_one_address_is_flagged(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0)
    bot = group(seen, "client", BOT)
    assert bot.flagged and bot.total == 25 and bot.open == 25
    assert bot.peak == abuse.Count(hour(5), 25)
    assert seen.medians["client"] == 1.0
    assert seen.groups["client"][0] is bot  # flagged groups come first
    office = group(seen, "client", OFFICE)
    assert not office.flagged and office.peak == abuse.Count(hour(2), 6)


def test_a_burst_from_one_mail_domain_is_flagged(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0)
    spam = group(seen, "domain", "spam.example")
    assert spam.flagged and spam.total == 25
    assert not group(seen, "domain", "parliament.example").flagged
    assert [g.key for g in seen.flagged] == [BOT, "spam.example"]


def test_counts_per_hour_add_up_and_start_at_since(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0)
    assert [c.start for c in seen.timeline] == [hour(n) for n in range(10)]
    assert sum(c.signatures for c in seen.timeline) == 61
    assert next(c for c in seen.timeline if c.start == hour(5)).signatures == 28
    assert all(c.start.tzinfo is not None for c in seen.timeline)


def test_daily_buckets(db: Session, campaign: Campaign) -> None:
    seen = abuse.activity(db, campaign, T0 - dt.timedelta(days=3), "day")
    assert seen.timeline == [
        abuse.Count(T0 - dt.timedelta(days=2), 1),
        abuse.Count(T0, 61),
    ]
    assert group(seen, "client", BOT).total == 26


def test_a_campaign_where_every_hour_is_busy_flags_nothing(db: Session) -> None:
    letter = campaigns.create_campaign(db, slug="busy", title="Busy", state="open")
    for n in range(120):
        add(db, letter, n, hour(n // 30, n % 30), "c" * 64, f"m{n}@gmail.example")
    db.commit()
    seen = abuse.activity(db, letter, T0, threshold=20, factor=5)
    assert seen.medians["client"] == 30.0
    assert seen.flagged == []


def test_holding_a_group_takes_it_out_of_the_count(
    db: Session, campaign: Campaign, organizer: Organizer
) -> None:
    before = tally.total(db, campaign)
    held = abuse.act_on_group(db, organizer, campaign, "client", BOT, "hold", since=T0)
    db.commit()
    assert held == 25
    assert tally.total(db, campaign) == before - 25
    assert tally.recount(db, campaign) == {}
    statuses = db.scalars(
        select(Signature.status).where(Signature.client_hash == BOT, Signature.signed_at >= T0)
    ).all()
    assert set(statuses) == {"held"}
    rows, count = review.held_duplicates(db, campaign)
    assert count == 25  # they wait in the held list, where an organizer can count them again
    released, _other = review.resolve_duplicate(db, organizer, rows[0], "both")
    assert released.status == "confirmed"
    assert tally.total(db, campaign) == before - 24
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "abuse.hold")).all()
    assert len(entries) == 25
    assert json.loads(entries[0].after)["group"] == f"client:{BOT}"
    # Held ones are not held twice; the released one is held again.
    assert abuse.act_on_group(db, organizer, campaign, "client", BOT, "hold", since=T0) == 1


def test_rejecting_a_group_says_why_and_leaves_settled_ones_alone(
    db: Session, campaign: Campaign, organizer: Organizer
) -> None:
    first = db.scalar(select(Signature).where(Signature.email == "x36@spam.example"))
    assert first is not None
    signing.withdraw(db, first.id)
    before = tally.total(db, campaign)
    rejected = abuse.act_on_group(
        db, organizer, campaign, "domain", "spam.example", "reject", since=T0, reason="bot run"
    )
    db.commit()
    assert rejected == 24
    assert tally.total(db, campaign) == before - 24
    reasons = db.scalars(
        select(Signature.rejected_reason).where(Signature.status == "rejected")
    ).all()
    assert reasons == ["bot run"] * 24
    early = db.scalar(select(Signature).where(Signature.email == "early@spam.example"))
    assert early is not None and early.status == "confirmed"  # before `since`
    seen = abuse.activity(db, campaign, T0)
    assert group(seen, "domain", "spam.example").open == 0


def test_an_action_can_be_limited_to_the_burst_hour(
    db: Session, campaign: Campaign, organizer: Organizer
) -> None:
    count = abuse.act_on_group(
        db, organizer, campaign, "client", OFFICE, "reject", since=hour(2), until=hour(2, 33)
    )
    assert count == 3  # minutes 30, 31 and 32 of the office's six
    assert (
        db.scalar(select(func.count()).where(Signature.rejected_reason == "burst from one address"))
        == 3
    )


@pytest.mark.parametrize(
    ("kind", "action"), [("address", "hold"), ("client", "delete"), ("domain", "")]
)
def test_unknown_kinds_and_actions_are_refused(
    db: Session, campaign: Campaign, organizer: Organizer, kind: str, action: str
) -> None:
    with pytest.raises(abuse.AbuseError):
        abuse.act_on_group(db, organizer, campaign, kind, "x", action, since=T0)  # type: ignore[arg-type]
    assert db.scalar(select(func.count()).where(Signature.status == "rejected")) == 0
