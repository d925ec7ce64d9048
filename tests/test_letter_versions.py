"""Letter versions: what each signer signed, and no silent change of a text people signed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from alembic import command
from data_helpers import insert_old_letter, login, make_campaign, make_organizer, sign
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from campaign import imports, review
from campaign.campaigns import (
    NewVersionNeeded,
    save_translation,
    translation_shown,
    update_campaign,
)
from campaign.db import alembic_config, new_session, upgrade, utcnow
from campaign.i18n import letter_for
from campaign.models import AuditEntry, Campaign, LetterTranslation, LetterVersion, Signature

REFUSAL = (
    "1 person signed the current text. Saving makes a new version; they stay recorded as "
    "signers of version 1."
)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _versions(db: Session, campaign: Campaign) -> list[tuple[int, str, str, str]]:
    db.expire_all()
    return [
        (row.number, row.locale, row.title, row.letter)
        for row in db.scalars(
            select(LetterVersion)
            .where(LetterVersion.campaign_id == campaign.id)
            .order_by(LetterVersion.number, LetterVersion.locale)
        )
    ]


def _translate(db: Session, campaign: Campaign, locale: str, title: str, letter: str) -> None:
    db.add(LetterTranslation(campaign_id=campaign.id, locale=locale, title=title, letter=letter))
    db.commit()


# --- the rule ---------------------------------------------------------------


def test_the_page_and_the_version_marks_read_the_same_translation(app: Flask, db: Session) -> None:
    """The letter a reader sees (i18n.letter_for) and the versions compared for that reader
    (changed_versions) come from one rule: the locale's own translation before its
    language's, one stored without text never."""
    campaign = make_campaign(db, "shown")
    _translate(db, campaign, "pt", "Libertem-no", "Texto europeu.")
    _translate(db, campaign, "pt_BR", "Libertem-no já", "Texto brasileiro.")
    _translate(db, campaign, "fr", "Titre seul", "  ")
    db.refresh(campaign)
    with app.test_request_context():
        assert translation_shown(campaign, "pt_BR").locale == "pt_BR"  # type: ignore[union-attr]
        assert translation_shown(campaign, "pt_PT").locale == "pt"  # type: ignore[union-attr]
        assert translation_shown(campaign, "fr") is None
        assert letter_for(campaign, "pt_BR").title == "Libertem-no já"
        assert letter_for(campaign, "fr").title == campaign.title


def test_a_text_changed_before_anyone_signed_is_changed_in_place(any_app: Flask) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db)
    update_campaign(db, campaign, title="A better title", letter="A better letter.")
    db.commit()
    assert (campaign.letter_version, campaign.title) == (1, "A better title")
    assert _versions(db, campaign) == []
    db.close()


def test_a_text_changed_after_a_signature_keeps_every_language_as_the_signed_version(
    any_app: Flask,
) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db, title="Free him", letter="Dear minister.")
    _translate(db, campaign, "fr", "Libérez-le", "Monsieur le ministre.")
    organizer = make_organizer(db, campaigns=(campaign,))
    signer = sign(db, campaign, "Ann Lee", "ann@example.org")
    update_campaign(db, campaign, by=organizer, new_version=True, letter="Dear prime minister.")
    db.commit()
    assert campaign.letter_version == 2
    assert campaign.letter == "Dear prime minister."
    assert _versions(db, campaign) == [
        (1, "en", "Free him", "Dear minister."),
        (1, "fr", "Libérez-le", "Monsieur le ministre."),
    ]
    replaced = db.scalars(select(LetterVersion)).first()
    assert replaced is not None and replaced.replaced_by_id == organizer.id
    assert db.get(Signature, signer.id).letter_version == 1  # type: ignore[union-attr]
    db.close()


def test_a_signed_text_is_not_changed_without_agreement(any_app: Flask) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db, title="Free him")
    sign(db, campaign, "Ann Lee", "ann@example.org")
    sign(db, campaign, "Bo Chen", "bo@example.org", confirmed=False)
    with pytest.raises(NewVersionNeeded) as refused:
        update_campaign(db, campaign, title="Free them")
    assert (refused.value.version, refused.value.signers) == (1, 2)
    db.rollback()
    db.expire_all()
    assert (campaign.title, campaign.letter_version) == ("Free him", 1)
    assert _versions(db, campaign) == []
    db.close()


