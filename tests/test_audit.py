"""The audit trail: entries, their JSON, the per-campaign page."""

from __future__ import annotations

import datetime as dt
import json
import re

from admin_helpers import (
    AuthActions,
    auth,
    make_campaign,
    make_organizer,
    make_signature,
    store,
)
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from campaign import audit, review
from campaign.models import AuditEntry

__all__ = ["auth", "store"]


def test_record_stores_sorted_json_with_iso_dates(store: Session) -> None:
    campaign = make_campaign(store, "kem")
    organizer = make_organizer(store, "a@example.org", campaigns=(campaign,))
    when = dt.datetime(2026, 11, 28, 12, 30, tzinfo=dt.UTC)
    entry = audit.record(
        store,
        organizer,
        "campaign.update",
        campaign=campaign,
        before={"title": "Old", "closes_at": None},
        after={"title": "Nouveau ✓", "closes_at": when},
    )
    store.commit()
    assert entry.before == '{"closes_at": null, "title": "Old"}'
    assert entry.after == '{"closes_at": "2026-11-28T12:30:00+00:00", "title": "Nouveau ✓"}'
    assert [(c.field, c.before, c.after) for c in audit.changes(entry)] == [
        ("closes_at", None, "2026-11-28T12:30:00+00:00"),
        ("title", "Old", "Nouveau ✓"),
    ]


def test_an_entry_on_a_signature_belongs_to_its_campaign(store: Session) -> None:
    campaign = make_campaign(store, "kem")
    organizer = make_organizer(store, "a@example.org", campaigns=(campaign,))
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    entry = review.verify(store, organizer, signature)
    store.commit()
    [recorded] = store.query(AuditEntry).all()
    assert recorded.campaign_id == campaign.id
    assert recorded.signature_id == entry.id
    assert recorded.organizer_id == organizer.id


def _alice_on_anns_signature(store: Session, auth: AuthActions) -> str:
    """Alice, logged in, running letter kem with Ann's signature on it: that page's path."""
    campaign = make_campaign(store, "kem")
    make_organizer(store, "alice@example.org", campaigns=(campaign,))
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    auth.login("alice@example.org")
    return f"/admin/c/kem/signatures/{signature.id}"


