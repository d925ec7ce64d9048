"""Test helpers for export, import and the letter: campaigns, signers, a logged-in client."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from campaign import auth, review, signing, tally
from campaign.db import new_session
from campaign.models import Campaign, Organizer, Signature

PASSWORD = "correct horse battery staple"


def make_campaign(
    db: Session, slug: str = "release", *, require_confirmation: bool = True, **values: Any
) -> Campaign:
    """A committed, open campaign."""
    campaign = Campaign(
        slug=slug,
        title=values.pop("title", f"Release the prisoner ({slug})"),
        letter=values.pop("letter", "Dear Prime Minister,\n\nWe ask you to **release** him."),
        recipient=values.pop("recipient", "The Prime Minister"),
        state="open",
        require_confirmation=require_confirmation,
        **values,
    )
    db.add(campaign)
    db.commit()
    return campaign


def make_organizer(
    db: Session, email: str = "org@example.org", *, campaigns: tuple[Campaign, ...] = ()
) -> Organizer:
    """A committed organizer running the given campaigns."""
    organizer = auth.create_organizer(db, email, PASSWORD)
    for campaign in campaigns:
        auth.add_to_campaign(db, organizer, campaign)
    db.commit()
    return organizer


def sign(
    db: Session,
    campaign: Campaign,
    name: str,
    email: str,
    *,
    country: str = "FR",
    confirmed: bool = True,
    commit: bool = True,
    **fields: Any,
) -> Signature:
    """A signature through the form's own rules and signing.sign()."""
    raw = {
        "name": name,
        "title": fields.pop("title", "MP"),
        "parliament": fields.pop("parliament", "National Assembly"),
        "party": fields.pop("party", "Greens"),
        "country": country,
        "email": email,
        "comment": fields.pop("comment", ""),
        "public": fields.pop("public", True),
    }
    entry = signing.validate_entry(raw)
    outcome = signing.sign(db, campaign, entry, confirmed=confirmed)
    assert outcome.created, f"{email} signed twice"
    for key, value in fields.items():
        setattr(outcome.signature, key, value)
    if fields:
        tally.refresh(db, outcome.signature)
    if commit:
        db.commit()
    return outcome.signature


def verify(db: Session, organizer: Organizer, signature: Signature) -> None:
    """Mark a signature verified, as the dashboard does."""
    review.verify(db, organizer, signature)
    db.commit()


def login(client: FlaskClient, organizer: Organizer) -> FlaskClient:
    """Log the client in as the organizer (the session row and cookie the login form makes)."""
    app = client.application
    with app.app_context():
        db = new_session(app)
        try:
            _, secret = auth.start_session(db, organizer, "")
            db.commit()
        finally:
            db.close()
    with client.session_transaction() as session:
        session["organizer_id"] = organizer.id
        session["epoch"] = organizer.session_epoch
        session["login"] = secret
    return client


def counted_by_country(app: Flask, slug: str) -> dict[str, int]:
    """The campaign's counters, and a check that they equal a fresh count of the rows."""
    db = new_session(app)
    try:
        campaign = db.scalar(select(Campaign).where(Campaign.slug == slug))
        assert campaign is not None
        counts = tally.tally(db, campaign)
        fresh = {
            code: count
            for code, count in db.execute(
                select(Signature.country_code, func.count())
                .where(Signature.campaign_id == campaign.id, Signature.counted.is_(True))
                .group_by(Signature.country_code)
            )
        }
        by_country = {c.code: c.signatures for c in counts.by_country}
        assert by_country == fresh, "counters drifted from the rows"
        return by_country
    finally:
        db.close()


def insert_old_letter(conn: Connection, now: dt.datetime) -> None:
    """An open letter 'old' in raw SQL, with the columns every schema revision has.

    For the migration tests, which insert rows at an older revision than the models'.
    """
    conn.execute(
        text(
            "INSERT INTO campaign (slug, title, letter, recipient, state, "
            "require_confirmation, created_at, updated_at) VALUES ('old', 'Old letter', "
            "'Text', '', 'open', true, :now, :now)"
        ),
        {"now": now},
    )


def count_signatures(app: Flask) -> int:
    """How many signature rows the database holds."""
    with app.app_context():
        db = new_session(app)
        count = int(db.scalar(select(func.count()).select_from(Signature)) or 0)
        db.close()
        return count
