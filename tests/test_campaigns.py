"""Campaigns: creating, changing, and whether one takes signatures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from admin_helpers import insert_members
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from campaign import campaigns, signing, tally
from campaign import db as dbmod
from campaign.campaigns import (
    CampaignError,
    create_campaign,
    is_accepting,
    rederive,
    update_campaign,
)
from campaign.models import Campaign, Signature

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def test_create_campaign_stores_it(db: Session) -> None:
    made = create_campaign(db, slug="free-kem-sokha", title=" Free Kem Sokha ", letter="# Hi")
    db.commit()
    found = campaigns.get_by_slug(db, "free-kem-sokha")
    assert found is not None and found.id == made.id
    assert (found.title, found.state, found.require_confirmation) == (
        "Free Kem Sokha",
        "draft",
        True,
    )


def test_get_by_slug_of_an_unknown_slug_is_none(db: Session) -> None:
    assert campaigns.get_by_slug(db, "nope") is None


@pytest.mark.parametrize(
    "slug", ["a", "A-b", "with space", "under_score", "-lead", "trail-", "x" * 65, "é-t", ""]
)
def test_bad_slugs_are_refused(db: Session, slug: str) -> None:
    with pytest.raises(CampaignError, match="invalid slug"):
        create_campaign(db, slug=slug, title="T")


@pytest.mark.parametrize("slug", ["ab", "free-kem-sokha", "2026", "x" * 64])
def test_good_slugs_are_taken(db: Session, slug: str) -> None:
    assert create_campaign(db, slug=slug, title="T").slug == slug


def test_taken_slug_is_refused_and_the_session_stays_usable(db: Session) -> None:
    create_campaign(db, slug="taken", title="First")
    db.commit()
    with pytest.raises(CampaignError, match="taken"):
        create_campaign(db, slug="taken", title="Second")
    create_campaign(db, slug="other", title="Third")
    db.commit()
    assert db.scalar(select(func.count()).select_from(Campaign)) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"state": "paused"}, "unknown state"),
        ({"goal": 0}, "goal"),
        ({"recipient": "r" * 201}, "recipient"),
        ({"opens_at": dt.datetime(2026, 1, 1)}, "timezone"),
        ({"opens_at": NOW, "closes_at": NOW}, "close after"),
    ],
)
def test_bad_values_are_refused(db: Session, changes: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"slug": "c1", "title": "T", **changes}
    with pytest.raises(CampaignError, match=message):
        create_campaign(db, **values)


def test_update_changes_settings(db: Session) -> None:
    campaign = create_campaign(db, slug="c1", title="T")
    update_campaign(db, campaign, state="open", title="New", goal=100)
    db.commit()
    assert (campaign.state, campaign.title, campaign.goal) == ("open", "New", 100)


def test_update_refuses_unknown_fields_and_taken_slugs(db: Session) -> None:
    create_campaign(db, slug="c1", title="T")
    second = create_campaign(db, slug="c2", title="T")
    db.commit()
    with pytest.raises(CampaignError, match="cannot change"):
        update_campaign(db, second, id=5)
    with pytest.raises(CampaignError, match="taken"):
        update_campaign(db, second, slug="c1")


def test_dropping_confirmation_counts_pending_signatures(db: Session) -> None:
    campaign = create_campaign(db, slug="c1", title="T", state="open")
    for n in range(3):
        signing.sign(
            db,
            campaign,
            signing.validate_entry(
                {
                    "name": f"Signer {n}",
                    "title": "MP",
                    "parliament": "Diet",
                    "country": "JP",
                    "email": f"s{n}@example.org",
                }
            ),
        )
    db.commit()
    assert tally.total(db, campaign) == 0
    update_campaign(db, campaign, require_confirmation=False)
    db.commit()
    # The rule has changed; the signatures it decides move after it, as the dashboard does.
    assert tally.total(db, campaign) == 0
    assert rederive(db, campaign.id) == 3
    db.commit()
    assert tally.total(db, campaign) == 3
    update_campaign(db, campaign, require_confirmation=True)
    db.commit()
    assert rederive(db, campaign.id) == 3
    db.commit()
    assert tally.total(db, campaign) == 0
    assert rederive(db, campaign.id) == 0  # nothing left to move
    assert tally.recount(db, campaign) == {}


def test_is_accepting_needs_open_state_and_the_window() -> None:
    hour = dt.timedelta(hours=1)
    open_ = Campaign(state="open", opens_at=None, closes_at=None)
    assert is_accepting(open_, NOW)
    assert not is_accepting(Campaign(state="draft", opens_at=None, closes_at=None), NOW)
    assert not is_accepting(Campaign(state="closed", opens_at=None, closes_at=None), NOW)
    assert not is_accepting(Campaign(state="open", opens_at=NOW + hour, closes_at=None), NOW)
    assert is_accepting(Campaign(state="open", opens_at=NOW - hour, closes_at=NOW + hour), NOW)
    assert not is_accepting(Campaign(state="open", opens_at=None, closes_at=NOW), NOW)


def test_changing_the_rule_of_a_big_letter_moves_its_signers_in_a_few_statements(
    any_app: Any,
) -> None:
    # Row by row, a letter of 10,000 unconfirmed signers took 24 s to change its rule, and on
    # SQLite every signer waited for it (past 30 s, turned away).
    db = dbmod.new_session(any_app)
    campaign = create_campaign(db, slug="big", title="T", state="open")
    db.commit()
    insert_members(
        db, campaign, 2000, countries=("FR", "KE", "JP", "BR"), status="pending", counted=False
    )
    db.execute(update(Signature).where(Signature.id % 3 == 0).values(public=False))
    # Those whose status the rule does not decide: confirmed by mail, held, rejected, erased.
    kept = [
        {"status": "confirmed", "confirmed_at": NOW, "counted": True},
        {"status": "held", "duplicate_state": "held"},
        {"status": "rejected", "rejected_at": NOW},
        {"status": "erased", "erased_at": NOW},
    ]
    for n, values in enumerate(kept):
        db.execute(update(Signature).where(Signature.name == f"Member {n}").values(**values))
    tally.recount(db, campaign)
    db.commit()
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        statements.append(statement)

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        update_campaign(db, campaign, require_confirmation=False)
        db.commit()
        rederive(db, campaign.id)
        db.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) < 20
    assert tally.status_counts(db, [campaign.id])[campaign.id] == {
        "pending": 0,
        "held": 1,
        "confirmed": 1997,
        "rejected": 1,
        "withdrawn": 0,
        "erased": 1,
    }
    assert tally.recount(db, campaign) == {}  # the counters, listed ones too, moved exactly
    update_campaign(db, campaign, require_confirmation=True)
    db.commit()
    rederive(db, campaign.id)
    db.commit()
    counts = tally.status_counts(db, [campaign.id])[campaign.id]
    assert (counts["pending"], counts["confirmed"]) == (1996, 1)
    assert tally.recount(db, campaign) == {}
    db.close()
