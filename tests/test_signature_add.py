"""An organizer adds one signature by hand: outcomes, counters, mail, audit, checks, access."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from admin_helpers import (
    AuthActions,
    app_client,
    auth,
    campaign,
    csrf_token,
    flashes,
    logged_in,
    make_campaign,
    make_organizer,
    make_signature,
    store,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaign import mail
from campaign.db import new_session
from campaign.models import AuditEntry, Campaign, Organizer, OutboxMessage, Signature

__all__ = ["auth", "campaign", "logged_in", "store"]

NEW = "/admin/c/kem/signatures/new"


def _form(**changes: Any) -> dict[str, Any]:
    """A valid entry, as the organizer types it; changes override or (None) remove fields."""
    data: dict[str, Any] = {
        "name": "Ana Lopez",
        "title": "MP",
        "parliament": "Congreso de los Diputados",
        "party": "Verdes",
        "country": "ES",
        "email": "Ana.Lopez@Congreso.example",
        "comment": "Signed on paper at the Geneva conference.",
        "public": "y",
        "mode": "count_now",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def _tally(client: FlaskClient, slug: str = "kem") -> dict[str, Any]:
    response = client.get(f"/c/{slug}/tally.json")
    assert response.status_code == 200
    data: dict[str, Any] = json.loads(response.data)
    return data


def _signatures(store: Session) -> list[Signature]:
    store.expire_all()
    return list(store.scalars(select(Signature).order_by(Signature.id)))


def _audit(store: Session) -> list[AuditEntry]:
    store.expire_all()
    return list(
        store.scalars(
            select(AuditEntry).where(AuditEntry.action == "signature.add").order_by(AuditEntry.id)
        )
    )


def _outbox(store: Session) -> list[tuple[str, str, int | None]]:
    store.expire_all()
    return [
        tuple(row)  # type: ignore[misc]
        for row in store.execute(
            select(OutboxMessage.kind, OutboxMessage.to_addr, OutboxMessage.signature_id).order_by(
                OutboxMessage.id
            )
        )
    ]


def _alice(store: Session) -> Organizer:
    found = store.scalar(select(Organizer).where(Organizer.email == "alice@example.org"))
    assert found is not None
    return found


def _added(response: Any, store: Session) -> Signature:
    """The one new signature a POST made, after checking it redirected to its page."""
    assert response.status_code == 303
    [signature] = [s for s in _signatures(store) if s.source == "import"]
    assert response.headers["Location"].endswith(f"/admin/c/kem/signatures/{signature.id}")
    return signature


# --- the page ------------------------------------------------------------------


def test_the_form_is_linked_from_the_list_and_the_import_page(
    client: FlaskClient, logged_in: AuthActions
) -> None:
    for page in ("/admin/c/kem/signatures", "/admin/c/kem/import"):
        assert f'href="{NEW}"' in client.get(page).get_data(as_text=True)
    response = client.get(NEW)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Add a signature</h1>" in html
    for name in ("name", "title", "parliament", "party", "country", "email", "comment", "public"):
        assert f'name="{name}"' in html
    assert 'value="count_now"' in html and 'value="confirmation"' in html
    # Someone else's address: the browser must not fill in the organizer's own.
    assert re.search(r'<input[^>]*autocomplete="off"[^>]*name="email"', html) or re.search(
        r'<input[^>]*name="email"[^>]*autocomplete="off"', html
    )


# --- outcomes ------------------------------------------------------------------


def test_counts_now_adds_a_counted_signature_audited_with_its_organizer(
    client: FlaskClient, logged_in: AuthActions, store: Session
) -> None:
    assert _tally(client)["signatures"] == 0
    response = client.post(NEW, data=_form())
    signature = _added(response, store)
    assert (signature.status, signature.counted) == ("confirmed", True)
    assert signature.confirmed_at is not None
    assert (signature.name, signature.country_code, signature.email) == (
        "Ana Lopez",
        "ES",
        "Ana.Lopez@congreso.example",
    )
    assert (signature.source, signature.locale, signature.client_hash) == ("import", "en", None)
    assert signature.public is True
    assert signature.comment == "Signed on paper at the Geneva conference."
    counts = _tally(client)
    assert (counts["signatures"], counts["countries"], counts["continents"]) == (1, 1, 1)
    assert counts["by_country"][0]["code"] == "ES"
    assert _outbox(store) == []
    [entry] = _audit(store)
    assert entry.organizer_id == _alice(store).id
    assert (entry.campaign_id, entry.signature_id) == (signature.campaign_id, signature.id)
    after = json.loads(entry.after)
    assert after["mode"] == "count_now"
    assert (after["status"], after["counted"], after["email"]) == (
        "confirmed",
        True,
        "Ana.Lopez@congreso.example",
    )
    page = client.get(response.headers["Location"])
    assert f"Signature #{signature.id} added. It counts now." in flashes(page)
    assert "signature.add" in page.get_data(as_text=True)  # in the signature's history


def test_the_confirmation_mode_queues_the_mail_and_counts_nothing_yet(
    client: FlaskClient, logged_in: AuthActions, store: Session
) -> None:
    response = client.post(NEW, data=_form(mode="confirmation"))
    signature = _added(response, store)
    assert (signature.status, signature.counted, signature.confirmed_at) == (
        "pending",
        False,
        None,
    )
    assert _tally(client)["signatures"] == 0
    assert _outbox(store) == [("confirm", "Ana.Lopez@congreso.example", signature.id)]
    [entry] = _audit(store)
    assert json.loads(entry.after)["mode"] == "confirmation_mail"
    shown = flashes(client.get(response.headers["Location"]))
    assert f"Signature #{signature.id} added." in shown
    assert any(
        m.startswith("A confirmation mail is queued to Ana.Lopez@congreso.example") for m in shown
    )


def test_a_letter_without_confirmation_counts_it_now_and_mails_nothing(
    client: FlaskClient, store: Session, auth: AuthActions
) -> None:
    made = make_campaign(store, "kem", require_confirmation=False)
    make_organizer(store, "alice@example.org", campaigns=(made,))
    auth.login("alice@example.org")
    html = client.get(NEW).get_data(as_text=True)
    assert 'value="confirmation"' not in html
    assert "the signature counts at once, and no mail is sent" in html
    # Even a forged choice of the confirmation mail: nothing to confirm on this letter.
    response = client.post(NEW, data=_form(mode="confirmation"))
    signature = _added(response, store)
    assert (signature.status, signature.counted) == ("confirmed", True)
    assert _tally(client)["signatures"] == 1
    assert _outbox(store) == []  # no receipt: the organizer checked it with the signer
    [entry] = _audit(store)
    assert json.loads(entry.after)["mode"] == "count_now"


def test_a_namesake_of_the_same_country_is_held_as_a_possible_duplicate(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ana Lopez", "ana@partido.example", country="ES")
    assert _tally(client)["signatures"] == 1
    response = client.post(NEW, data=_form(name="Hon. Ana López"))
    signature = _added(response, store)
    assert (signature.status, signature.counted) == ("held", False)
    assert (signature.duplicate_of_id, signature.duplicate_state) == (first.id, "held")
    assert _tally(client)["signatures"] == 1
    [entry] = _audit(store)
    assert json.loads(entry.after)["duplicate_of_id"] == first.id
    page = client.get(response.headers["Location"])
    assert (
        f"Signature #{signature.id} added. It resembles #{first.id} (same name and country): "
        "it is held as a possible duplicate and does not count until you decide on the "
        "duplicates page."
    ) in flashes(page)
    html = page.get_data(as_text=True)
    assert f'href="/admin/c/kem/signatures/{first.id}"' in html
    assert f'href="/admin/c/kem/duplicates#dup-{signature.id}"' in html


def test_an_address_that_already_signed_adds_nothing_and_links_to_its_signature(
    client: FlaskClient, logged_in: AuthActions, store: Session, campaign: Campaign
) -> None:
    first = make_signature(store, campaign, "Ana Lopez", "ana.lopez@congreso.example")
    before = _tally(client)
    response = client.post(NEW, data=_form(name="Someone Else", country="DE"))
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/c/kem/signatures/{first.id}")
    assert [s.id for s in _signatures(store)] == [first.id]
    assert _signatures(store)[0].duplicate_notices == 0
    assert _tally(client) == before
    assert _outbox(store) == []  # no "already signed" notice: the organizer is told instead
    assert _audit(store) == []
    assert (
        f"This address already signed this letter: signature #{first.id} (confirmed). "
        "Nothing was added."
    ) in flashes(client.get(response.headers["Location"]))


@pytest.mark.parametrize("state", ["closed", "draft"])
def test_a_closed_or_draft_letter_takes_late_signatures(
    client: FlaskClient, store: Session, auth: AuthActions, state: str
) -> None:
    made = make_campaign(store, "kem", state=state)
    make_organizer(store, "alice@example.org", campaigns=(made,))
    auth.login("alice@example.org")
    note = {
        "closed": "This letter is closed. A signature added here still counts",
        "draft": "This letter is a draft. A signature added here counts, and shows",
    }
    assert note[state] in client.get(NEW).get_data(as_text=True)
    signature = _added(client.post(NEW, data=_form()), store)
    assert (signature.status, signature.counted) == ("confirmed", True)
    assert len(_audit(store)) == 1


# --- the signer's language -------------------------------------------------------


def _subjects(app: Flask) -> list[str]:
    """The subject of every queued mail, as the sender composes it."""
    with app.app_context(), new_session(app) as db:
        rows = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [mail.compose(db, row).subject for row in rows]


def test_the_countries_are_named_and_sorted_in_the_organizers_language(
    client: FlaskClient, logged_in: AuthActions
) -> None:
    html = client.get(f"{NEW}?lang=fr").get_data(as_text=True)
    picker = re.search(r'<select[^>]*name="country"[^>]*>(.*?)</select>', html, re.S)
    assert picker is not None
    names = re.findall(r"<option[^>]*>([^<]+)</option>", picker.group(1))
    assert names[0] == "Choisissez un pays"
    assert '<option data-continent="Europe" value="DE">Allemagne</option>' in picker.group(1)
    assert "Antigua-et-Barbuda" in names and "Germany" not in names
    assert names.index("Afrique du Sud") < names.index("Allemagne") < names.index("Zimbabwe")


def test_the_language_picker_offers_the_projects_languages_the_organizers_first(
    client: FlaskClient, logged_in: AuthActions
) -> None:
    html = client.get(f"{NEW}?lang=es").get_data(as_text=True)
    picker = re.search(r'<select[^>]*name="locale"[^>]*>(.*?)</select>', html, re.S)
    assert picker is not None
    options = re.findall(r'<option([^>]*)value="([^"]+)"[^>]*>([^<]+)</option>', picker.group(1))
    assert [(code, name) for _attrs, code, name in options] == [
        ("en", "English"),
        ("id", "Bahasa Indonesia"),  # as the language switcher names them
        ("fr", "Français"),
        ("es", "Español"),
    ]
    assert [code for attrs, code, _name in options if "selected" in attrs] == ["es"]


def test_the_chosen_language_is_the_signers_and_their_confirmation_is_in_it(
    app: Flask, client: FlaskClient, logged_in: AuthActions, store: Session
) -> None:
    response = client.post(NEW, data=_form(mode="confirmation", locale="fr"))
    signature = _added(response, store)
    assert signature.locale == "fr"
    assert _subjects(app) == ["Merci de confirmer votre signature : Letter kem"]


def test_without_a_choice_the_signer_gets_the_organizers_language(
    app: Flask, client: FlaskClient, logged_in: AuthActions, store: Session
) -> None:
    response = client.post(f"{NEW}?lang=es", data=_form(mode="confirmation"))
    assert _added(response, store).locale == "es"
    assert _subjects(app) == ["Confirme su firma: Letter kem"]


# --- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "  "}, "Full name: This field is required."),
        ({"name": "\u200b\u2060"}, "Full name: This field is required."),
        ({"name": "Ana\u202eLopez"}, "Full name: Remove the invisible text direction characters."),
        ({"email": "not an address"}, "Email address: Enter a valid email address"),
        ({"country": "XX"}, "Country: Choose a country from the list."),
        ({"title": None}, "Title: This field is required."),
        ({"name": "Ana www.spam.example"}, "Full name: Remove the link."),
        ({"comment": "x" * 1001}, "Comment (optional): Use at most 1000 characters."),
        ({"mode": "sideways"}, "The signature: Not a valid choice."),
        ({"locale": "de"}, "Language of the confirmation mail: Not a valid choice."),
        ({"locale": ""}, "Language of the confirmation mail: Not a valid choice."),
    ],
)
def test_bad_input_shows_the_form_again_and_stores_nothing(
    client: FlaskClient,
    logged_in: AuthActions,
    store: Session,
    changes: dict[str, Any],
    message: str,
) -> None:
    response = client.post(NEW, data=_form(**changes))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="error-summary"' in html
    assert message in re.sub(r"<[^>]+>", "", html)
    assert "Congreso de los Diputados" in html  # what was typed is kept
    assert _signatures(store) == []
    assert _audit(store) == []
    assert _outbox(store) == []


# --- access -----------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login(
    client: FlaskClient, store: Session, campaign: Campaign
) -> None:
    assert client.get(NEW).status_code in (302, 303)
    response = client.post(NEW, data=_form())
    assert response.status_code in (302, 303)
    assert "/admin/login" in response.headers["Location"]
    assert _signatures(store) == []


def test_another_campaigns_organizer_gets_404(
    client: FlaskClient, store: Session, campaign: Campaign, auth: AuthActions
) -> None:
    other = make_campaign(store, "other")
    make_organizer(store, "bob@example.org", campaigns=(other,))
    auth.login("bob@example.org")
    assert client.get(NEW).status_code == 404
    assert client.post(NEW, data=_form()).status_code == 404
    assert _signatures(store) == []
    assert _audit(store) == []
    assert client.get("/admin/c/other/signatures/new").status_code == 200


def test_a_post_needs_its_csrf_token(app_factory: Any, store: Session) -> None:
    app: Flask = app_factory(WTF_CSRF_ENABLED=True)
    made = make_campaign(store, "kem")
    make_organizer(store, "alice@example.org", campaigns=(made,))
    client, helper = app_client(app)
    assert helper.login("alice@example.org").status_code == 303
    response = client.post(NEW, data=_form())
    assert response.status_code == 400
    assert _signatures(store) == []
    token = csrf_token(client, NEW)
    assert _added(client.post(NEW, data=_form(csrf_token=token)), store).status == "confirmed"


# --- both databases ------------------------------------------------------------


def test_each_outcome_on_each_backend(app_factory: Any, backend: str) -> None:
    app: Flask = app_factory(backend)
    from campaign.db import session_scope

    with session_scope(app) as db:
        made = make_campaign(db, "kem")
        make_organizer(db, "alice@example.org", campaigns=(made,))
        first_id = make_signature(db, made, "Ana Lopez", "ana@partido.example", country="ES").id
    client, helper = app_client(app)
    helper.login("alice@example.org")
    added = client.post(NEW, data=_form(name="Ben Okafor", email="ben@parl.example", country="NG"))
    held = client.post(NEW, data=_form(mode="confirmation"))
    again = client.post(NEW, data=_form(email="BEN@parl.example"))
    assert [r.status_code for r in (added, held, again)] == [303, 303, 303]
    assert again.headers["Location"] == added.headers["Location"]
    with session_scope(app) as db:
        rows = db.execute(
            select(Signature.name, Signature.status, Signature.duplicate_of_id).order_by(
                Signature.id
            )
        ).all()
        assert [tuple(row) for row in rows] == [
            ("Ana Lopez", "confirmed", None),
            ("Ben Okafor", "confirmed", None),
            ("Ana Lopez", "held", first_id),
        ]
        assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert (
            db.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "signature.add")
            )
            == 2
        )
    counts = _tally(client)
    assert (counts["signatures"], counts["countries"], counts["continents"]) == (2, 2, 2)


def test_erasing_an_added_signature_blanks_its_details_in_the_add_record(
    client: FlaskClient, logged_in: AuthActions, store: Session
) -> None:
    signature = _added(client.post(NEW, data=_form()), store)
    url = f"/admin/c/kem/signatures/{signature.id}"
    assert client.post(url, data={"action": "erase", "confirm_erase": "y"}).status_code == 303
    [entry] = _audit(store)
    after = json.loads(entry.after)
    kept = {key: after[key] for key in ("name", "title", "parliament", "party", "email")}
    assert kept == dict.fromkeys(kept, "[erased]")
    assert "Ana" not in entry.after and "congreso" not in entry.after.casefold()
