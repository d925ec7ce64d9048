"""Languages: the catalogs themselves, how a reader's language is chosen, and what it changes."""

from __future__ import annotations

import datetime as dt
import gettext
import io
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select, update

from campaign import campaigns, i18n, mail, signing
from campaign.db import session_scope
from campaign.models import LetterTranslation, OutboxMessage, TallyCount

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "campaign" / "translations"
LANGUAGES = ("id", "fr", "es")
# Messages only organizers read; the public ones (pages, mails, errors) must all be translated.
DASHBOARD = re.compile(
    r"templates/admin/|campaign/views/admin|campaign/forms/admin|imports\.py|/cli/"
)
SLUG = "free-amara"
GOOD = {
    "name": "Maria Santos",
    "title": "MP",
    "parliament": "House of Representatives",
    "country": "PH",
    "email": "maria@example.org",
}


def po_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


def catalog(language: str) -> Any:
    with po_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def extracted() -> dict[tuple[str | None, str], set[str]]:
    """Every message the sources hold now ((context, msgid): files), as babel.cfg extracts them."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[tuple[str | None, str], set[str]] = {}
    for filename, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault((context, msgid), set()).add(filename.replace("\\", "/"))
    return found


@pytest.fixture(scope="module")
def sources() -> dict[tuple[str | None, str], set[str]]:
    return extracted()


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_catalog_reads_and_passes_babels_checks(language: str) -> None:
    messages = catalog(language)
    problems = [(m.id, str(e)) for m, errors in messages.check() for e in errors]
    assert problems == []  # e.g. a %(name)s lost or misspelt in a translation
    assert str(messages.locale) == language


@pytest.mark.parametrize("language", LANGUAGES)
def test_committed_mo_is_the_compiled_po(language: str) -> None:
    buffer = io.BytesIO()
    write_mo(buffer, catalog(language))
    buffer.seek(0)
    fresh = gettext.GNUTranslations(buffer)
    with (po_path(language).with_suffix(".mo")).open("rb") as handle:
        committed = gettext.GNUTranslations(handle)
    assert committed._catalog == fresh._catalog  # type: ignore[attr-defined]
    assert len(committed._catalog) > 150  # type: ignore[attr-defined]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_public_message_is_translated(language: str, sources: dict[Any, set[str]]) -> None:
    messages = catalog(language)
    untranslated = []
    checked = 0
    for (context, msgid), files in sorted(sources.items(), key=lambda item: str(item[0])):
        if all(DASHBOARD.search(name) for name in files):
            continue
        checked += 1
        message = messages.get(msgid, context=context)
        strings = [] if message is None else message.string
        strings = [strings] if isinstance(strings, str) else list(strings)
        if message is None or message.fuzzy or not all(strings):
            untranslated.append((msgid, sorted(files)))
    assert untranslated == []
    assert checked > 200


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_dashboard_is_nearly_all_translated(
    language: str, sources: dict[Any, set[str]]
) -> None:
    """Organizers read it too; new dashboard words may wait for their translation a while."""
    messages = catalog(language)
    dashboard = [
        key for key, files in sources.items() if all(DASHBOARD.search(name) for name in files)
    ]
    translated = [
        key
        for key in dashboard
        if (message := messages.get(key[1], context=key[0])) is not None
        and not message.fuzzy
        and all([message.string] if isinstance(message.string, str) else message.string)
    ]
    assert len(dashboard) > 100
    assert len(translated) >= 0.9 * len(dashboard)


def test_the_catalogs_know_the_public_surfaces(sources: dict[Any, set[str]]) -> None:
    files = set().union(*sources.values())
    for expected in (
        "templates/public/campaign.html",
        "templates/email/confirm.txt",
        "templates/email/already_signed.html",
        "templates/errors/error.html",
        "templates/pages/privacy.html",
        "templates/embed/widget.html",
        "campaign/signing.py",
        "campaign/i18n.py",
    ):
        assert expected in files


@pytest.fixture
def letter(app: Flask) -> None:
    with app.app_context(), session_scope(app) as db:
        found = campaigns.create_campaign(
            db, slug=SLUG, title="Release Amara", letter="Dear President,", state="open"
        )
        for index, country in enumerate(("DE", "FR", "ZA")):
            entry = signing.validate_entry(
                {**GOOD, "country": country, "email": f"signer{index}@example.org", "public": True}
            )
            signing.sign(db, found, entry, confirmed=True)


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def current_language(page: str) -> str:
    found = re.search(r'<a href="[^"]*" lang="(\w+)" hreflang="\w+" aria-current="true">', page)
    assert found is not None
    return found.group(1)


def test_english_is_the_fallback(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}", headers={"Accept-Language": "de-DE,de;q=0.9"}).text
    assert html_lang(page) == "en"
    assert current_language(page) == "en"
    assert "Sign the letter" in page


@pytest.mark.parametrize(
    ("header", "language", "words"),
    [
        ("fr-CA,fr;q=0.9,en;q=0.5", "fr", "Signer la lettre"),
        ("id-ID,id;q=0.9", "id", "Tanda tangani surat ini"),
        ("es-419,es;q=0.8", "es", "Firmar la carta"),
        ("de;q=1.0,es;q=0.4", "es", "Firmar la carta"),
    ],
)
def test_accept_language_chooses_the_language(
    client: FlaskClient, letter: None, header: str, language: str, words: str
) -> None:
    page = client.get(f"/c/{SLUG}", headers={"Accept-Language": header}).text
    assert html_lang(page) == language
    assert current_language(page) == language
    assert words in page


def test_lang_parameter_sets_a_cookie_that_later_pages_follow(
    client: FlaskClient, letter: None
) -> None:
    response = client.get(f"/c/{SLUG}?lang=fr", headers={"Accept-Language": "es"})
    assert html_lang(response.text) == "fr"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=fr;")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=31536000" in cookie
    later = client.get(f"/c/{SLUG}/tally", headers={"Accept-Language": "es"})
    assert html_lang(later.text) == "fr"
    assert "Set-Cookie" not in later.headers  # nothing new to remember
    assert "Accept-Language" in later.headers["Vary"] and "Cookie" in later.headers["Vary"]


def test_an_unknown_lang_parameter_changes_nothing(client: FlaskClient, letter: None) -> None:
    response = client.get(f"/c/{SLUG}?lang=xx", headers={"Accept-Language": "id"})
    assert html_lang(response.text) == "id"
    assert "Set-Cookie" not in response.headers


def test_embedded_responses_never_set_the_visitors_cookie(
    client: FlaskClient, letter: None
) -> None:
    for path in ("widget", "badge.svg", "share.png", "tally.json"):
        response = client.get(f"/c/{SLUG}/{path}?lang=fr")
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers, path
    assert "signatures sur" not in client.get(f"/c/{SLUG}/widget").text
    assert "sur 2 continents" in client.get(f"/c/{SLUG}/widget?lang=fr").text


def test_the_switcher_links_this_page_in_every_language(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}/tally?lang=es&x=1").text
    links = re.findall(r'<a href="([^"]+)" lang="(\w+)" hreflang="\w+"', page)
    assert links == [
        (f"/c/{SLUG}/tally?x=1&amp;lang={code}", code) for code in ("en", "id", "fr", "es")
    ]
    assert '<nav class="languages" aria-label="Idioma">' in page
    assert ">Bahasa Indonesia</a>" in page and ">Français</a>" in page  # named in themselves


def test_the_switcher_of_a_refused_form_leads_back_to_the_letter(
    client: FlaskClient, letter: None
) -> None:
    page = client.post(f"/c/{SLUG}/sign?lang=fr", data={**GOOD, "email": "bad"}).text
    assert f'<a href="/c/{SLUG}?lang=id" lang="id"' in page
    assert "Saisissez une adresse e-mail valide" in page  # the error in French, by its field
    assert "Il y a un problème" in page


@pytest.mark.parametrize(
    ("language", "line"),
    [
        ("en", ">Email address: Enter a valid email address"),
        ("fr", ">Adresse e-mail\u00a0: Saisissez une adresse"),  # a space before the colon
        ("es", ">Correo electrónico: Escriba una dirección"),
        ("id", ">Alamat email: "),
    ],
)
def test_the_error_summary_joins_field_and_error_the_languages_way(
    client: FlaskClient, letter: None, language: str, line: str
) -> None:
    page = client.post(f"/c/{SLUG}/sign?lang={language}", data={**GOOD, "email": "bad"}).text
    summary = page.split('id="error-summary"')[1].split("</ul>")[0]
    assert line in summary


def test_country_and_continent_names_follow_the_language(client: FlaskClient, letter: None) -> None:
    page = client.get(f"/c/{SLUG}?lang=fr").text
    assert '<option data-continent="Europe" value="DE">Allemagne</option>' in page
    assert '<option data-continent="Afrique" value="ZA">Afrique du Sud</option>' in page
    assert "3 signatures de 3 pays sur 2 continents" in page
    tally = client.get(f"/c/{SLUG}/tally?lang=es").text
    assert '<th scope="row">Alemania</th><td>Europa</td>' in tally
    assert '<th scope="row">África</th>' in tally
    assert "Firmada por 3 parlamentarios de 3 países en 2 continentes" in tally
    signatories = client.get(f"/c/{SLUG}/signatories?lang=id").text
    assert "<h2>Jerman</h2>" in signatories and "<h2>Afrika Selatan</h2>" in signatories


def test_plural_rules_are_each_languages_own(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), session_scope(app) as db:
        found = campaigns.create_campaign(db, slug="one", title="One", state="open")
        entry = signing.validate_entry({**GOOD, "country": "FR"})
        signing.sign(db, found, entry, confirmed=True)
    assert "1 signature de 1 pays sur 1 continent" in client.get("/c/one?lang=fr").text
    assert "1 firma de 1 país en 1 continente" in client.get("/c/one?lang=es").text
    assert "1 tanda tangan dari 1 negara di 1 benua" in client.get("/c/one?lang=id").text


def test_dates_are_written_the_readers_way(client: FlaskClient, letter: None) -> None:
    french = client.get(f"/c/{SLUG}/tally?lang=fr").text
    assert re.search(r"Mis à jour le \d{1,2}(er)? \w+\.? 20\d\d", french)
    english = client.get(f"/c/{SLUG}/tally?lang=en").text
    assert re.search(r"Updated \w{3} \d{1,2}, 20\d\d", english)


def test_french_writes_the_first_of_the_month_as_an_ordinal(app: Flask) -> None:
    first, tenth = dt.datetime(2026, 12, 1, 9, 30), dt.datetime(2026, 12, 10, 9, 30)
    with app.test_request_context(), force_locale("fr"):
        assert i18n.long_date(first) == "1er décembre 2026"
        assert i18n.long_date(tenth) == "10 décembre 2026"
        assert i18n.date_time(first).startswith("1er déc. 2026")
        assert i18n.date_time(first, "d MMM y, HH:mm") == "1er déc. 2026, 09:30"  # the summary
    with app.test_request_context(), force_locale("en"):
        assert i18n.long_date(first) == "December 1, 2026"
    with app.test_request_context(), force_locale("es"):
        assert i18n.long_date(first) == "1 de diciembre de 2026"


def test_error_pages_are_translated(client: FlaskClient) -> None:
    page = client.get("/nowhere?lang=fr")
    assert page.status_code == 404
    assert "<h1>Page introuvable</h1>" in page.text
    assert "requested URL was not found" not in page.text  # werkzeug's English description
    assert html_lang(page.text) == "fr"
    assert "requested URL was not found" in client.get("/nowhere?lang=en").text


def test_the_privacy_page_is_translated(client: FlaskClient) -> None:
    page = client.get("/privacy", headers={"Accept-Language": "id"}).text
    assert "Privasi: apa yang kami simpan saat Anda menandatangani" in page


def test_the_mail_is_in_the_signers_language(app: Flask, client: FlaskClient, letter: None) -> None:
    client.get(f"/c/{SLUG}?lang=es")
    response = client.post(f"/c/{SLUG}/sign", data={**GOOD, "email": "es@example.org"})
    assert response.status_code == 303
    with app.app_context(), session_scope(app) as db:
        composed = mail.compose(db, db.scalars(select(OutboxMessage)).one())
        subject, text, html = composed.subject, composed.text, composed.html
    assert subject == "Confirme su firma: Release Amara"
    assert "Hola, Maria Santos:" in text
    assert "Ha firmado la carta abierta «Release Amara»" in text
    assert html is not None and '<html lang="es">' in html


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_mail_template_renders_translated(app: Flask, language: str) -> None:
    with app.app_context(), session_scope(app) as db:
        found = campaigns.create_campaign(db, slug=f"m-{language}", title="T", state="open")
        entry = signing.validate_entry({**GOOD, "email": f"{language}@example.org"})
        signature = signing.sign(db, found, entry).signature
        signature.locale = language
        mail.queue_confirmation(db, signature)
        mail.queue_already_signed(db, signature)
        entry = signing.validate_entry({**GOOD, "email": f"gone-{language}@example.org"})
        gone = signing.sign(db, found, entry).signature
        gone.locale = language
        signing.withdraw(db, gone.id)
        mail.queue_already_signed(db, gone)
        queued = [mail.compose(db, message) for message in db.scalars(select(OutboxMessage))]
        english = ("Hello", "Please confirm", "ignore this mail", "expires in", "withdrawn")
        assert len(queued) == 3
        for message in queued:
            for body in (message.subject, message.text, message.html or ""):
                assert not any(words in body for words in english), body


def test_continent_names_are_translated_in_one_place(app: Flask) -> None:
    with app.test_request_context("/?lang=id"):
        assert [i18n.continent_name(code) for code in ("AF", "NA", "SA", "OC")] == [
            "Afrika",
            "Amerika Utara",
            "Amerika Selatan",
            "Oseania",
        ]
    with app.test_request_context("/"):
        assert i18n.continent_name("AN") == "Antarctica"


def test_plural_forms_given_to_the_page_script(app: Flask) -> None:
    with app.test_request_context("/?lang=fr"):
        assert i18n.COUNTRIES.forms() == ["%(num)d pays", "%(num)d pays"]
        assert i18n.MPS.forms() == ["%(num)d parlementaire", "%(num)d parlementaires"]
    with app.test_request_context("/?lang=id"):
        assert i18n.SIGNATURES.forms() == ["%(num)d tanda tangan", "%(num)d tanda tangan"]


def test_counts_are_written_with_the_readers_digit_grouping(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context(), session_scope(app) as db:
        found = campaigns.create_campaign(db, slug="big", title="Big", state="open")
        entry = signing.validate_entry({**GOOD, "country": "FR"})
        signing.sign(db, found, entry, confirmed=True)
        # The counter as a recount of 12,345 French signers leaves it.
        db.execute(
            update(TallyCount).where(TallyCount.campaign_id == found.id).values(signatures=12345)
        )
    assert "Signed by 12,345 MPs from 1 country on 1 continent" in client.get("/c/big/tally").text
    french = client.get("/c/big/tally?lang=fr").text
    assert "Signée par 12\u202f345 parlementaires de 1 pays sur 1 continent" in french
    assert "12.345 firmas" in client.get("/c/big?lang=es").text
    assert "12.345 tanda tangan" in client.get("/?lang=id").text
    assert "12,345 signatures" in client.get("/?lang=en").text
    # The tally's tables and the widget too.
    assert '<td class="num">12\u202f345</td>' in french
    assert '<span class="widget-figure">12,345</span>' in client.get("/c/big/widget").text


def test_a_templates_count_is_grouped_and_its_other_values_escaped(app: Flask) -> None:
    template = (
        "{{ ngettext('%(num)d sign from %(who)s', '%(num)d signs from %(who)s', n, who=who) }}"
    )
    with app.test_request_context("/?lang=en"):
        assert render_template_string(template, n=1234, who="<b>") == "1,234 signs from &lt;b&gt;"
        assert render_template_string(template, n=1, who="A & B") == "1 sign from A &amp; B"
    with app.test_request_context("/"):
        assert i18n.ngettext("%(num)d letter", "%(num)d letters", 1000) == "1,000 letters"


def translate(app: Flask, language: str, title: str, text: str) -> None:
    """Give the test letter a translation."""
    with session_scope(app) as db:
        found = campaigns.get_by_slug(db, SLUG)
        assert found is not None
        db.add(LetterTranslation(campaign_id=found.id, locale=language, title=title, letter=text))


def marked(page: str, pattern: str) -> str | None:
    """The lang attribute of the first element the pattern finds (its opening tag up to the
    attribute), or None when it has none."""
    found = re.search(pattern, page)
    assert found is not None, pattern
    lang = re.search(r' lang="([^"]+)"', found.group(0))
    return None if lang is None else lang.group(1)


@pytest.mark.parametrize(
    ("language", "translated", "expected"),
    [
        ("en", None, None),  # the page's own language: nothing to mark
        ("fr", None, "en"),  # English on a French page
        ("fr", "fr", None),  # the French translation on a French page
        ("es", "fr", "en"),  # the original on a Spanish page, a French translation beside it
    ],
)
def test_a_letter_in_another_language_than_the_page_is_marked_with_its_own(
    app: Flask,
    client: FlaskClient,
    letter: None,
    language: str,
    translated: str | None,
    expected: str | None,
) -> None:
    """Screen readers read the title and text in the letter's voice, not the page's (WCAG
    3.1.2), wherever the page shows them."""
    if translated:
        translate(app, translated, "Libérez Amara", "Monsieur le Président,")
    page = client.get(f"/c/{SLUG}?lang={language}").text
    assert html_lang(page) == language
    assert marked(page, r"<h1[^>]*>") == expected
    assert marked(page, r'<div class="letter"[^>]*>') == expected
    for path in ("thanks", "tally", "signatories"):
        crumb = client.get(f"/c/{SLUG}/{path}?lang={language}").text
        assert marked(crumb, r'<p class="crumb"><a [^>]*>') == expected, path
    widget = client.get(f"/c/{SLUG}/widget?lang={language}").text
    assert marked(widget, r'<h1 class="widget-title"><bdi[^>]*>') == expected
    index = client.get(f"/?lang={language}").text
    assert marked(index, rf'<a href="/c/{SLUG}"[^>]*>') == expected