def test_the_same_text_saved_again_makes_no_version(app: Flask, db: Session) -> None:
    campaign = make_campaign(db, title="Free him")
    sign(db, campaign, "Ann Lee", "ann@example.org")
    update_campaign(db, campaign, title=" Free him ", letter=campaign.letter, goal=10)
    db.commit()
    assert (campaign.letter_version, campaign.goal) == (1, 10)


def test_only_erased_signatures_on_the_current_version_let_it_change_in_place(
    app: Flask, db: Session
) -> None:
    campaign = make_campaign(db)
    organizer = make_organizer(db, campaigns=(campaign,))
    signer = sign(db, campaign, "Ann Lee", "ann@example.org")
    review.erase(db, organizer, signer)
    db.commit()
    update_campaign(db, campaign, letter="Fixed a typo.")
    db.commit()
    assert (campaign.letter_version, campaign.letter) == (1, "Fixed a typo.")


def test_signers_of_an_earlier_version_do_not_hold_the_current_one(app: Flask, db: Session) -> None:
    campaign = make_campaign(db)
    sign(db, campaign, "Ann Lee", "ann@example.org")
    update_campaign(db, campaign, new_version=True, letter="Second text.")
    db.commit()
    # Nobody signed version 2 yet: fixing it makes no version 3.
    update_campaign(db, campaign, letter="Second text, fixed.")
    db.commit()
    assert campaign.letter_version == 2
    assert [number for number, *_ in _versions(db, campaign)] == [1]


def test_settings_changes_never_make_a_version(app: Flask, db: Session) -> None:
    campaign = make_campaign(db)
    sign(db, campaign, "Ann Lee", "ann@example.org")
    update_campaign(
        db,
        campaign,
        recipient="The President",
        goal=200,
        state="closed",
        require_confirmation=False,
        opens_at=utcnow(),
        closes_at=None,
        slug="renamed",
    )
    db.commit()
    assert campaign.letter_version == 1
    assert _versions(db, campaign) == []


@pytest.mark.parametrize(
    ("stored", "title", "letter"),
    [
        (None, "Libérez-le", "Monsieur le ministre."),  # added
        (("Libérez-le", "Monsieur."), "Libérez-le", "Monsieur le ministre."),  # changed
        (("Libérez-le", "Monsieur."), "", ""),  # removed
    ],
    ids=["added", "changed", "removed"],
)
def test_a_translation_change_of_a_signed_text_makes_a_version(
    any_app: Flask, stored: tuple[str, str] | None, title: str, letter: str
) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db, title="Free him", letter="Dear minister.")
    if stored is not None:
        _translate(db, campaign, "fr", *stored)
    sign(db, campaign, "Ann Lee", "ann@example.org")
    with pytest.raises(NewVersionNeeded):
        save_translation(db, campaign, "fr", title, letter)
    db.rollback()
    before, after = save_translation(db, campaign, "fr", title, letter, new_version=True)
    db.commit()
    assert before != after
    assert campaign.letter_version == 2
    kept = [(number, locale) for number, locale, *_ in _versions(db, campaign)]
    assert kept == [(1, "en")] + ([(1, "fr")] if stored else [])
    db.close()


def test_signatures_after_the_change_carry_the_new_number(any_app: Flask) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db)
    first = sign(db, campaign, "Ann Lee", "ann@example.org")
    update_campaign(db, campaign, new_version=True, title="Free them all")
    db.commit()
    second = sign(db, campaign, "Bo Chen", "bo@example.org")
    db.expire_all()
    numbers = {
        signature_id: number
        for signature_id, number in db.execute(select(Signature.id, Signature.letter_version))
    }
    assert numbers == {first.id: 1, second.id: 2}
    db.close()


