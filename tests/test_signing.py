"""Signing: keys, validation rules, duplicates, confirmation, withdrawal, tokens."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaign import campaigns, signing, tally
from campaign.db import new_session
from campaign.models import Campaign, Signature
from campaign.signing import (
    BadToken,
    ExpiredToken,
    InvalidEntry,
    SignatureEntry,
    email_key,
    name_key,
    validate_entry,
)

GOOD: dict[str, Any] = {
    "name": "Hon. Maria Santos",
    "title": "MP",
    "parliament": "House of Representatives",
    "party": "Independent",
    "country": "PH",
    "email": "maria.santos@example.org",
    "comment": "For justice.",
    "public": True,
}


def entry(**changes: Any) -> SignatureEntry:
    """A valid entry with some fields changed."""
    return validate_entry({**GOOD, **changes})


def make_campaign(db: Session, **changes: Any) -> Campaign:
    """An open campaign requiring confirmation, flushed."""
    values: dict[str, Any] = {"slug": "free-them", "title": "Free them", "state": "open"}
    values.update(changes)
    return campaigns.create_campaign(db, **values)


# --------------------------------------------------------------------------- email_key


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("Maria@Example.org", "maria@example.org"),
        ("MARIA@EXAMPLE.ORG", "maria@example.org"),
        ("maria+campaign@example.org", "maria@example.org"),
        ("maria+a+b@example.org", "maria@example.org"),
        ("m.a.ria@example.org", "m.a.ria@example.org"),
        ("m.a.ria@gmail.com", "maria@gmail.com"),
        ("M.A.Ria+x@GMail.com", "maria@gmail.com"),
        ("maria@googlemail.com", "maria@gmail.com"),
        ("ma.ria+tag@googlemail.com", "maria@gmail.com"),
        ("  maria@example.org  ", "maria@example.org"),
        ("Straße@example.de", "strasse@example.de"),
    ],
)
def test_email_key_names_one_mailbox(address: str, key: str) -> None:
    assert email_key(address) == key


def test_email_key_keeps_distinct_mailboxes_apart() -> None:
    assert email_key("maria@example.org") != email_key("maria@example.com")
    assert email_key("m.aria@example.org") != email_key("maria@example.org")
    assert email_key("maria1@gmail.com") != email_key("maria@gmail.com")


# --------------------------------------------------------------------------- name_key


@pytest.mark.parametrize(
    "spelling",
    [
        "Maria Santos",
        "maria santos",
        "MARIA SANTOS",
        "Santos Maria",
        "Santos, Maria",
        "  Maria   Santos ",
        "Hon. Maria Santos",
        "The Honourable Maria Santos",
        "Dr Maria Santos",
        "Dr. Maria Santos MP",
        "Sen. Maria Santos",
        "Senator Maria Santos",
        "Mrs Maria Santos",
        "Prof. Dr. Maria Santos",
        "María Santos",
        "MARÍA SÁNTOS",
        "Maria Santos, MP",
        "YB Maria Santos",
        "Datuk Maria Santos",
        "Dato' Maria Santos",
        "Dato\u2019 Sri Maria Santos",
        "Tan Sri Maria Santos",
        "Yang Berhormat Maria Santos",
        "Rt Hon Maria Santos",
        "H.E. Maria Santos",
        "\uff2d\uff41\uff52\uff49\uff41 \uff33\uff41\uff4e\uff54\uff4f\uff53",  # fullwidth
    ],
)
def test_name_key_ignores_case_accents_punctuation_and_honorifics(spelling: str) -> None:
    assert name_key(spelling) == "maria santos"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Sean O'Brien", "Sean OBrien"),
        ("Jean-Pierre Dupont", "Jean Pierre Dupont"),
        ("Kem Sokha", "KEM Sokha"),
        ("Zoë Müller", "Zoe Muller"),
    ],
)
def test_name_key_matches_spelling_variants(one: str, other: str) -> None:
    assert name_key(one) == name_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Maria Santos", "Mario Santos"),
        ("Tan Chee Keong", "Chee Keong"),  # Tan is a surname unless it is "Tan Sri"
        ("Amartya Sen", "Amartya"),  # Sen is a surname after the name begins
        ("Maria Santos", "Maria Santos Cruz"),
    ],
)
def test_name_key_keeps_different_people_apart(one: str, other: str) -> None:
    assert name_key(one) != name_key(other)


def test_name_key_of_only_a_title_is_not_empty() -> None:
    assert name_key("Dr") == "dr"


def test_name_key_fits_its_column() -> None:
    assert len(name_key("\ufb03" * 200)) <= 200


# --------------------------------------------------------------------------- validation


def test_validate_entry_cleans_a_good_entry() -> None:
    result = validate_entry({**GOOD, "name": "  Maria Santos  ", "country": "ph"})
    assert result == SignatureEntry(
        name="Maria Santos",
        title="MP",
        parliament="House of Representatives",
        party="Independent",
        country_code="PH",
        email="maria.santos@example.org",
        comment="For justice.",
        public=True,
    )


def test_validate_entry_normalizes_the_email() -> None:
    assert entry(email="Maria@EXAMPLE.org").email == "Maria@example.org"


def test_party_and_comment_are_optional() -> None:
    result = validate_entry({**GOOD, "party": None, "comment": "", "public": None})
    assert (result.party, result.comment, result.public) == ("", "", False)


BAD = [
    ("name", "", "This field is required."),
    ("name", "   ", "This field is required."),
    ("name", None, "This field is required."),
    ("name", "x" * 201, "Use at most 200 characters."),
    ("name", "Maria http://spam.example", "Remove the link."),
    ("name", "Maria https://spam.example", "Remove the link."),
    ("name", "Maria www.spam", "Remove the link."),
    ("name", "Maria cheap-pills.com", "Remove the link."),
    ("name", "Maria\x00Santos", "Remove the control characters."),
    ("name", "Maria\x07Santos", "Remove the control characters."),
    ("name", "Maria\nSantos", "Remove the control characters."),
    ("name", "Maria\x1fSantos", "Remove the control characters."),
    ("name", "Maria \x85Santos", "Remove the control characters."),
    ("name", "Maria\u2028Santos", "Remove the control characters."),
    ("name", "Mar\ufffdia", "This is not valid text (UTF-8)."),
    ("title", "", "This field is required."),
    ("title", "x" * 101, "Use at most 100 characters."),
    ("parliament", "", "This field is required."),
    ("parliament", "x" * 201, "Use at most 200 characters."),
    ("party", "x" * 201, "Use at most 200 characters."),
    ("party", "vote at party.org", "Remove the link."),
    ("country", "", "Choose a country."),
    ("country", "XX", "Choose a country from the list."),
    ("country", "PHL", "Choose a country from the list."),
    ("country", "EU", "Choose a country from the list."),
    ("email", "", "Enter your email address."),
    ("email", "not-an-address", "Enter a valid email address, like name@example.org."),
    ("email", "maria@", "Enter a valid email address, like name@example.org."),
    ("email", "@example.org", "Enter a valid email address, like name@example.org."),
    ("email", "maria@localhost", "Enter a valid email address, like name@example.org."),
    ("email", "maria @example.org", "Enter a valid email address, like name@example.org."),
    ("email", "maria@example..org", "Enter a valid email address, like name@example.org."),
    (
        "email",
        "a" * 64 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 64 + ".org",
        "Use at most 254 characters.",
    ),
    ("email", "maria\x00@example.org", "Remove the control characters."),
    ("comment", "x" * 1001, "Use at most 1000 characters."),
    ("comment", "bad\x00comment", "Remove the control characters."),
    ("comment", "bad \ufffd", "This is not valid text (UTF-8)."),
    ("public", "maybe", "Use yes or no."),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_validate_entry_refuses_bad_values(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidEntry) as caught:
        validate_entry({**GOOD, field: value})
    assert caught.value.errors == {field: message}


def test_validate_entry_reports_every_bad_field() -> None:
    with pytest.raises(InvalidEntry) as caught:
        validate_entry({"name": "", "email": "nope", "country": "ZZ"})
    assert set(caught.value.errors) == {"name", "title", "parliament", "email", "country"}


def test_the_email_limit_is_254_characters() -> None:
    address = "a" * 64 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 63 + ".org"
    assert len(address) == 254
    assert validate_entry({**GOOD, "email": address}).email == address


def test_comments_keep_newlines_and_tabs() -> None:
    assert entry(comment="One\r\n\tTwo").comment == "One\n\tTwo"


def test_a_1000_character_comment_and_200_character_name_pass() -> None:
    result = entry(comment="c" * 1000, name="n" * 200)
    assert (len(result.comment), len(result.name)) == (1000, 200)


@pytest.mark.parametrize("word", ["yes", "TRUE", "1", "on"])
def test_public_accepts_yes_words(word: str) -> None:
    assert entry(public=word).public is True


@pytest.mark.parametrize("word", ["no", "false", "0", ""])
def test_public_accepts_no_words(word: str) -> None:
    assert entry(public=word).public is False


# --------------------------------------------------------------------------- tokens and hash


def test_token_round_trip() -> None:
    token = signing.make_token("secret", 42, "confirm")
    assert signing.read_token("secret", token, "confirm", max_age=60) == 42


def test_token_of_another_purpose_is_bad() -> None:
    token = signing.make_token("secret", 42, "withdraw")
    with pytest.raises(BadToken):
        signing.read_token("secret", token, "confirm", max_age=60)


def test_token_signed_with_another_key_is_bad() -> None:
    token = signing.make_token("other", 42, "confirm")
    with pytest.raises(BadToken) as caught:
        signing.read_token("secret", token, "confirm", max_age=60)
    assert not isinstance(caught.value, ExpiredToken)


@pytest.mark.parametrize("token", ["", "garbage", "42", "a.b.c"])
def test_garbage_token_is_bad(token: str) -> None:
    with pytest.raises(BadToken):
        signing.read_token("secret", token, "confirm", max_age=60)


def test_old_token_is_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    token = signing.make_token("secret", 42, "confirm")
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(ExpiredToken):
        signing.read_token("secret", token, "confirm", max_age=60)


def test_client_hash_is_keyed_and_hides_the_address() -> None:
    one = signing.client_hash("k1", "203.0.113.9")
    assert one is not None and len(one) == 64 and "203" not in one
    assert one == signing.client_hash("k1", "203.0.113.9")
    assert one != signing.client_hash("k2", "203.0.113.9")
    assert signing.client_hash("k1", None) is None


# --------------------------------------------------------------------------- sign


def count_rows(db: Session, campaign: Campaign) -> int:
    """Signature rows of a campaign."""
    return int(db.scalar(select(func.count()).where(Signature.campaign_id == campaign.id)) or 0)


def test_sign_stores_a_pending_signature(db: Session) -> None:
    campaign = make_campaign(db)
    outcome = signing.sign(db, campaign, dataclasses.replace(entry(), locale="fr"))
    db.commit()
    sig = outcome.signature
    assert outcome.created and not outcome.notify_existing
    assert (sig.status, sig.counted, sig.confirmed_at) == ("pending", False, None)
    assert sig.email_key == "maria.santos@example.org"
    assert sig.email_domain == "example.org"
    assert sig.name_key == "maria santos"
    assert (sig.country_code, sig.continent_code, sig.locale) == ("PH", "AS", "fr")
    assert tally.total(db, campaign) == 0


def test_sign_without_confirmation_counts_at_once(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    sig = signing.sign(db, campaign, entry()).signature
    db.commit()
    assert (sig.status, sig.counted) == ("confirmed", True)
    assert tally.total(db, campaign) == 1


def test_sign_confirmed_import_counts_at_once(db: Session) -> None:
    campaign = make_campaign(db)
    sig = signing.sign(db, campaign, entry(), confirmed=True).signature
    db.commit()
    assert sig.confirmed_at is not None and sig.counted
    assert tally.total(db, campaign) == 1


def test_same_mailbox_is_refused_and_the_existing_row_returned(db: Session) -> None:
    campaign = make_campaign(db)
    first = signing.sign(db, campaign, entry()).signature
    db.commit()
    again = signing.sign(db, campaign, entry(email="Maria.Santos+x@EXAMPLE.org", name="Other"))
    db.commit()
    assert not again.created
    assert again.signature.id == first.id
    assert again.notify_existing
    assert count_rows(db, campaign) == 1


def test_duplicate_notices_are_capped(db: Session) -> None:
    campaign = make_campaign(db)
    signing.sign(db, campaign, entry())
    db.commit()
    notices = []
    for _ in range(5):
        notices.append(signing.sign(db, campaign, entry()).notify_existing)
        db.commit()
    assert notices == [True, True, True, False, False]
    assert db.scalars(select(Signature)).one().duplicate_notices == 3


def test_notice_limit_is_a_parameter(db: Session) -> None:
    campaign = make_campaign(db)
    signing.sign(db, campaign, entry())
    assert signing.sign(db, campaign, entry(), notice_limit=0).notify_existing is False


def test_withdrawn_signer_gets_no_notice(db: Session) -> None:
    campaign = make_campaign(db)
    sig = signing.sign(db, campaign, entry()).signature
    signing.withdraw(db, sig.id)
    assert signing.sign(db, campaign, entry()).notify_existing is False


def test_same_address_may_sign_another_campaign(db: Session) -> None:
    one = make_campaign(db)
    two = make_campaign(db, slug="second")
    assert signing.sign(db, one, entry()).created
    assert signing.sign(db, two, entry()).created


def test_same_person_under_another_address_is_held(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    first = signing.sign(db, campaign, entry()).signature
    second = signing.sign(
        db, campaign, entry(name="Dr. MARÍA Santos", email="maria@parliament.example")
    ).signature
    db.commit()
    assert second.id != first.id
    assert (second.status, second.counted) == ("held", False)
    assert (second.duplicate_of_id, second.duplicate_state) == (first.id, "held")
    assert tally.total(db, campaign) == 1


def test_same_name_in_another_country_is_not_held(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    signing.sign(db, campaign, entry())
    other = signing.sign(db, campaign, entry(country="BR", email="m@example.br")).signature
    assert (other.status, other.duplicate_of_id) == ("confirmed", None)
    assert tally.total(db, campaign) == 2


def test_a_withdrawn_signer_does_not_hold_a_new_one(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    first = signing.sign(db, campaign, entry()).signature
    signing.withdraw(db, first.id)
    second = signing.sign(db, campaign, entry(email="maria@parliament.example")).signature
    assert (second.status, second.duplicate_of_id) == ("confirmed", None)


def test_confirm_counts_and_is_idempotent(db: Session) -> None:
    campaign = make_campaign(db)
    sig_id = signing.sign(db, campaign, entry()).signature.id
    db.commit()
    confirmed = signing.confirm(db, sig_id)
    db.commit()
    assert confirmed is not None and confirmed.status == "confirmed"
    first_time = confirmed.confirmed_at
    again = signing.confirm(db, sig_id)
    db.commit()
    assert again is not None and again.confirmed_at == first_time
    assert tally.total(db, campaign) == 1
    assert tally.recount(db, campaign) == {}


def test_confirming_a_held_signature_does_not_count_it(db: Session) -> None:
    campaign = make_campaign(db)
    signing.sign(db, campaign, entry())
    held = signing.sign(db, campaign, entry(email="maria@parliament.example")).signature
    confirmed = signing.confirm(db, held.id)
    assert confirmed is not None and confirmed.status == "held"
    assert tally.total(db, campaign) == 0


def test_withdraw_drops_the_count_and_is_idempotent(db: Session) -> None:
    campaign = make_campaign(db, require_confirmation=False)
    sig_id = signing.sign(db, campaign, entry()).signature.id
    db.commit()
    assert tally.total(db, campaign) == 1
    for _ in range(2):
        withdrawn = signing.withdraw(db, sig_id)
        db.commit()
        assert withdrawn is not None and withdrawn.status == "withdrawn"
    assert tally.total(db, campaign) == 0
    assert tally.recount(db, campaign) == {}


def test_confirm_and_withdraw_of_a_missing_signature_return_none(db: Session) -> None:
    assert signing.confirm(db, 999) is None
    assert signing.withdraw(db, 999) is None


def test_sign_on_each_backend(app_factory: Any, backend: str) -> None:
    app: Flask = app_factory(backend)
    with app.app_context():
        db = new_session(app)
        campaign = make_campaign(db)
        assert signing.sign(db, campaign, entry()).created
        db.commit()
        again = signing.sign(db, campaign, entry(email="MARIA.SANTOS@example.org"))
        held = signing.sign(db, campaign, entry(email="other@example.org")).signature
        db.commit()
        assert not again.created
        assert held.status == "held"
        assert count_rows(db, campaign) == 2
        db.close()
