"""Country names, their alphabetical order, and which places a signer may choose.

What readers see: the sign form's <select>, the tally's and the signatories' lists in French,
Spanish and Indonesian, and the continent a country counts in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from campaign import campaigns, charts, export, geo, imports, listing, signing, tally
from campaign.models import Campaign

LANGUAGES = ("en", "es", "fr", "id")
SLUG = "countries"


def _names(locale: str) -> list[str]:
    return [name for _code, name in geo.country_choices(locale)]


def _before(names: list[str], first: str, second: str) -> bool:
    return names.index(first) < names.index(second)


def _letter(db: Session) -> Campaign:
    return campaigns.create_campaign(db, slug=SLUG, title="T", state="open")


# --------------------------------------------------------------------------- order


@pytest.mark.parametrize(
    ("locale", "first", "second"),
    [
        ("fr", "Égypte", "Espagne"),
        ("fr", "Émirats arabes unis", "Érythrée"),
        ("fr", "États-Unis", "Éthiopie"),
        ("fr", "Équateur", "Zimbabwe"),
        ("fr", "Îles Cook", "Inde"),
        ("fr", "Brésil", "Brunei"),
        ("fr", "Bélarus", "Burundi"),
        ("fr", "Bénin", "Bhoutan"),
        ("fr", "Pérou", "Portugal"),
        ("fr", "Sénégal", "Syrie"),
        ("es", "Bélgica", "Bután"),
        ("es", "México", "Mozambique"),
        ("es", "Mónaco", "Mozambique"),
        ("es", "Líbano", "Luxemburgo"),
        ("es", "Irán", "Irlanda"),
        ("es", "Islas Åland", "Islas Caimán"),
    ],
)
def test_the_sign_forms_countries_are_alphabetical_accents_with_their_letter(
    locale: str, first: str, second: str
) -> None:
    assert _before(_names(locale), first, second)


def test_every_languages_countries_are_alphabetical_ignoring_accents_and_case() -> None:
    for locale in LANGUAGES:
        names = _names(locale)
        plain = [geo.sort_key(name)[0] for name in names]
        assert plain == sorted(plain), locale
        # No accented capital is left behind the Zs.
        first_z = next(i for i, name in enumerate(names) if name.startswith("Z"))
        assert [name for name in names[first_z:] if not name.startswith("Z")] == [], locale


def test_sort_key_reads_ligatures_as_their_letters_and_breaks_ties_by_the_name() -> None:
    assert sorted(["Oman", "Œuf", "Odessa"], key=geo.sort_key) == ["Odessa", "Œuf", "Oman"]
    assert sorted(["Ærø", "Afrique", "Adam"], key=geo.sort_key) == ["Adam", "Ærø", "Afrique"]
    assert sorted(["Cote", "Côte", "cote"], key=geo.sort_key) == ["Cote", "Côte", "cote"]


def test_the_tallys_ties_are_alphabetical_in_the_readers_language(db: Session) -> None:
    letter = _letter(db)
    for code in ("ZW", "ES", "EG", "US", "JP", "AE"):
        tally.bump(db, letter.id, code, 1, listed=1)
    db.commit()
    french = tally.tally(db, letter, "fr")
    assert [c.name for c in french.by_country] == [
        "Égypte",
        "Émirats arabes unis",
        "Espagne",
        "États-Unis",
        "Japon",
        "Zimbabwe",
    ]
    # Africa 3, Asia 2, then Europe and North America 1 each: French and English differ.
    tally.bump(db, letter.id, "ZW", 1)
    db.commit()
    assert [c.code for c in tally.tally(db, letter, "fr").by_continent] == [
        "AF",
        "AS",
        "NA",
        "EU",
    ]
    assert [c.code for c in tally.tally(db, letter, None).by_continent] == [
        "AF",
        "AS",
        "EU",
        "NA",
    ]


def test_the_continents_with_equal_counts_follow_the_readers_language(db: Session) -> None:
    letter = _letter(db)
    for code in ("US", "JP", "BR"):
        tally.bump(db, letter.id, code, 1)
    db.commit()
    english = [c.code for c in tally.tally(db, letter, "en").by_continent]
    spanish = [c.code for c in tally.tally(db, letter, "es").by_continent]
    assert english == ["AS", "NA", "SA"]  # Asia, North America, South America
    assert spanish == ["NA", "SA", "AS"]  # América del Norte, América del Sur, Asia


def test_the_signatories_countries_are_alphabetical(db: Session) -> None:
    letter = _letter(db)
    for code in ("SY", "SN", "PT", "PE", "BN", "BR"):
        tally.bump(db, letter.id, code, 1, listed=1)
    db.commit()
    found = [c.name for c in listing.countries(db, letter.id, "fr")]
    assert found == ["Brésil", "Brunei", "Pérou", "Portugal", "Sénégal", "Syrie"]


def test_the_small_lists_country_headings_are_alphabetical(db: Session) -> None:
    letter = _letter(db)
    letter.require_confirmation = False
    for name, code in [("Ana Uno", "BT"), ("Bea Dos", "BE"), ("Carla Tres", "MZ")]:
        _sign(db, letter, name, code)
    _sign(db, letter, "Dora Cuatro", "MX")
    db.commit()
    groups = listing.everyone(db, letter.id, "es")
    assert [g.name for g in groups] == ["Bélgica", "Bután", "México", "Mozambique"]


def test_the_dashboards_places_are_alphabetical_in_the_readers_language(db: Session) -> None:
    letter = _letter(db)
    letter.require_confirmation = False
    for name, code in [("Ana Uno", "US"), ("Bea Dos", "JP"), ("Carla Tres", "EG")]:
        _sign(db, letter, name, code)
    _sign(db, letter, "Dora Cuatro", "AE")
    db.commit()
    groups = export.signatories_by_place(db, letter, locale="fr")
    assert [g.code for g in groups] == ["AF", "NA", "AS"]  # Afrique, Amérique du Nord, Asie
    asia = groups[2]
    assert [c.name for c in asia.countries] == ["Émirats arabes unis", "Japon"]


def _sign(db: Session, letter: Campaign, name: str, code: str) -> None:
    entry = signing.validate_entry(
        {
            "name": name,
            "title": "MP",
            "parliament": "P",
            "country": code,
            "email": name.replace(" ", ".").lower() + "@example.org",
            "public": True,
        }
    )
    signing.sign(db, letter, entry)


# --------------------------------------------------------------------------- names

# "Congo, The Democratic Republic of the", "Taiwan, Provinsi China", "Åland, Îles": a comma
# that no "and" follows turns the name round. Lists ("Bonaire, Sint Eustatius and Saba") are
# names as they are.
_LIST_WORDS = re.compile(r", .* (and|y|et|dan) ")


@pytest.mark.parametrize("locale", LANGUAGES)
def test_no_country_name_is_inverted_formal_or_repeated(locale: str) -> None:
    names = {code: geo.country_name(code, locale) for code in geo.CONTINENT_OF}
    inverted = {c: n for c, n in names.items() if "," in n and not _LIST_WORDS.search(n)}
    assert inverted == {}
    assert len(set(names.values())) == len(names), "two countries with one name"
    formal = re.compile(r"Federation|Fédération|Federación|Federasi|Province|Provinsi|of$")
    assert {c: n for c, n in names.items() if formal.search(n)} == {}


@pytest.mark.parametrize(
    ("code", "locale", "name"),
    [
        ("TW", "en", "Taiwan"),
        ("TW", "fr", "Taïwan"),
        ("TW", "es", "Taiwán"),
        ("TW", "id", "Taiwan"),
        ("CZ", "id", "Ceko"),
        ("BQ", "id", "Bonaire, Sint Eustatius, dan Saba"),
        ("DZ", "es", "Argelia"),
        ("TN", "es", "Túnez"),
        ("CI", "es", "Costa de Marfil"),
        ("SR", "es", "Surinam"),
        ("AX", "es", "Islas Åland"),
        ("AX", "fr", "Îles Åland"),
        ("GL", "fr", "Groenland"),
        ("MO", "fr", "Macao"),
        ("NE", "es", "Níger"),
        ("CG", "es", "República del Congo"),
        ("VE", "fr", "Venezuela"),
        ("VE", "es", "Venezuela"),
        ("VE", "id", "Venezuela"),
        ("RU", "fr", "Russie"),
        ("RU", "en", "Russia"),
        ("RU", "es", "Rusia"),
        ("BO", "es", "Bolivia"),
        ("IR", "fr", "Iran"),
        ("IR", "id", "Iran"),
        ("MD", "id", "Moldova"),
        ("LA", "fr", "Laos"),
        ("LA", "es", "Laos"),
        ("PS", "en", "Palestine"),
        ("CD", "en", "Democratic Republic of the Congo"),
        ("VG", "en", "British Virgin Islands"),
        ("FM", "fr", "Micronésie"),
        ("XK", "en", "Kosovo"),
        ("XK", "fr", "Kosovo"),
        ("XK", "es", "Kosovo"),
        ("XK", "id", "Kosovo"),
        ("DE", "fr", "Allemagne"),
        ("KH", "id", "Kamboja"),
    ],
)
def test_country_names_read_as_the_language_writes_them(code: str, locale: str, name: str) -> None:
    assert geo.country_name(code, locale) == name


def test_the_form_shows_taiwan_in_indonesian_as_taiwan(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        db = _session(app)
        _letter(db)
        db.commit()
        db.close()
    page = client.get(f"/c/{SLUG}?lang=id").text
    assert 'value="TW">Taiwan</option>' in page
    assert "Provinsi" not in page


def _session(app: Flask) -> Session:
    from campaign.db import new_session

    return new_session(app)


# --------------------------------------------------------------------------- places


@pytest.mark.parametrize(
    ("code", "continent"),
    [
        ("CY", "EU"),
        ("RU", "EU"),
        ("XK", "EU"),
        ("TR", "AS"),
        ("GE", "AS"),
        ("AM", "AS"),
        ("AZ", "AS"),
        ("KZ", "AS"),
        ("EG", "AF"),
    ],
)
def test_transcontinental_countries_count_on_one_documented_continent(
    code: str, continent: str
) -> None:
    assert geo.continent_of(code) == continent


def test_cyprus_shows_europe_on_the_form(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        db = _session(app)
        _letter(db)
        db.commit()
        db.close()
    page = client.get(f"/c/{SLUG}").text
    assert '<option data-continent="Europe" value="CY">Cyprus</option>' in page
    assert '<option data-continent="Europe" value="XK">Kosovo</option>' in page
    for code in sorted(geo.UNINHABITED):
        assert f'value="{code}"' not in page
    assert "Antarctica" not in page


@pytest.mark.parametrize("code", ["AQ", "BV", "HM", "UM", "TF", "GS", "IO"])
def test_no_one_signs_from_a_place_with_no_people(code: str) -> None:
    assert code not in dict(geo.country_choices("fr"))
    with pytest.raises(signing.InvalidEntry) as refused:
        signing.validate_entry(
            {"name": "A B", "title": "MP", "parliament": "P", "country": code, "email": "a@b.org"}
        )
    assert refused.value.errors == {"country": "Choose a country from the list."}


def test_the_form_refuses_antarctica_with_an_error(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        db = _session(app)
        _letter(db)
        db.commit()
        db.close()
    data = {
        "name": "Ana Uno",
        "title": "MP",
        "parliament": "P",
        "country": "AQ",
        "email": "ana@example.org",
    }
    page = client.post(f"/c/{SLUG}/sign", data=data)
    assert page.status_code == 400
    assert "Not a valid choice" in page.text or "Choose a country from the list." in page.text


def test_an_import_refuses_antarctica_and_takes_kosovo(db: Session, tmp_path: Path) -> None:
    letter = _letter(db)
    db.commit()
    path = tmp_path / "signers.csv"
    path.write_text(
        "name,title,parliament,party,country_code,email,public,comment\r\n"
        "Ana Uno,MP,P,,AQ,ana@example.org,yes,\r\n"
        "Bea Dos,MP,Kuvendi,,XK,bea@example.org,yes,\r\n",
        encoding="utf-8",
    )
    report = imports.preview(db, letter, str(path), imports.check_file(str(path), max_bytes=10**6))
    assert (report.imported, report.invalid) == (1, 1)
    [error] = report.rows[0].errors.values()
    assert error.startswith("Not the code of a country signers sign from")  # Antarctica


def test_rows_stored_from_antarctica_still_read(db: Session) -> None:
    letter = _letter(db)
    tally.bump(db, letter.id, "AQ", 1, listed=1)
    db.commit()
    counts = tally.tally(db, letter, "fr")
    assert [(c.name, c.continent) for c in counts.by_country] == [("Antarctique", "AN")]
    assert [c.name for c in listing.countries(db, letter.id, "fr")] == ["Antarctique"]
    assert ("AQ", "Antarctique") in geo.country_choices("fr", signable=False)
    assert geo.is_known("AQ") and not geo.is_country("AQ")


def test_kosovo_is_drawn_on_the_map() -> None:
    counts = tally.Tally(
        signatures=1,
        countries=1,
        continents=1,
        by_continent=[tally.ContinentTally("EU", "Europe", 1, 1)],
        by_country=[tally.CountryTally("XK", "Kosovo", "EU", 1)],
        updated_at=None,  # type: ignore[arg-type]
    )
    svg = charts.world_map_svg(counts, title="Map")
    assert 'data-country="XK"' in svg
    assert "<title>Kosovo: 1 signature</title>" in svg