def test_imported_signatures_carry_the_current_number(any_app: Flask, tmp_path: Path) -> None:
    db = new_session(any_app)
    campaign = make_campaign(db)
    sign(db, campaign, "Ann Lee", "ann@example.org")
    update_campaign(db, campaign, new_version=True, title="Free them all")
    db.commit()
    path = tmp_path / "paper.csv"
    path.write_text(
        "name,title,parliament,country_code,email\n"
        "Paper One,MP,Bundestag,DE,one@example.de\n"
        "Paper Two,Senator,Senate,US,two@example.us\n",
        encoding="utf-8",
    )
    layout = imports.check_file(str(path), max_bytes=10**6)
    report = imports.apply(db, campaign, str(path), layout, organizer=None, count_now=True)
    db.commit()
    assert report.imported == 2
    imported = db.scalars(
        select(Signature.letter_version).where(Signature.source == "import")
    ).all()
    assert imported == [2, 2]
    db.close()


# --- the edit page ----------------------------------------------------------


def _edit_form(campaign: Campaign, **changes: str) -> dict[str, str]:
    form = {
        "slug": campaign.slug,
        "title": campaign.title,
        "letter": campaign.letter,
        "recipient": campaign.recipient,
        "state": campaign.state,
        "require_confirmation": "y",
        "save": "1",
    }
    form.update(changes)
    return form


@pytest.fixture
def signed(app: Flask, client: FlaskClient) -> tuple[FlaskClient, Campaign, Signature]:
    """A letter (with a French translation) one person signed; its organizer logged in."""
    db = new_session(app)
    campaign = make_campaign(db, title="Free him", letter="Dear minister.")
    _translate(db, campaign, "fr", "Libérez-le", "Monsieur le ministre.")
    organizer = make_organizer(db, "org@example.org", campaigns=(campaign,))
    signer = sign(db, campaign, "Ann Lee", "ann@example.org", country="GB")
    db.close()
    return login(client, organizer), campaign, signer


def _stored(app: Flask, slug: str = "release") -> Campaign:
    db = new_session(app)
    found = db.scalar(select(Campaign).where(Campaign.slug == slug))
    db.close()
    assert found is not None
    return found