def test_the_audit_page_lists_entries_newest_first_with_before_and_after(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    url = _alice_on_anns_signature(store, auth)
    client.post(url, data={"action": "verify"})
    client.post(url, data={"action": "reject", "reason": "not an MP"})
    page = client.get("/admin/c/kem/audit").get_data(as_text=True)
    actions = re.findall(r"<code>(signature\.\w+)</code>", page)
    assert actions == ["signature.reject", "signature.verify"]
    assert "alice@example.org" in page
    assert f"#{url.rsplit('/', 1)[1]}" in page
    assert "not an MP" in page
    assert "<bdi>confirmed</bdi> → <bdi>rejected</bdi>" in page


def test_fields_blank_on_both_sides_are_left_out_and_unchanged_ones_shown_once(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    campaign = make_campaign(store, "kem")
    organizer = make_organizer(store, "alice@example.org", campaigns=(campaign,))
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    entry = audit.record(
        store,
        organizer,
        "signature.edit",
        signature=signature,
        before={"name": "Ann Lee", "party": None, "title": "MP", "public": False},
        after={"name": "Anne Lee", "party": "", "title": "MP", "duplicate_of_id": None},
    )
    store.commit()
    assert [(c.field, c.before, c.after, c.unchanged) for c in audit.changes(entry)] == [
        ("name", "Ann Lee", "Anne Lee", False),
        ("public", False, None, False),
        ("title", "MP", "MP", True),
    ]
    auth.login("alice@example.org")
    for url in ("/admin/c/kem/audit", f"/admin/c/kem/signatures/{signature.id}"):
        page = client.get(url).get_data(as_text=True)
        assert "<bdi>Ann Lee</bdi> → <bdi>Anne Lee</bdi>" in page, url
        assert "<li>Listed publicly: <bdi>no</bdi> → <span" in page, url
        assert "<li>Title: <bdi>MP</bdi></li>" in page, url
        assert "duplicate_of_id" not in page and "Possible duplicate of" not in page, url
        assert "<li>Party" not in page, url


def test_an_added_signatures_entry_names_only_what_it_has(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    campaign = make_campaign(store, "kem")
    make_organizer(store, "alice@example.org", campaigns=(campaign,))
    auth.login("alice@example.org")
    response = client.post(
        "/admin/c/kem/signatures/new",
        data={
            "name": "Ann Lee",
            "title": "MP",
            "parliament": "Senate",
            "party": "",
            "country": "FR",
            "email": "ann@parl.example",
            "mode": "count_now",
            "locale": "en",
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    history = page[page.index("<h2>History</h2>") :]
    assert "signature.add" in history
    assert '<li>Name: <span class="muted">∅</span> → <bdi>Ann Lee</bdi>' in history
    assert "duplicate_of_id" not in history and "Possible duplicate of" not in history
    assert "<li>Party" not in history
    assert "∅</span> → </li>" not in history


def test_the_audit_page_is_paged(client: FlaskClient, auth: AuthActions, store: Session) -> None:
    campaign = make_campaign(store, "kem")
    organizer = make_organizer(store, "alice@example.org", campaigns=(campaign,))
    for i in range(60):
        audit.record(store, organizer, f"test.{i:02d}", campaign=campaign)
    store.commit()
    auth.login("alice@example.org")
    first = client.get("/admin/c/kem/audit").get_data(as_text=True)
    assert re.findall(r"<code>(test\.\d+)</code>", first)[:2] == ["test.59", "test.58"]
    assert len(re.findall(r"<code>test\.", first)) == 50
    assert "Page 1 of 2" in first
    second = client.get("/admin/c/kem/audit?page=2").get_data(as_text=True)
    assert re.findall(r"<code>(test\.\d+)</code>", second)[-1] == "test.00"


def test_another_campaigns_entries_are_not_listed(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    mine = make_campaign(store, "mine")
    theirs = make_campaign(store, "theirs")
    organizer = make_organizer(store, "alice@example.org", campaigns=(mine,))
    audit.record(store, organizer, "test.mine", campaign=mine)
    audit.record(store, organizer, "test.theirs", campaign=theirs)
    store.commit()
    auth.login("alice@example.org")
    page = client.get("/admin/c/mine/audit").get_data(as_text=True)
    assert "test.mine" in page
    assert "test.theirs" not in page


def test_redaction_blanks_named_fields_only(store: Session) -> None:
    campaign = make_campaign(store, "kem")
    organizer = make_organizer(store, "a@example.org", campaigns=(campaign,))
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    review.reject(store, organizer, signature, "Ann Lee is not an MP")
    assert audit.redact_signature(store, signature.id, ("rejected_reason",)) == 1
    store.commit()
    [entry] = store.query(AuditEntry).all()
    after = json.loads(entry.after)
    assert after["rejected_reason"] == "[erased]"
    assert after["status"] == "rejected"


def test_a_signatures_history_names_fields_and_statuses_in_the_readers_language(
    client: FlaskClient, auth: AuthActions, store: Session
) -> None:
    url = _alice_on_anns_signature(store, auth)
    client.post(url, data={"action": "reject", "reason": "not an MP"})
    client.post(url, data={"action": "restore"})
    client.post(url, data={"action": "erase", "confirm_erase": "y"})
    page = client.get(f"{url}?lang=fr").get_data(as_text=True)
    history = page[page.index("<h2>Historique</h2>") :].replace("\xa0", " ")
    assert "<li>Statut : <bdi>refusée</bdi> → <bdi>confirmée</bdi></li>" in history
    # Erased later, the reason reads so; an empty one reads as no value, not as nothing.
    assert '<li>Motif du refus : <bdi>[effacé]</bdi> → <span class="muted">∅</span></li>' in history
    assert "<li>Compte : <bdi>oui</bdi> → <bdi>non</bdi></li>" in history
    assert "rejected" not in history and "[erased]" not in history
    assert "<code>status</code>" not in history and "<code>rejected_reason</code>" not in history
