"""Countries and continents."""

from __future__ import annotations

from collections import Counter

import pycountry
import pytest

from campaign import geo


def test_every_pycountry_country_has_exactly_one_of_the_seven_continents() -> None:
    codes = {country.alpha_2 for country in pycountry.countries}
    memberships = Counter(code for members in geo._MEMBERS.values() for code in members.split())
    assert set(geo.CONTINENTS) == {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}
    assert set(geo._MEMBERS) == set(geo.CONTINENTS)
    assert {code for code, n in memberships.items() if n != 1} == set()
    assert codes - set(geo.CONTINENT_OF) == set(), "countries without a continent"
    # Kosovo's user-assigned code is the one pycountry does not know.
    assert set(geo.CONTINENT_OF) - codes == {"XK"}, "codes pycountry does not know"
    assert set(geo.CONTINENT_OF.values()) == set(geo.CONTINENTS)


@pytest.mark.parametrize(
    ("code", "continent"),
    [
        ("KH", "AS"),
        ("FR", "EU"),
        ("RU", "EU"),
        ("TR", "AS"),
        ("EG", "AF"),
        ("BR", "SA"),
        ("MX", "NA"),
        ("PA", "NA"),
        ("AU", "OC"),
        ("AQ", "AN"),
    ],
)
def test_continent_of_a_country(code: str, continent: str) -> None:
    assert geo.continent_of(code) == continent


def test_unknown_codes_are_not_countries() -> None:
    for code in ("XX", "", "ph", "PHL", "EU", "UK"):
        assert not geo.is_country(code)
    with pytest.raises(KeyError):
        geo.continent_of("XX")


def test_country_names_are_common_names_in_english() -> None:
    assert geo.country_name("BO") == "Bolivia"
    assert geo.country_name("GB") == "United Kingdom"
    assert geo.country_name("KH", "en") == "Cambodia"


@pytest.mark.parametrize(
    ("code", "locale", "name"),
    [
        ("DE", "fr", "Allemagne"),
        ("DE", "es", "Alemania"),
        ("DE", "id", "Jerman"),
        ("KH", "fr", "Cambodge"),
        ("JP", "es", "Japón"),
    ],
)
def test_country_names_are_localised(code: str, locale: str, name: str) -> None:
    assert geo.country_name(code, locale) == name


def test_country_choices_hold_every_inhabited_country_sorted_by_localised_name() -> None:
    choices = geo.country_choices("fr")
    assert len(choices) == len(geo.CONTINENT_OF) - len(geo.UNINHABITED)
    assert len(geo.country_choices("fr", signable=False)) == len(geo.CONTINENT_OF)
    names = [name for _code, name in choices]
    assert names == sorted(names, key=geo.sort_key)
    assert ("DE", "Allemagne") in choices


def test_continent_names() -> None:
    assert geo.continent_name("SA") == "South America"
    assert [geo.continent_name(c) for c in ("AF", "OC")] == ["Africa", "Oceania"]
