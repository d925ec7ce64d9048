"""Privacy: the privacy page, and `campaign anonymize` erasing closed campaigns' personal data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign import audit, campaigns, mail, review, signing, tally
from campaign.db import new_session
from campaign.models import AuditEntry, Campaign, Organizer, OutboxMessage, Signature

UTC = dt.UTC
PERSONAL = ("name", "title", "parliament", "party", "email", "comment", "client_hash")


def add_campaign(db: Session, slug: str, *, state: str, closes_at: dt.datetime | None) -> Campaign:
    """A campaign in the given state; created open so closes_at may lie in the past."""
    campaign = campaigns.create_campaign(db, slug=slug, title=f"Letter {slug}", state="open")
    campaign.closes_at = closes_at
    campaign.state = state
    db.flush()
    return campaign


def add_signature(db: Session, campaign: Campaign, n: int, country: str, **changes: Any) -> int:
    """A confirmed signature with every personal field filled; returns its id."""
    values: dict[str, Any] = {
        "name": f"Member Number{n} Person",
        "title": "MP",
        "parliament": "National Assembly",
        "party": "Party of Signers",
        "country_code": country,
        "email": f"member{n}@parliament.example",
        "comment": f"Comment by member {n}",
        "public": True,
        "client_hash": f"{n:064x}",
    }
    values.update(changes)
    outcome = signing.sign(db, campaign, signing.SignatureEntry(**values), confirmed=True)
    return outcome.signature.id


@pytest.fixture
def closed_setup(any_app: Flask) -> dict[str, Any]:
    """An old closed campaign with five signers (one withdrawn), a recent one, an open one."""
    with any_app.app_context():
        db = new_session(any_app)
        old = add_campaign(
            db, "old-letter", state="closed", closes_at=dt.datetime(2026, 3, 1, tzinfo=UTC)
        )
        recent = add_campaign(
            db, "recent-letter", state="closed", closes_at=dt.datetime(2026, 11, 1, tzinfo=UTC)
        )
        running = add_campaign(db, "running-letter", state="open", closes_at=None)
        ids = [add_signature(db, old, n, c) for n, c in enumerate(["KH", "KH", "FR", "BR", "JP"])]
        signing.withdraw(db, ids[4])
        recent_id = add_signature(db, recent, 10, "KH")
        running_id = add_signature(db, running, 11, "KH")
        organizer = Organizer(email="org@example.org", password_hash="x")
        db.add(organizer)
        db.flush()
        review.reject(db, organizer, db.get(Signature, ids[3]), "Member Number3 is not an MP")
        mail.queue(
            db,
            to="member0@parliament.example",
            subject="Confirm",
            text="Dear Member Number0",
            signature_id=ids[0],
        )
        db.commit()
        db.close()
    return {"app": any_app, "old_ids": ids, "recent_id": recent_id, "running_id": running_id}


def run(app: Flask, *args: str) -> Any:
    """Run a `campaign` command on the app."""
    return app.test_cli_runner().invoke(args=list(args))


def test_privacy_page_says_what_is_kept_why_how_long_and_how_to_leave(app_factory) -> None:
    app = app_factory(PRIVACY_CONTACT="privacy@letters.example", RETENTION_DAYS_AFTER_CLOSE=60)
    page = app.test_client().get("/privacy")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for words in (
        "email address",
        "keyed hash",
        "Why",
        "Who sees what",
        "never appear on a public page",
        "Within 60 days after it closes",
        "link to withdraw",
        'href="mailto:privacy@letters.example"',
    ):
        assert words in text


def test_privacy_page_falls_back_to_the_sender_address(app_factory) -> None:
    app = app_factory(MAIL_FROM="letters@example.net")
    assert 'href="mailto:letters@example.net"' in app.test_client().get("/privacy").get_data(
        as_text=True
    )


def test_every_page_links_the_privacy_page(client) -> None:
    for path in ("/privacy", "/admin/login", "/no-such-page"):
        assert 'href="/privacy"' in client.get(path).get_data(as_text=True)


def tally_json(app: Flask, slug: str) -> dict[str, Any]:
    """The public tally.json of a campaign."""
    response = app.test_client().get(f"/c/{slug}/tally.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    body.pop("updated_at", None)
    return body


def test_anonymize_erases_personal_data_of_old_closed_campaigns_and_keeps_counts(
    closed_setup: dict[str, Any],
) -> None:
    app = closed_setup["app"]
    before = tally_json(app, "old-letter")
    assert before["signatures"] == 3

    result = run(app, "anonymize", "--closed-before", "2026-06-01")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "anonymized 5 signatures in 1 closed campaigns (old-letter)"
    assert tally_json(app, "old-letter") == before
    with app.app_context():
        db = new_session(app)
        rows = db.scalars(select(Signature).where(Signature.id.in_(closed_setup["old_ids"]))).all()
        assert len(rows) == 5
        for row in rows:
            assert all(not getattr(row, field) for field in PERSONAL), row.id
            assert row.email_key == f"erased:{row.id}"
            assert row.email_domain == "" and row.name_key == "" and not row.public
            assert row.rejected_reason == ""
        assert sorted(r.status for r in rows) == [
            "confirmed",
            "confirmed",
            "confirmed",
            "rejected",
            "withdrawn",
        ]
        assert sorted(r.country_code for r in rows if r.counted) == ["FR", "KH", "KH"]
        old = db.scalar(select(Campaign).where(Campaign.slug == "old-letter"))
        assert tally.recount(db, old) == {}  # the counters still match the rows
        assert db.scalars(select(OutboxMessage)).all() == []
        reason = db.scalar(
            select(AuditEntry.after).where(AuditEntry.signature_id == closed_setup["old_ids"][3])
        )
        assert "Member Number3" not in (reason or "")
        assert json.loads(reason or "{}").get("rejected_reason") == "[erased]"
        kept = db.scalars(
            select(Signature).where(
                Signature.id.in_([closed_setup["recent_id"], closed_setup["running_id"]])
            )
        ).all()
        assert [row.email for row in kept] == [
            "member10@parliament.example",
            "member11@parliament.example",
        ]
        db.close()


def test_anonymize_deletes_the_mail_files_written_to_those_signers(
    closed_setup: dict[str, Any],
) -> None:
    app = closed_setup["app"]
    with app.app_context():
        db = new_session(app)
        mail.queue(
            db,
            to="member11@parliament.example",
            subject="Confirm",
            text="Dear Member Number11",
            signature_id=closed_setup["running_id"],
        )
        db.commit()
        db.close()
    assert mail.deliver_due(app) == 2  # no SMTP: two .eml files
    folder = Path(app.instance_path) / "outbox"
    assert len(list(folder.glob("*.eml"))) == 2

    assert run(app, "anonymize", "--closed-before", "2026-06-01").exit_code == 0

    [left] = folder.glob("*.eml")  # the open letter's signer keeps theirs
    assert "Member Number11" in left.read_text()
    assert not any("Member Number0" in path.read_text() for path in folder.iterdir())


def test_anonymize_deletes_the_receipts_of_the_signers_it_erases(any_app: Flask) -> None:
    with any_app.app_context(), new_session(any_app) as db:
        campaigns.create_campaign(
            db, slug="quick", title="Quick letter", state="open", require_confirmation=False
        )
        db.commit()
    client = any_app.test_client()
    form = {"title": "MP", "parliament": "Assembly", "country": "KH", "public": "y"}
    client.post("/c/quick/sign", data={**form, "name": "Member One", "email": "one@parl.example"})
    assert mail.deliver_due(any_app) == 1  # one receipt sent, the other still queued
    client.post("/c/quick/sign", data={**form, "name": "Member Two", "email": "two@parl.example"})
    with new_session(any_app) as db:
        assert list(db.scalars(select(OutboxMessage.kind))) == ["receipt", "receipt"]
        letter = db.scalars(select(Campaign).where(Campaign.slug == "quick")).one()
        letter.state, letter.closes_at = "closed", dt.datetime(2026, 3, 1, tzinfo=UTC)
        db.commit()

    result = run(any_app, "anonymize", "--closed-before", "2026-06-01")

    assert result.exit_code == 0, result.output
    assert "anonymized 2 signatures" in result.output
    with new_session(any_app) as db:
        assert db.scalars(select(OutboxMessage)).all() == []


def test_anonymize_twice_erases_nothing_more(closed_setup: dict[str, Any]) -> None:
    app = closed_setup["app"]
    assert run(app, "anonymize", "--closed-before", "2026-06-01").exit_code == 0
    again = run(app, "anonymize", "--closed-before", "2026-06-01")
    assert again.exit_code == 0
    assert again.output.startswith("anonymized 0 signatures in 1 closed campaigns")


def test_anonymize_dry_run_changes_nothing(closed_setup: dict[str, Any]) -> None:
    app = closed_setup["app"]
    result = run(app, "anonymize", "--closed-before", "2026-12-01", "--dry-run")
    assert result.exit_code == 0
    assert result.output.strip() == (
        "would anonymize 6 signatures in 2 closed campaigns (old-letter, recent-letter)"
    )
    with app.app_context():
        db = new_session(app)
        emails = db.scalars(select(Signature.email).where(Signature.email == "")).all()
        assert emails == []
        assert len(db.scalars(select(OutboxMessage)).all()) == 1
        db.close()


def test_anonymize_uses_the_last_change_of_a_campaign_closed_without_a_date(
    app_factory,
) -> None:
    app = app_factory()
    with app.app_context():
        db = new_session(app)
        campaign = add_campaign(db, "closed-by-hand", state="closed", closes_at=None)
        add_signature(db, campaign, 1, "KH")
        db.commit()
        db.close()
    tomorrow = (dt.datetime.now(UTC) + dt.timedelta(days=1)).date().isoformat()
    today = dt.datetime.now(UTC).date().isoformat()
    assert run(app, "anonymize", "--closed-before", today).output.startswith("anonymized 0 ")
    assert run(app, "anonymize", "--closed-before", tomorrow).output.startswith("anonymized 1 ")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "01/02/2026", ""])
def test_anonymize_refuses_a_bad_date_in_one_line(runner, value: str) -> None:
    result = runner.invoke(args=["anonymize", "--closed-before", value])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "--closed-before" in lines[0] and "not a date" in lines[0]


def test_anonymize_keeps_audit_entries_that_name_no_one(closed_setup: dict[str, Any]) -> None:
    app = closed_setup["app"]
    with app.app_context():
        db = new_session(app)
        signature = db.get(Signature, closed_setup["old_ids"][0])
        organizer = db.scalar(select(Organizer))
        audit.record(db, organizer, "signature.verify", signature=signature, after={"verified": 1})
        db.commit()
        db.close()
    assert run(app, "anonymize", "--closed-before", "2026-06-01").exit_code == 0
    with app.app_context():
        db = new_session(app)
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "signature.verify"))
        assert entry is not None and json.loads(entry.after) == {"verified": 1}
        db.close()


def test_public_pages_and_json_never_show_an_email_or_address_hash(app_factory) -> None:
    app = app_factory()
    with app.app_context():
        db = new_session(app)
        letter = add_campaign(db, "letter", state="open", closes_at=None)
        add_signature(db, letter, 1, "KH", public=True)
        add_signature(db, letter, 2, "FR", public=False)
        db.commit()
        db.close()
    client = app.test_client()
    paths = ["/", "/c/letter", "/c/letter/tally", "/c/letter/tally.json", "/c/letter/signatories"]
    paths += ["/c/letter/widget", "/c/letter/badge.svg", "/c/letter/thanks"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        text = response.get_data(as_text=True)
        for n in (1, 2):
            assert f"member{n}@" not in text and "parliament.example" not in text, path
            assert f"{n:064x}" not in text, path
    listed = client.get("/c/letter/signatories").get_data(as_text=True)
    assert "Member Number1 Person" in listed and "Member Number2 Person" not in listed
