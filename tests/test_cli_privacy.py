"""`campaign anonymize`: which letters count as closed, and since when."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from sqlalchemy import select, update
from test_privacy import add_campaign, add_signature, run

from campaign import audit
from campaign.db import new_session, session_scope
from campaign.models import AuditEntry, Campaign, Signature

UTC = dt.UTC
NOW = dt.datetime.now(UTC)


def _emails(app: Flask, slug: str) -> list[str]:
    with session_scope(app) as db:
        return list(db.scalars(select(Signature.email).join(Campaign).where(Campaign.slug == slug)))


def _day(moment: dt.datetime) -> str:
    return moment.date().isoformat()


def test_an_open_letter_past_its_closing_date_is_anonymized(any_app: Flask) -> None:
    with any_app.app_context():
        db = new_session(any_app)
        letter = add_campaign(db, "ran-out", state="open", closes_at=NOW - dt.timedelta(days=200))
        add_signature(db, letter, 1, "KH")
        still = add_campaign(db, "still-open", state="open", closes_at=NOW + dt.timedelta(days=30))
        add_signature(db, still, 2, "FR")
        db.commit()
        db.close()
    # A cutoff in the future never takes a letter that still takes signatures.
    result = run(any_app, "anonymize", "--closed-before", _day(NOW + dt.timedelta(days=365)))
    assert result.exit_code == 0, result.output
    assert result.output == "anonymized 1 signatures in 1 closed campaigns (ran-out)\n"
    assert _emails(any_app, "ran-out") == [""]
    assert _emails(any_app, "still-open") == ["member2@parliament.example"]


def _closed_by_hand(app: Flask, closed: dt.datetime, edited: dt.datetime) -> None:
    """A letter set to closed at `closed` (its audit trail says so), edited at `edited`."""
    with app.app_context():
        db = new_session(app)
        letter = add_campaign(db, "by-hand", state="closed", closes_at=None)
        add_signature(db, letter, 1, "KH")
        entry = audit.record(
            db,
            None,
            "campaign.update",
            campaign=letter,
            before={"state": "open"},
            after={"state": "closed"},
        )
        entry.created_at = closed
        fixed = audit.record(
            db, None, "campaign.update", campaign=letter, after={"title": "Typo fixed"}
        )
        fixed.created_at = edited
        db.flush()
        db.execute(update(Campaign).where(Campaign.id == letter.id).values(updated_at=edited))
        db.commit()
        db.close()


def test_editing_a_closed_letter_does_not_restart_the_retention_clock(app: Flask) -> None:
    _closed_by_hand(app, NOW - dt.timedelta(days=200), NOW - dt.timedelta(days=1))
    result = run(app, "anonymize", "--closed-before", _day(NOW - dt.timedelta(days=90)))
    assert result.output == "anonymized 1 signatures in 1 closed campaigns (by-hand)\n"
    assert _emails(app, "by-hand") == [""]


def test_a_letter_reopened_and_closed_again_counts_from_its_last_closing(app: Flask) -> None:
    _closed_by_hand(app, NOW - dt.timedelta(days=200), NOW - dt.timedelta(days=150))
    with session_scope(app) as db:
        letter = db.scalars(select(Campaign)).one()
        for days, state in ((120, "open"), (10, "closed")):
            entry = audit.record(
                db, None, "campaign.update", campaign=letter, after={"state": state}
            )
            entry.created_at = NOW - dt.timedelta(days=days)
    cutoff = _day(NOW - dt.timedelta(days=90))
    assert run(app, "anonymize", "--closed-before", cutoff).output.startswith("anonymized 0 ")
    assert _emails(app, "by-hand") == ["member1@parliament.example"]


@pytest.mark.parametrize("closes_in_days", [-200, 30])
def test_a_closed_letter_counts_from_the_earlier_of_its_date_and_its_closing(
    app: Flask, closes_in_days: int
) -> None:
    """Set to closed 200 days ago: a closing date still ahead (or also past) changes nothing."""
    _closed_by_hand(app, NOW - dt.timedelta(days=200), NOW - dt.timedelta(days=1))
    with session_scope(app) as db:
        db.execute(update(Campaign).values(closes_at=NOW + dt.timedelta(days=closes_in_days)))
    result = run(app, "anonymize", "--closed-before", _day(NOW - dt.timedelta(days=90)))
    assert result.output.startswith("anonymized 1 signatures")


def test_the_audit_entries_read_for_the_clock_stay(app: Flask) -> None:
    _closed_by_hand(app, NOW - dt.timedelta(days=200), NOW - dt.timedelta(days=1))
    assert run(app, "anonymize", "--closed-before", _day(NOW)).exit_code == 0
    with session_scope(app) as db:
        assert db.scalar(select(AuditEntry.after).where(AuditEntry.after.contains("closed")))