def test_the_edit_page_asks_before_a_signed_text_changes(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, _, _ = signed
    page = client.get("/admin/c/release/edit").get_data(as_text=True)
    assert REFUSAL in _text(page)
    assert 'name="new_version"' in page


def test_a_signed_text_change_without_the_tick_is_refused_with_the_edits_kept(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    response = client.post(
        "/admin/c/release/edit", data=_edit_form(campaign, letter="Dear prime minister.")
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert REFUSAL in _text(page)
    assert "Dear prime minister." in page  # the organizer's edit, still in the form
    stored = _stored(app)
    assert (stored.letter, stored.letter_version) == ("Dear minister.", 1)


def test_a_ticked_save_makes_a_new_version_and_audits_it(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    response = client.post(
        "/admin/c/release/edit",
        data=_edit_form(campaign, letter="Dear prime minister.", new_version="y"),
    )
    assert response.status_code == 303
    assert _stored(app).letter_version == 2
    db = new_session(app)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.update"))
    assert entry is not None
    assert json.loads(entry.before)["letter_version"] == 1
    assert json.loads(entry.after)["letter_version"] == 2
    db.close()
    page = _text(client.get("/admin/c/release/edit").get_data(as_text=True))
    # The versions: 1, replaced by the organizer, signed once; 2, current, not signed yet.
    assert "Versions of the text" in page
    assert re.search(r"Read version 1 \d{4}-\d\d-\d\d \d\d:\d\d · org@example.org 1 ", page)
    assert "Read version 2 (current) — 0" in page
    # Nobody signed version 2: no tick asked.
    assert "people signed the current text" not in page and "person signed" not in page


def test_a_settings_change_needs_no_tick(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    response = client.post("/admin/c/release/edit", data=_edit_form(campaign, goal="300"))
    assert response.status_code == 303
    stored = _stored(app)
    assert (stored.goal, stored.letter_version) == (300, 1)


def test_the_preview_works_without_the_tick(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    form = _edit_form(campaign, letter="Dear **prime** minister.")
    form.pop("save")
    form["preview"] = "1"
    response = client.post("/admin/c/release/edit", data=form)
    assert response.status_code == 200
    assert "<strong>prime</strong>" in response.get_data(as_text=True)
    assert _stored(app).letter_version == 1


def test_a_translation_change_without_the_tick_is_refused(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, _, _ = signed
    data = {"tr-fr-title": "Libérez-le", "tr-fr-letter": "Madame la ministre."}
    response = client.post("/admin/c/release/translations/fr", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert REFUSAL in _text(page)
    assert "Madame la ministre." in page
    assert _stored(app).letter_version == 1
    response = client.post(
        "/admin/c/release/translations/fr", data=data | {"tr-fr-new_version": "y"}
    )
    assert response.status_code == 303
    assert _stored(app).letter_version == 2
    db = new_session(app)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.translation"))
    assert entry is not None
    assert json.loads(entry.before) == {
        "locale": "fr",
        "title": "Libérez-le",
        "letter": "Monsieur le ministre.",
        "letter_version": 1,
    }
    assert json.loads(entry.after)["letter_version"] == 2
    db.close()


# --- where versions show ----------------------------------------------------


def _new_version(client: FlaskClient, campaign: Campaign) -> None:
    response = client.post(
        "/admin/c/release/edit",
        data=_edit_form(
            campaign, title="Free them", letter="Dear prime minister.", new_version="y"
        ),
    )
    assert response.status_code == 303


def test_a_replaced_version_has_its_own_page_in_each_language(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    _new_version(client, campaign)
    response = client.get("/admin/c/release/letter/versions/1")
    assert response.status_code == 200
    page = _text(response.get_data(as_text=True))
    assert "Version 1 of the text" in page
    assert "Free him" in page and "Dear minister." in page
    assert "Libérez-le" in page and "Monsieur le ministre." in page
    assert "Dear prime minister." not in page
    assert "1 signature (not erased) was made on this version." in page
    assert client.get("/admin/c/release/letter/versions/7").status_code == 404
    current = client.get("/admin/c/release/letter/versions/2")
    assert current.status_code == 303
    assert current.headers["Location"].endswith("/admin/c/release/letter")


def test_the_signature_page_says_which_earlier_version_was_signed(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, signer = signed
    line = "Signed version 1 of the text"
    assert line not in client.get(f"/admin/c/release/signatures/{signer.id}").text
    _new_version(client, campaign)
    page = client.get(f"/admin/c/release/signatures/{signer.id}").get_data(as_text=True)
    assert line in page
    assert 'href="/admin/c/release/letter/versions/1"' in page


def test_the_delivery_letter_marks_the_signers_of_an_earlier_version(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    before = client.get("/admin/c/release/letter").get_data(as_text=True)
    assert "version-mark" not in before
    assert "of the text" not in _text(before)
    _new_version(client, campaign)
    db = new_session(app)
    stored = db.get(Campaign, campaign.id)
    assert stored is not None
    sign(db, stored, "Bo Chen", "bo@example.org", country="GB")
    db.close()
    page = client.get("/admin/c/release/letter").get_data(as_text=True)
    assert re.search(r'Ann Lee</bdi><sup class="version-mark">\*</sup>', page)
    assert re.search(r"Bo Chen</bdi>(?!<sup)", page)
    assert re.search(
        r"\* 1 signatory signed version 1 of the text, which was replaced on \w+ \d+, \d{4}\.",
        _text(page),
    )
    assert "The text above is version 2." in _text(page)


def test_the_public_letter_says_when_its_text_changed_after_signing_began(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    reader = app.test_client()
    assert "after signing began" not in reader.get("/c/release").text
    _new_version(client, campaign)
    page = _text(reader.get("/c/release").get_data(as_text=True))
    today = utcnow()
    assert (
        f"This text was changed on {today:%B} {today.day}, {today.year}, after signing began."
        in page
    )
    french = _text(reader.get("/c/release?lang=fr").get_data(as_text=True))
    assert "après le début des signatures" in french


def _save_translation(client: FlaskClient, locale: str, title: str, letter: str) -> None:
    prefix = f"tr-{locale}-"
    data = {f"{prefix}title": title, f"{prefix}letter": letter, f"{prefix}new_version": "y"}
    response = client.post(f"/admin/c/release/translations/{locale}", data=data)
    assert response.status_code == 303


CHANGED = "after signing began"


def _marked(page: str) -> bool:
    return bool(re.search(r'Ann Lee</bdi><sup class="version-mark">', page))


def test_a_new_translation_changes_no_text_anyone_signed(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    """An added translation makes a version (the record of what was shown), but Ann signed
    the same English text the recipient holds, and the Spanish reader's letter says what
    it said before, in Spanish now."""
    client, _, _ = signed
    _save_translation(client, "es", "Libérenlo", "Señor ministro.")
    assert _stored(app).letter_version == 2
    reader = app.test_client()
    for lang in ("en", "es", "fr"):
        assert CHANGED not in _text(reader.get(f"/c/release?lang={lang}").text), lang
        assert "después del inicio" not in _text(reader.get(f"/c/release?lang={lang}").text)
        delivery = client.get(f"/admin/c/release/letter?lang={lang}").get_data(as_text=True)
        assert not _marked(delivery), lang
        assert "of the text" not in _text(delivery) and "du texte" not in _text(delivery)


def test_a_changed_translation_is_a_change_for_its_readers_only(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, _, _ = signed
    _save_translation(client, "fr", "Libérez-le", "Madame la ministre.")
    reader = app.test_client()
    french = _text(reader.get("/c/release?lang=fr").text)
    assert "après le début des signatures" in french
    assert CHANGED not in _text(reader.get("/c/release?lang=en").text)
    assert _marked(client.get("/admin/c/release/letter?lang=fr").get_data(as_text=True))
    english = client.get("/admin/c/release/letter?lang=en").get_data(as_text=True)
    assert not _marked(english) and "of the text" not in _text(english)


def test_a_changed_original_is_a_change_in_every_language(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    _new_version(client, campaign)
    reader = app.test_client()
    assert CHANGED in _text(reader.get("/c/release?lang=en").text)
    # The French text did not move, but the letter it translates did.
    assert "après le début des signatures" in _text(reader.get("/c/release?lang=fr").text)
    for lang in ("en", "fr"):
        assert _marked(client.get(f"/admin/c/release/letter?lang={lang}").get_data(as_text=True))


def test_the_notice_dates_the_last_change_a_reader_can_see(
    app: Flask, signed: tuple[FlaskClient, Campaign, Signature]
) -> None:
    client, campaign, _ = signed
    _save_translation(client, "fr", "Libérez-le", "Madame la ministre.")  # version 1 -> 2
    db = new_session(app)
    # Version 1 was replaced long ago; a translation added since makes version 2 -> 3.
    db.execute(
        LetterVersion.__table__.update()
        .where(LetterVersion.number == 1)
        .values(replaced_at=utcnow().replace(year=2020))
    )
    db.commit()
    stored = db.get(Campaign, campaign.id)
    assert stored is not None
    sign(db, stored, "Bo Chen", "bo@example.org", country="GB")  # on version 2
    db.close()
    _save_translation(client, "es", "Libérenlo", "Señor ministro.")
    assert _stored(app).letter_version == 3
    french = _text(app.test_client().get("/c/release?lang=fr").text)
    assert re.search(r"modifié le \d+(er)? \w+ 2020", french), french
    assert CHANGED not in _text(app.test_client().get("/c/release?lang=en").text)


# --- the migration ----------------------------------------------------------


def test_revision_0009_makes_existing_letters_and_signatures_version_1(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0008")
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        insert_old_letter(conn, now)
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO signature (campaign_id, signed_at, updated_at, name, title, "
                    "parliament, party, country_code, continent_code, email, email_key, "
                    "email_domain, name_key, comment, public, source, locale, status, counted, "
                    "rejected_reason, duplicate_notices) SELECT id, :now, :now, :name, '', '', "
                    "'', 'FR', 'EU', :email, :email, 'example.org', :name, '', true, 'form', "
                    "'en', 'confirmed', true, '', 0 FROM campaign"
                ),
                {"now": now, "name": f"signer {i}", "email": f"s{i}@example.org"},
            )
    upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT letter_version FROM campaign")).scalars().all() == [1]
        assert conn.execute(text("SELECT letter_version FROM signature")).scalars().all() == [
            1,
            1,
            1,
        ]
        assert conn.execute(text("SELECT count(*) FROM letter_version")).scalar() == 0
    command.downgrade(alembic_config(url), "0008")
    with engine.connect() as conn:
        # The signatures stay (SQLite rebuilds no table on the way down).
        assert conn.execute(select(func.count()).select_from(text("signature"))).scalar() == 3
        columns = conn.execute(text("SELECT * FROM signature")).keys()
        assert "letter_version" not in columns
    engine.dispose()
