"""Organizers correct a signer's details: validation, counters, duplicate flags, audit, access."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from admin_helpers import (
    AuthActions,
    auth,
    campaign,
    changes_audited,
    flashes,
    logged_in,
    make_campaign,
    make_organizer,
    make_signature,
    reload,
    store,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign import review, signing, tally
from campaign.db import session_scope
from campaign.models import AuditEntry, Campaign, Organizer, Signature, TallyCount

__all__ = ["auth", "campaign", "logged_in", "store"]


def _details(signature: Signature, **changes: str) -> dict[str, str]:
    """The form as the page fills it for this signature, with some fields changed."""
    data = {
        "name": signature.name,
        "title": signature.title,
        "parliament": signature.parliament,
        "party": signature.party,
        "country": signature.country_code,
    }
    return data | changes


def _post(client: FlaskClient, signature: Signature, **changes: str) -> Any:
    return client.post(
        f"/admin/c/kem/signatures/{signature.id}/details", data=_details(signature, **changes)
    )


def _edits(store: Session) -> list[AuditEntry]:
    store.expire_all()
    return list(
        store.scalars(
            select(AuditEntry).where(AuditEntry.action == "signature.edit").order_by(AuditEntry.id)
        )
    )


def _tally(client: FlaskClient) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(client.get("/c/kem/tally.json").data)
    return data


def _listed(store: Session, campaign: Campaign) -> dict[str, int]:
    store.expire_all()
    return {
        row.country_code: row.listed
        for row in store.scalars(select(TallyCount).where(TallyCount.campaign_id == campaign.id))
        if row.listed
    }


def _no_drift(store: Session, campaign: Campaign) -> None:
    store.expire_all()
    assert tally.recount(store, campaign) == {}
    store.rollback()


# --- the form -------------------------------------------------------------------


def test_the_page_has_the_form_filled_and_says_why_the_address_stays(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Jon Smiht", "jon@parl.example", party="Labor")
    page = client.get(f"/admin/c/kem/signatures/{signature.id}").get_data(as_text=True)
    assert "Edit details" in page
    assert f'action="/admin/c/kem/signatures/{signature.id}/details#error-summary"' in page
    assert 'value="Jon Smiht"' in page
    assert 'value="Labor"' in page
    assert 'data-continent="Europe" selected value="FR"' in page
    assert "Continent: Europe" in page
    assert "The email address cannot be changed" in page
    assert "the signer can sign again with the right one" in page
    assert 'name="email"' not in page
    # Folded until the organizer opens it.
    assert 'id="edit-details">' in page
    # A reloaded form address leads back to the form, unfolded.
    response = client.get(f"/admin/c/kem/signatures/{signature.id}/details")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.endswith(f"/signatures/{signature.id}?edit=details#edit-details")
    page = client.get(location).get_data(as_text=True)
    assert 'id="edit-details" open>' in page
    assert 'value="Jon Smiht"' in page


def test_the_country_is_named_in_the_organizers_language(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Jon Smith", "jon@parl.example", country="DE")
    page = client.get(f"/admin/c/kem/signatures/{signature.id}?lang=es").get_data(as_text=True)
    assert 'data-continent="Europa" selected value="DE">Alemania</option>' in page
    assert ">Antigua y Barbuda</option>" in page and ">Germany</option>" not in page


@pytest.mark.parametrize(
    ("field", "column", "value"),
    [
        ("name", "name", "Jon Smith"),
        ("title", "title", "Senator"),
        ("parliament", "parliament", "UK House of Commons"),
        ("party", "party", "Labour"),
        ("country", "country_code", "KE"),
    ],
)
def test_each_detail_is_corrected_and_audited_alone(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    field: str,
    column: str,
    value: str,
) -> None:
    signature = make_signature(store, campaign, "Jon Smiht", "jon@parl.example", party="Labor")
    before = getattr(signature, column)
    response = _post(client, signature, **{field: f"  {value} "})
    assert response.status_code == 303
    # At the top, where the message is, not at the form's #error-summary, which the browser keeps.
    assert response.headers["Location"].endswith(f"/admin/c/kem/signatures/{signature.id}#top")
    corrected = reload(store, signature)
    assert getattr(corrected, column) == value
    assert (corrected.email, corrected.status, corrected.counted) == (
        "jon@parl.example",
        "confirmed",
        True,
    )
    [entry] = _edits(store)
    assert json.loads(entry.before) == {column: before}
    assert json.loads(entry.after) == {column: value}
    label = {"country": "Country"}.get(field, field.capitalize())
    page = client.get(f"/admin/c/kem/signatures/{signature.id}")
    assert flashes(page) == [f"Details corrected: {label}."]
    history = page.get_data(as_text=True).split("History", 1)[1]
    assert "signature.edit" in history
    assert value in history


def test_the_person_key_and_continent_follow(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Jon Smiht", "jon@parl.example")
    _post(client, signature, name="Hon. Jon Smith", country="NZ")
    corrected = reload(store, signature)
    assert corrected.name_key == signing.name_key("Hon. Jon Smith") == "jon smith"
    assert (corrected.country_code, corrected.continent_code) == ("NZ", "OC")
    [entry] = _edits(store)
    # The derived values are not details: the audit names what the organizer changed.
    assert set(json.loads(entry.after)) == {"name", "country_code"}


def test_nothing_changed_records_nothing(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    response = _post(client, signature, name=" Ann Lee  ", country="fr")
    assert response.status_code == 303
    assert flashes(client.get(f"/admin/c/kem/signatures/{signature.id}")) == ["Nothing changed."]
    assert _edits(store) == []


def test_a_stored_name_with_direction_controls_is_isolated_and_must_be_corrected(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    # A row stored before direction controls were refused.
    name = "\uff2a\uff4f\uff48\uff4e\u202eevil"
    signature = make_signature(store, campaign, name, "john@parl.example")
    page = client.get(f"/admin/c/kem/signatures/{signature.id}").get_data(as_text=True)
    assert f"Signature #{signature.id}: <bdi>{name}</bdi></h1>" in page
    french = client.get(f"/admin/c/kem/signatures/{signature.id}?lang=fr").get_data(as_text=True)
    assert f"Signature n° {signature.id} : <bdi>{name}</bdi></h1>" in french  # French spacing
    client.get(f"/admin/c/kem/signatures/{signature.id}?lang=en")  # the language chosen back
    listed = client.get("/admin/c/kem/signatures").get_data(as_text=True)
    assert f"<bdi>{name}</bdi></a>" in listed
    response = _post(client, signature, party="Labour")
    assert response.status_code == 400
    assert "Remove the invisible text direction characters." in response.get_data(as_text=True)
    response = _post(client, signature, name="John Evil")
    assert reload(store, signature).name == "John Evil"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "   "}, "This field is required."),
        ({"title": ""}, "This field is required."),
        ({"parliament": ""}, "This field is required."),
        ({"country": "ZZ"}, "Choose a country from the list."),
        ({"country": ""}, "Choose a country."),
        ({"name": "N" * 201}, "Use at most 200 characters."),
        ({"title": "T" * 101}, "Use at most 100 characters."),
        ({"party": "P" * 201}, "Use at most 200 characters."),
        ({"party": "see www.example.com"}, "Remove the link."),
        ({"name": "Ann\x07Lee"}, "Remove the control characters."),
        ({"name": "\u200b"}, "This field is required."),
        ({"title": "\u2060"}, "This field is required."),
        ({"name": "Ann\u202eLee"}, "Remove the invisible text direction characters."),
        ({"parliament": "\u2067Senate\u2069"}, "Remove the invisible text direction characters."),
    ],
)
def test_bad_details_are_refused_and_change_nothing(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    changes: dict[str, str],
    message: str,
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    # A valid change beside the refused one is not kept either.
    changes = {"parliament": "Senate", **changes}
    response = _post(client, signature, **changes)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    assert message in page
    assert "<details" in page and 'id="edit-details" open' in page
    kept = reload(store, signature)
    assert (kept.name, kept.title, kept.parliament, kept.party, kept.country_code) == (
        "Ann Lee",
        "MP",
        "National Assembly",
        "Green",
        "FR",
    )
    assert _edits(store) == []


def test_a_posted_address_or_listing_is_ignored(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example", public=False)
    _post(client, signature, name="Ann Leigh", email="other@parl.example", public="y")
    corrected = reload(store, signature)
    assert corrected.name == "Ann Leigh"
    assert (corrected.email, corrected.email_key, corrected.public) == (
        "ann@parl.example",
        "ann@parl.example",
        False,
    )
    [entry] = _edits(store)
    assert json.loads(entry.after) == {"name": "Ann Leigh"}
    assert _listed(store, campaign) == {}


# --- counters -------------------------------------------------------------------


def test_a_new_country_moves_the_count_and_the_listing(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    campaign: Campaign,
    runner: Any,
) -> None:
    moved = make_signature(store, campaign, "Ann Lee", "ann@parl.example", public=True)
    make_signature(store, campaign, "Bo Chan", "bo@parl.example", public=True)
    make_signature(store, campaign, "Cy Dee", "cy@parl.example", country="KE", public=False)
    pending = make_signature(store, campaign, "Di Eng", "di@parl.example", confirmed=False)
    before = _tally(client)
    assert {c["code"]: c["signatures"] for c in before["by_country"]} == {"FR": 2, "KE": 1}
    _post(client, moved, country="KE")
    _post(client, pending, country="BR")
    after = _tally(client)
    assert {c["code"]: c["signatures"] for c in after["by_country"]} == {"FR": 1, "KE": 2}
    assert {c["code"]: c["signatures"] for c in after["by_continent"]} == {"EU": 1, "AF": 2}
    assert (after["signatures"], after["countries"], after["continents"]) == (3, 2, 2)
    assert _listed(store, campaign) == {"FR": 1, "KE": 1}
    _no_drift(store, campaign)
    result = runner.invoke(args=["recount", "kem"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "kem: counters match (3)"
    # The public list shows the signer under the new country.
    page = client.get("/c/kem/signatories?country=KE").get_data(as_text=True)
    assert "Ann Lee" in page


def test_counters_stay_exact_on_both_databases(app_factory: Any, backend: str) -> None:
    app: Flask = app_factory(backend)
    with session_scope(app) as db:
        made = make_campaign(db, "kem")
        organizer = make_organizer(db, "o@example.org", campaigns=(made,))
        first = make_signature(db, made, "Ann Lee", "a@parl.example", country="KE", public=True)
        other = make_signature(db, made, "Ann Leigh", "b@parl.example", country="FR", public=True)
        # A country of its own: one signature fewer there.
        review.edit(db, organizer, first, review.Details("Ann Lee", "MP", "Senate", "Green", "BR"))
        assert tally.recount(db, made) == {}
        # Now the same name and country as the first: held, off the count.
        edited = review.edit(
            db, organizer, other, review.Details("Ann Lee", "MP", "Senate", "Green", "BR")
        )
        assert edited.resembles == first.id
        assert (other.status, other.counted, other.duplicate_of_id) == ("held", False, first.id)
        assert tally.total(db, made) == 1
        assert tally.recount(db, made) == {}
        # Back to its own country: no longer resembling, the flag goes and it counts.
        edited = review.edit(
            db, organizer, other, review.Details("Ann Leigh", "MP", "Senate", "Green", "FR")
        )
        assert edited.released_from == first.id
        assert (other.status, other.counted, other.duplicate_of_id) == ("confirmed", True, None)
        assert {c.code: c.signatures for c in tally.tally(db, made).by_country} == {
            "BR": 1,
            "FR": 1,
        }
        assert tally.recount(db, made) == {}
        assert len(changes_audited(db)) == 3


# --- duplicates ----------------------------------------------------------------


def test_a_correction_that_makes_a_duplicate_is_held(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Jon Smith", "jon@parl.example")
    typo = make_signature(store, campaign, "Jon Smiht", "j.smith@other.example")
    assert _tally(client)["signatures"] == 2
    _post(client, typo, name="Hon. Jon Smith")
    held = reload(store, typo)
    assert (held.status, held.counted) == ("held", False)
    assert (held.duplicate_of_id, held.duplicate_state) == (first.id, "held")
    assert _tally(client)["signatures"] == 1
    assert flashes(client.get(f"/admin/c/kem/signatures/{typo.id}")) == [
        "Details corrected: Name.",
        f"It now resembles #{first.id} (same name and country): it is held as a possible "
        "duplicate and does not count until you decide on the duplicates page.",
    ]
    duplicates = client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    assert f'id="dup-{typo.id}"' in duplicates
    [entry] = _edits(store)
    assert json.loads(entry.after) == {
        "name": "Hon. Jon Smith",
        "duplicate_of_id": first.id,
        "duplicate_state": "held",
        "status": "held",
        "counted": False,
    }
    _no_drift(store, campaign)
    # The organizer decides as for any duplicate.
    client.post(f"/admin/c/kem/duplicates/{typo.id}", data={"keep": "both"})
    assert _tally(client)["signatures"] == 2


def test_only_live_signatures_are_resembled_and_flagged(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    gone = make_signature(store, campaign, "Jon Smith", "jon@parl.example")
    store.execute(
        Signature.__table__.update()
        .where(Signature.id == gone.id)
        .values(status="rejected", counted=False, rejected_at=gone.signed_at)
    )
    store.commit()
    typo = make_signature(store, campaign, "Jon Smiht", "j.smith@other.example")
    _post(client, typo, name="Jon Smith")
    assert reload(store, typo).status == "confirmed"
    assert reload(store, typo).duplicate_of_id is None


def test_a_correction_that_ends_a_resemblance_removes_the_flag(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    held = make_signature(store, campaign, "Ann Lee", "ann@other.example", duplicate_of=first)
    assert _tally(client)["signatures"] == 1
    # Same name and country after a mere spelling fix: still held against the same one.
    _post(client, held, name="Hon. Ann Lee")
    assert (reload(store, held).status, reload(store, held).duplicate_of_id) == ("held", first.id)
    client.get("/admin/")
    # Another country: a different member, counted as signing would have counted her.
    _post(client, held, name="Hon. Ann Lee", country="KE")
    released = reload(store, held)
    assert (released.status, released.counted) == ("confirmed", True)
    assert (released.duplicate_of_id, released.duplicate_state) == (None, None)
    assert _tally(client)["signatures"] == 2
    assert flashes(client.get(f"/admin/c/kem/signatures/{held.id}")) == [
        "Details corrected: Country.",
        f"It no longer resembles #{first.id} (name and country): the possible-duplicate flag "
        "between them is removed.",
    ]
    assert "Nothing to decide" in client.get("/admin/c/kem/duplicates").get_data(as_text=True)
    entry = _edits(store)[-1]
    assert json.loads(entry.before) == {
        "country_code": "FR",
        "duplicate_of_id": first.id,
        "duplicate_state": "held",
        "status": "held",
        "counted": False,
    }
    _no_drift(store, campaign)


def test_a_signature_judged_distinct_keeps_that_decision_while_it_still_resembles(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    other = make_signature(store, campaign, "Ann Lee", "ann@other.example", duplicate_of=first)
    client.post(f"/admin/c/kem/duplicates/{other.id}", data={"keep": "both"})
    # Another earlier Ann Lee in Kenya, and this one's country corrected to Kenya: she is
    # held against that one; the decision about the first no longer applies.
    kenyan = make_signature(store, campaign, "Ann Lee", "ann@kenya.example", country="KE")
    _post(client, other, party="Labour")
    assert reload(store, other).duplicate_state == "distinct"
    _post(client, other, party="Labour", country="KE")
    moved = reload(store, other)
    assert (moved.status, moved.duplicate_of_id, moved.duplicate_state) == (
        "held",
        kenyan.id,
        "held",
    )
    _no_drift(store, campaign)


def test_signatures_held_against_a_corrected_one_stay_held(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    held = make_signature(store, campaign, "Ann Lee", "ann@other.example", duplicate_of=first)
    _post(client, first, country="KE")
    assert reload(store, first).status == "confirmed"
    assert (reload(store, held).status, reload(store, held).duplicate_of_id) == ("held", first.id)
    assert flashes(client.get(f"/admin/c/kem/signatures/{first.id}")) == [
        "Details corrected: Country.",
        f"Held as resembling this signature, though they no longer do: #{held.id}. They stay "
        "held until you decide on the duplicates page.",
    ]
    # Correcting it back makes no second flag: the pair already has one.
    _post(client, first, country="FR")
    assert reload(store, first).duplicate_of_id is None
    assert reload(store, first).status == "confirmed"
    _no_drift(store, campaign)


def test_a_hold_from_the_suspicious_activity_page_stays(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    burst = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    # Held with others of a burst, as the suspicious activity page holds them: no other.
    locked = tally.lock(store, burst.id)
    assert locked is not None
    locked.duplicate_state = "held"
    tally.refresh(store, locked)
    store.commit()
    assert reload(store, burst).status == "held"
    _post(client, burst, name="Ann Leigh", country="KE")
    kept = reload(store, burst)
    assert (kept.name, kept.status, kept.duplicate_state) == ("Ann Leigh", "held", "held")
    _no_drift(store, campaign)


# --- what cannot be done ---------------------------------------------------------


def test_an_erased_signature_cannot_be_corrected(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    client.post(
        f"/admin/c/kem/signatures/{signature.id}", data={"action": "erase", "confirm_erase": "y"}
    )
    page = client.get(f"/admin/c/kem/signatures/{signature.id}").get_data(as_text=True)
    assert "Edit details" not in page
    response = client.post(
        f"/admin/c/kem/signatures/{signature.id}/details",
        data={"name": "Ann Lee", "title": "MP", "parliament": "P", "party": "", "country": "FR"},
    )
    assert response.status_code == 303
    assert flashes(client.get(f"/admin/c/kem/signatures/{signature.id}")) == [
        "Nothing changed: it was erased."
    ]
    assert reload(store, signature).name == ""
    assert _edits(store) == []


def test_erasure_blanks_the_names_in_earlier_corrections(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Jon Smiht", "jon@parl.example")
    _post(client, signature, name="Jon Smith", country="KE")
    client.post(
        f"/admin/c/kem/signatures/{signature.id}", data={"action": "erase", "confirm_erase": "y"}
    )
    [entry] = _edits(store)
    assert json.loads(entry.before) == {"name": "[erased]", "country_code": "FR"}
    assert json.loads(entry.after) == {"name": "[erased]", "country_code": "KE"}


def test_unlisting_is_its_own_action_and_listing_is_refused(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    listed = make_signature(store, campaign, "Ann Lee", "ann@parl.example", public=True)
    unlisted = make_signature(store, campaign, "Bo Chan", "bo@parl.example", public=False)
    url = f"/admin/c/kem/signatures/{listed.id}"
    assert "Take off the public list" in client.get(url).get_data(as_text=True)
    assert _listed(store, campaign) == {"FR": 1}
    assert client.post(url, data={"action": "unlist"}).status_code == 303
    assert flashes(client.get(url)) == ["Taken off the public list: 1."]
    off = reload(store, listed)
    assert (off.public, off.status, off.counted) == (False, "confirmed", True)
    assert _listed(store, campaign) == {}
    assert "Ann Lee" not in client.get("/c/kem/signatories").get_data(as_text=True)
    [entry] = store.scalars(select(AuditEntry).where(AuditEntry.action == "signature.unlist"))
    assert (json.loads(entry.before), json.loads(entry.after)) == (
        {"public": True},
        {"public": False},
    )
    # Nothing puts a signer on the list: no such action, and the button is gone.
    assert "Take off the public list" not in client.get(url).get_data(as_text=True)
    client.post(url, data={"action": "unlist"})
    assert flashes(client.get(url)) == ["Skipped 1: it is not on the public list."]
    other = f"/admin/c/kem/signatures/{unlisted.id}"
    client.post(other, data={"action": "list"})
    assert flashes(client.get(other)) == ["Not a valid choice."]
    assert reload(store, unlisted).public is False
    assert reload(store, listed).public is False
    _no_drift(store, campaign)


# --- who may -----------------------------------------------------------------------


def test_another_campaigns_organizer_gets_404_and_changes_nothing(
    client: FlaskClient, auth: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example", public=True)
    elsewhere = make_campaign(store, "other")
    make_organizer(store, "bob@example.org", campaigns=(elsewhere,))
    auth.login("bob@example.org")
    data = _details(signature, name="Someone Else", country="KE")
    for url in (
        f"/admin/c/kem/signatures/{signature.id}/details",
        f"/admin/c/other/signatures/{signature.id}/details",
    ):
        assert client.post(url, data=data).status_code == 404
        assert client.get(url).status_code == 404
    assert (
        client.post(
            f"/admin/c/kem/signatures/{signature.id}", data={"action": "unlist"}
        ).status_code
        == 404
    )
    kept = reload(store, signature)
    assert (kept.name, kept.country_code, kept.public) == ("Ann Lee", "FR", True)
    assert changes_audited(store) == []


def test_anonymous_visitors_are_sent_to_log_in(
    client: FlaskClient, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    response = client.post(
        f"/admin/c/kem/signatures/{signature.id}/details", data=_details(signature, name="X Y")
    )
    assert response.status_code in (302, 303)
    assert reload(store, signature).name == "Ann Lee"


def test_each_of_two_corrections_is_audited_the_last_one_stands(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    signature = make_signature(store, campaign, "Jon Smiht", "jon@parl.example")
    stale = _details(signature)
    # Two organizers with the page open: each posts the form as it was filled.
    client.post(
        f"/admin/c/kem/signatures/{signature.id}/details", data=stale | {"name": "Jon Smith"}
    )
    client.post(
        f"/admin/c/kem/signatures/{signature.id}/details", data=stale | {"name": "John Smith"}
    )
    assert reload(store, signature).name == "John Smith"
    first, second = _edits(store)
    assert (json.loads(first.before), json.loads(first.after)) == (
        {"name": "Jon Smiht"},
        {"name": "Jon Smith"},
    )
    assert (json.loads(second.before), json.loads(second.after)) == (
        {"name": "Jon Smith"},
        {"name": "John Smith"},
    )


def test_the_service_refuses_an_erased_or_missing_signature(
    store: Session, campaign: Campaign
) -> None:
    organizer = store.scalar(select(Organizer).where(Organizer.email == "alice@example.org"))
    assert organizer is not None
    signature = make_signature(store, campaign, "Ann Lee", "ann@parl.example")
    review.erase(store, organizer, signature)
    store.commit()
    details = review.Details("Ann Lee", "MP", "P", "", "FR")
    with pytest.raises(review.ReviewError) as refused:
        review.edit(store, organizer, signature, details)
    assert refused.value.code == "erased"


def test_corrections_racing_signers_keep_the_counters_exact(app_factory: Any, backend: str) -> None:
    """Organizers correct one signature's country and name while namesakes sign, at once."""
    app: Flask = app_factory(backend)
    with session_scope(app) as db:
        made = make_campaign(db, "race")
        organizer = make_organizer(db, "o@example.org", campaigns=(made,))
        target = make_signature(db, made, "Ann Lee", "ann@parl.example", public=True)
        campaign_id, organizer_id, target_id = made.id, organizer.id, target.id
    countries = ["KE", "BR", "NZ", "CA", "KE", "BR"]
    barrier = threading.Barrier(len(countries) * 2)
    errors: list[BaseException] = []

    def correct(country: str) -> None:
        barrier.wait()
        try:
            with session_scope(app) as db:
                who = db.get(Organizer, organizer_id)
                found = db.get(Signature, target_id)
                assert who is not None and found is not None
                review.edit(db, who, found, review.Details("Ann Lee", "MP", "P", "", country))
        except BaseException as error:  # reported below
            errors.append(error)

    def sign(n: int, country: str) -> None:
        barrier.wait()
        try:
            with session_scope(app) as db:
                campaign = db.get(Campaign, campaign_id)
                assert campaign is not None
                entry = signing.SignatureEntry(
                    "Ann Lee", "MP", "P", "", country, f"ann{n}@example.org", public=True
                )
                signing.sign(db, campaign, entry, confirmed=True)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=correct, args=(c,)) for c in countries]
    threads += [threading.Thread(target=sign, args=(n, c)) for n, c in enumerate(countries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(app) as db:
        campaign = db.get(Campaign, campaign_id)
        assert campaign is not None
        assert tally.recount(db, campaign) == {}
        edits = db.scalars(select(AuditEntry).where(AuditEntry.action == "signature.edit")).all()
        # Each correction that changed something is audited; none is lost.
        assert 1 <= len(edits) <= len(countries)
        # No two Ann Lees count in one country: every later namesake is held for a decision
        # (one held against a signature that has since moved away stays held).
        rows = db.execute(
            select(Signature.id, Signature.country_code, Signature.status).where(
                Signature.campaign_id == campaign_id
            )
        ).all()
        for country in {c for _, c, _ in rows}:
            here = sorted((sid, status) for sid, c, status in rows if c == country)
            counted = [sid for sid, status in here if status == "confirmed"]
            assert len(counted) <= 1, (country, here)
